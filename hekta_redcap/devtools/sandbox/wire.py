"""The REDCap API's wire format: request parameters in, JSON/CSV/XML bodies out.

REDCap clients disagree on how to send arrays (`records[0]=1` from PyCap, `records=1,2` from
REDCapR) and booleans (`True`, `TRUE`, `true`, `1`), and they send empty strings for unset
parameters; `Params` accepts all of them. Replies follow REDCap's shapes exactly, because
clients match on them: PHP `fputcsv` quoting, error bodies per format, bare counts.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import orjson
from werkzeug.datastructures import FileStorage, MultiDict

FORMATS = ("json", "csv", "xml")
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
    "text": "text/html; charset=utf-8",
}
DELIMITERS = {",": ",", "tab": "\t", ";": ";", "|": "|", "^": "^"}
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


class ApiError(Exception):
    """A refusal in REDCap's words; rendered in the request's return format."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Reply:
    """What a handler answers: a body and its content type (and REDCap's status 200)."""

    body: bytes
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Params:
    """A request's form parameters with REDCap's conventions."""

    def __init__(self, form: MultiDict[str, str], files: MultiDict[str, FileStorage] | None = None):
        self.form = form
        self.files = files or MultiDict()

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter's value; an empty string counts as absent."""
        value = self.form.get(name, "")
        return value if value != "" else default

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ApiError(f'The parameter "{name}" is missing')
        return value

    def require_array(self, name: str) -> list[str]:
        """An array parameter that must name at least one value."""
        values = self.array(name)
        if not values:
            raise ApiError(f'The parameter "{name}" is missing')
        return values

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean sent as true/false, True/FALSE or 1/0."""
        value = self.form.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise invalid_parameter(name)

    def array(self, name: str) -> list[str]:
        """`name[0]=a&name[1]=b`, `name[]=a`, or `name=a,b` (empty items dropped)."""
        indexed: list[tuple[int, str]] = []
        plain: list[str] = []
        pattern = re.compile(rf"{re.escape(name)}\[(\d*)\]")
        for key, value in self.form.items(multi=True):
            if key == name:
                plain += value.split(",")
            elif match := pattern.fullmatch(key):
                index = int(match.group(1)) if match.group(1) else len(indexed) + 10**9
                indexed.append((index, value))
        values = [v for _, v in sorted(indexed, key=lambda item: item[0])] + plain
        return [v.strip() for v in values if v.strip() != ""]

    @property
    def content(self) -> str:
        return self.get("content", "") or ""

    @property
    def action(self) -> str:
        """`action`, defaulting to import when `data` is sent and to export otherwise."""
        return self.get("action") or ("import" if "data" in self.form else "export")

    @property
    def format(self) -> str:
        fmt = (self.get("format") or "xml").lower()
        return fmt if fmt in (*FORMATS, "odm") else "xml"

    @property
    def return_format(self) -> str:
        """The format of error messages (and of import/delete replies)."""
        fmt = (self.get("returnFormat") or self.get("format") or "xml").lower()
        return fmt if fmt in FORMATS else "xml"

    @property
    def delimiter(self) -> str:
        return DELIMITERS.get(self.get("csvDelimiter") or ",", ",")


def invalid_values(parameter: str, values: Iterable[str]) -> ApiError:
    """REDCap's refusal of unknown names in an array parameter (its verified text for `fields`)."""
    listed = ", ".join(f"'{v}'" for v in values)
    return ApiError(f'The following values in the parameter "{parameter}" are not valid: {listed}')


def invalid_parameter(parameter: str) -> ApiError:
    """REDCap's refusal of a parameter's value (its verified text for `content`)."""
    return ApiError(f'The value of the parameter "{parameter}" is not valid')


# -- rendering ------------------------------------------------------------------------------


