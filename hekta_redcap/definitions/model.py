"""The base of every definition model: strict pydantic models that know where they came from.

Definition files are parsed by `yamlfile`, validated by pydantic models derived from `Node`, and
then every model instance is given its origin (file and line) so that lint and the compiler can
point at the exact entry a message is about.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator

from hekta_redcap import LANGUAGES
from hekta_redcap.core.errors import DefinitionError, Origin
from hekta_redcap.definitions.yamlfile import YamlDocument

DEFAULT_LANGUAGE = "nb"


class Node(BaseModel):
    """A strict model (unknown keys are errors) that remembers its place in a YAML document."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)

    _doc: YamlDocument | None = PrivateAttr(default=None)
    _path: tuple[str | int, ...] = PrivateAttr(default=())

    def origin(self, *keys: str | int) -> Origin | None:
        """The file and line of this node, or of one of its keys (`node.origin("choices", 2)`)."""
        if self._doc is None:
            return None
        return self._doc.origin((*self._path, *keys))

    @classmethod
    def from_document(cls, doc: YamlDocument) -> Self:
        """Validate a parsed YAML document; errors name the file and line of the bad entry."""
        if not isinstance(doc.data, dict):
            raise DefinitionError("expected a mapping at the top of the file", doc.origin())
        try:
            model = cls.model_validate(doc.data)
        except ValidationError as exc:
            raise DefinitionError(_describe(exc, doc), _first_origin(exc, doc)) from None
        _attach(model, doc, ())
        return model


class Text(Node):
    """Text in each language. A plain YAML string means the same text in every language."""

    nb: str | None = None
    en: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: Any) -> Any:
        if isinstance(value, (str, int, float)):
            text = str(value)
            return {lang: text for lang in LANGUAGES}
        return value

    def get(self, lang: str = DEFAULT_LANGUAGE) -> str | None:
        return getattr(self, lang)

    @property
    def neutral(self) -> bool:
        """True when every language has the same text (written back as a plain string)."""
        return len({self.get(lang) for lang in LANGUAGES}) == 1

    def to_yaml(self) -> str | dict[str, str]:
        if self.neutral and self.nb is not None:
            return self.nb
        return {lang: text for lang in LANGUAGES if (text := self.get(lang)) is not None}


def _attach(obj: Any, doc: YamlDocument, path: tuple[str | int, ...]) -> None:
    if isinstance(obj, Node):
        obj._doc, obj._path = doc, path
        for name, info in type(obj).model_fields.items():
            _attach(getattr(obj, name), doc, (*path, info.alias or name))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            _attach(item, doc, (*path, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            _attach(item, doc, (*path, key))


def _data_path(loc: tuple[Any, ...], doc: YamlDocument) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic error location that are real keys in the document
    (pydantic adds union member names such as 'list[Choice]')."""
    path: tuple[str | int, ...] = ()
    for part in loc:
        if (*path, part) in doc.lines:
            path = (*path, part)
    return path


def _first_origin(exc: ValidationError, doc: YamlDocument) -> Origin:
    return doc.origin(_data_path(exc.errors()[0]["loc"], doc))


def _describe(exc: ValidationError, doc: YamlDocument) -> str:
    problems = []
    for error in exc.errors():
        path = _data_path(error["loc"], doc)
        where = ".".join(str(p) for p in path) or "top level"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        line = doc.origin(path).line
        problems.append(f"{where} (line {line}): {message}")
    first, *rest = problems
    return first + "".join(f"\n  also: {p}" for p in rest)
