"""Read YAML into plain Python while remembering the line of every node.

Lint and load errors must name the file and line of the offending entry. PyYAML's composer
keeps a mark on every node; we convert the node tree ourselves so that each value's path
(a tuple of mapping keys and list indexes) maps to its line, and so that duplicate keys, which
PyYAML silently accepts, become errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hekta_redcap.core.errors import DefinitionError, Origin

try:  # the C loader is much faster; fall back to pure Python where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """A parsed file: its data and the line of every path in it."""

    file: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def origin(self, path: Path_ = ()) -> Origin:
        """The origin of `path`, or of its nearest ancestor that has a line."""
        while path not in self.lines and path:
            path = path[:-1]
        return Origin(self.file, self.lines.get(path))


def load(file: Path) -> YamlDocument:
    """Parse one YAML file; any problem becomes a `DefinitionError` naming file and line."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"cannot read file: {exc}", Origin(file)) from None
    return loads(text, file)


def loads(text: str, file: Path) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise DefinitionError(f"invalid YAML: {problem}", Origin(file, line)) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"invalid YAML: {exc}", Origin(file)) from None
    doc = YamlDocument(file, None)
    if node is not None:
        doc.data = _convert(node, (), doc)
    return doc


class _Constructor(yaml.constructor.SafeConstructor):
    """Scalars as PyYAML's safe loader reads them, except that dates and times stay text:
    REDCap holds them as text, and `2024-13-01` must reach lint, not crash the loader."""


# types-PyYAML lets only a Loader register constructors; PyYAML takes any constructor class.
_Constructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str
)
_constructor = _Constructor()


def _convert(node: yaml.Node, path: Path_, doc: YamlDocument) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, (*path, "<key>"), doc)
            if isinstance(key, (dict, list)):
                raise DefinitionError("a mapping key must be a plain value", doc.origin(path))
            key = str(key)
            if key in result:
                line = key_node.start_mark.line + 1
                raise DefinitionError(f"duplicate key '{key}'", Origin(doc.file, line))
            result[key] = _convert(value_node, (*path, key), doc)
            doc.lines[(*path, key)] = (
                key_node.start_mark.line + 1
            )  # the key's line, not its block's
        doc.lines.pop((*path, "<key>"), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, i), doc) for i, item in enumerate(node.value)]
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError) as exc:
        raise DefinitionError(f"invalid value: {exc}", doc.origin(path)) from None
