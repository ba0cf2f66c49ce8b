"""The texts people read, in bokmål and English, kept as data: a YAML catalog beside the code
that shows them (`validation/texts.yaml`, `analysis/codebook.yaml` ...), so that wording is
reviewed and changed apart from the logic, and a text lacking a language stops the import
instead of showing a nurse a blank.

A catalog maps ids to an entry with a text per language. A mapping without language keys groups
entries, its key prefixing theirs with a dot:

    rules:
      required:
        finds: {nb: Påkrevd felt er tomt, en: Required field blank}

is the entry `rules.required.finds`. The code fills placeholders (`{label}`) with str.format;
both languages name the same ones (tests/test_texts.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import yaml

from hekta_redcap import LANGUAGES
from hekta_redcap.core.errors import HektaError, Origin

_STRING = "tag:yaml.org,2002:str"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it: 15x faster

Entry = Mapping[str, str]
"""One text: language -> text, every language of LANGUAGES."""


@cache
def catalog(package: str, name: str) -> Mapping[str, Entry]:
    """The entries of the catalog file `name` in `package` by id, read once. A catalog that
    cannot be read, or an entry without every language, raises HektaError naming the file and
    line."""
    source = resources.files(package).joinpath(name)
    file = Path(str(source))
    try:
        root = yaml.compose(source.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, yaml.YAMLError) as error:
        raise HektaError(f"text catalog unreadable: {error}", Origin(file)) from error
    entries: dict[str, Entry] = {}
    _collect(root, "", file, entries)
    return MappingProxyType(entries)


def in_language(entries: Mapping[str, Entry], language: str, group: str) -> dict[str, str]:
    """The texts of a group in one language, by id within the group (`words.and` -> `and`)."""
    prefix = f"{group}."
    return {
        key.removeprefix(prefix): entry[language]
        for key, entry in entries.items()
        if key.startswith(prefix)
    }


def _collect(node: yaml.Node | None, prefix: str, file: Path, into: dict[str, Entry]) -> None:
    """Walk the node tree (not the loaded data, so that errors have line numbers)."""
    where = Origin(file, node.start_mark.line + 1 if node is not None else None)
    name = prefix.rstrip(".") or "the catalog"
    if not isinstance(node, yaml.MappingNode):
        raise HektaError(f"{name} must be a mapping of ids to texts", where)
    pairs: dict[str, yaml.Node] = {}
    for key, value in node.value:
        if key.tag != _STRING or not isinstance(key.value, str):
            raise HektaError(f"key {key.value!r} under {name} is not text: quote it", where)
        if "." in key.value:
            raise HektaError(f"key {key.value!r} under {name}: a dot joins ids", where)
        if key.value in pairs:
            twice = Origin(file, key.start_mark.line + 1)
            raise HektaError(f"{name} has {key.value!r} twice", twice)
        pairs[key.value] = value
    if not any(lang in pairs for lang in LANGUAGES):
        for key, value in pairs.items():
            _collect(value, f"{prefix}{key}.", file, into)
        return
    if set(pairs) != set(LANGUAGES):
        wanted = ", ".join(LANGUAGES)
        raise HektaError(f"{name} has {', '.join(pairs)}: each text needs {wanted}", where)
    texts = {}
    for lang in LANGUAGES:
        value = pairs[lang]
        if value.tag != _STRING or not isinstance(value.value, str) or not value.value.strip():
            line = value.start_mark.line + 1
            raise HektaError(f"{name}: the {lang} text must be non-blank text", Origin(file, line))
        texts[lang] = value.value
    into[name] = MappingProxyType(texts)