def php_csv(rows: Iterable[Sequence[Any]], delimiter: str = ",") -> str:
    """CSV as PHP's fputcsv writes it: quote a value holding the delimiter, a quote, CR, LF,
    tab or space; double embedded quotes; `\\n` line ends, trailing newline."""
    specials = {delimiter, '"', "\r", "\n", "\t", " "}
    lines = []
    for row in rows:
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            if any(ch in text for ch in specials):
                text = '"' + text.replace('"', '""') + '"'
            cells.append(text)
        lines.append(delimiter.join(cells))
    return "".join(line + "\n" for line in lines)


def render_rows(
    rows: list[dict[str, Any]],
    fmt: str,
    columns: Sequence[str] | None = None,
    *,
    delimiter: str = ",",
    header: Sequence[str] | None = None,
    root: str = "records",
) -> Reply:
    """A list of records in the requested format. With no rows, CSV is an empty body (as
    REDCap answers an empty record export) unless `columns` are given."""
    columns = list(columns if columns is not None else (rows[0].keys() if rows else []))
    if fmt == "json":
        return Reply(orjson.dumps(rows), CONTENT_TYPES["json"])
    if fmt == "csv":
        if not columns:
            return Reply(b"", CONTENT_TYPES["csv"])
        lines = [list(header or columns)] + [[row.get(c, "") for c in columns] for row in rows]
        return Reply(php_csv(lines, delimiter).encode(), CONTENT_TYPES["csv"])
    items = "".join(
        "<item>" + "".join(f"<{c}>{_cdata(row.get(c, ''))}</{c}>" for c in columns) + "</item>"
        for row in rows
    )
    body = f'<?xml version="1.0" encoding="UTF-8" ?>\n<{root}>\n{items}</{root}>\n'
    return Reply(body.encode(), CONTENT_TYPES["xml"])


def render_object(obj: Mapping[str, Any], fmt: str) -> Reply:
    """A single object (project info): JSON object, one CSV row, or one XML item."""
    if fmt == "json":
        return Reply(json.dumps(obj, ensure_ascii=False).encode(), CONTENT_TYPES["json"])
    if fmt == "csv":
        return Reply(php_csv([list(obj), list(obj.values())]).encode(), CONTENT_TYPES["csv"])
    fields = "".join(f"<{k}>{_cdata(v)}</{k}>" for k, v in obj.items())
    body = f'<?xml version="1.0" encoding="UTF-8" ?>\n<item>{fields}</item>\n'
    return Reply(body.encode(), CONTENT_TYPES["xml"])


def render_count(count: int, fmt: str) -> Reply:
    """The bare count REDCap answers imports and deletes with (`3` in every format)."""
    return Reply(str(count).encode(), CONTENT_TYPES.get(fmt, CONTENT_TYPES["text"]))


def render_text(text: str) -> Reply:
    return Reply(text.encode(), CONTENT_TYPES["text"])


def render_error(message: str, fmt: str, status: int) -> Reply:
    """REDCap's error body in the request's return format."""
    if fmt == "json":
        body = json.dumps({"error": message}, ensure_ascii=False)
    elif fmt == "csv":
        body = f"ERROR: {message}"
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  '
            f"<error>{escape(message)}</error>\n</hash>"
        )
    return Reply(body.encode(), CONTENT_TYPES.get(fmt, CONTENT_TYPES["xml"]), status)


def _cdata(value: Any) -> str:
    text = "" if value is None else str(value)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# -- parsing uploads ------------------------------------------------------------------------


def parse_data(text: str, fmt: str, delimiter: str = ",") -> list[dict[str, Any]]:
    """Rows sent as `data` in json, csv or xml (a bare `<item>` counts as one row)."""
    try:
        if fmt == "json":
            data = json.loads(text)
            if isinstance(data, dict):
                data = [data]
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise ValueError("expected a list of objects")
            return data
        if fmt == "csv":
            reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
            return [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
        return _parse_xml_rows(text)
    except (ValueError, csv.Error) as exc:
        raise ApiError(f"The data being imported is not formatted correctly ({exc})") from None


def _parse_xml_rows(text: str) -> list[dict[str, Any]]:
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as exc:
        raise ValueError(str(exc)) from None
    items = [root] if root.tag == "item" else root.findall("item")
    return [{child.tag: (child.text or "") for child in item} for item in items]
