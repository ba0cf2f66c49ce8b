"""PDF of instruments: blank forms, one record's forms, or every record's (`allRecords`).

REDCap renders these with PHP's FPDF, and PyCap's doctest checks that the body starts with
FPDF's `%PDF-1.3\\n3 0 obj\\n`: FPDF writes the pages first as objects 3, 4, … and the page tree
(1) and resources (2) after them. Neither fpdf2 nor pypdf writes that layout (both start with
a binary comment and object 1), so `render_pdf` writes it: plain text pages in the standard
Courier fonts, whose fixed advance makes line wrapping exact without font metrics.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

from hekta_redcap.devtools.sandbox.api.files import (
    as_id,
    document,
    file_reply,
    repeat_instance,
    require_record,
)
from hekta_redcap.devtools.sandbox.api.surveys import form_filled
from hekta_redcap.devtools.sandbox.endpoints import Call, endpoint
from hekta_redcap.devtools.sandbox.models import Event, now
from hekta_redcap.devtools.sandbox.wire import Reply, invalid_parameter
from hekta_redcap.redcap.fieldtypes import checkbox_column

PAGE_WIDTH, PAGE_HEIGHT = 595.28, 841.89  # A4 in points, as FPDF's default
MARGIN = 42.52  # 15 mm
CHAR_WIDTH = 0.6  # Courier's advance, in ems
STYLES = {"title": ("F2", 14), "heading": ("F2", 11), "label": ("F2", 9), "text": ("F1", 9)}
FONTS = {"F1": "Courier", "F2": "Courier-Bold"}
INDENT = 18.0
BLANK = "_" * 30


@dataclass
class Line:
    style: str
    text: str
    indent: int = 0


@dataclass
class Section:
    """One form as printed: blank (no record) or one record's values at an event/instance."""

    form: str
    record: str | None = None
    event: Event | None = None
    instance: int = 0
    values: dict[str, str] = field(default_factory=dict)


# -- writing PDF ----------------------------------------------------------------------------------


def _pdf_text(text: str) -> bytes:
    """A PDF string literal in WinAnsi (cp1252); what it cannot show becomes '?'."""
    raw = re.sub(r"[\x00-\x1f]", " ", text).encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _layout(lines: list[Line]) -> list[bytes]:
    """Wrap and paginate lines into one content stream per page."""
    pages: list[list[bytes]] = [[]]
    y = PAGE_HEIGHT - MARGIN
    for line in lines:
        if line.style == "break":  # each form starts a page, as in REDCap's PDFs
            if pages[-1]:
                pages.append([])
                y = PAGE_HEIGHT - MARGIN
            continue
        font, size = STYLES[line.style]
        left = MARGIN + line.indent * INDENT
        width = int((PAGE_WIDTH - MARGIN - left) / (size * CHAR_WIDTH))
        gap = size * 0.8 if line.style in ("title", "heading") else 0
        for i, part in enumerate(textwrap.wrap(line.text, width) or [""]):
            y -= size * 1.3 + (gap if i == 0 else 0)
            if y < MARGIN:
                pages.append([])
                y = PAGE_HEIGHT - MARGIN - size * 1.3
            pages[-1].append(
                b"BT /%s %d Tf %.2f %.2f Td %s Tj ET"
                % (font.encode(), size, left, y, _pdf_text(part))
            )
    return [b"\n".join(page) for page in pages]


def render_pdf(lines: list[Line], title: str) -> bytes:
    """A PDF 1.3 file of text lines, laid out object by object as FPDF writes it."""
    out = bytearray(b"%PDF-1.3\n")
    offsets: dict[int, int] = {}

    def put(number: int, body: bytes) -> None:
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    pages = _layout(lines)
    first_font = 3 + 2 * len(pages)
    for i, stream in enumerate(pages):
        number = 3 + 2 * i
        put(
            number,
            b"<</Type /Page\n/Parent 1 0 R\n/Resources 2 0 R\n/Contents %d 0 R>>" % (number + 1),
        )
        put(number + 1, b"<</Length %d>>\nstream\n%s\nendstream" % (len(stream), stream))
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(len(pages)))
    put(
        1,
        b"<</Type /Pages\n/Kids [%s]\n/Count %d\n/MediaBox [0 0 %.2f %.2f]\n>>"
        % (kids, len(pages), PAGE_WIDTH, PAGE_HEIGHT),
    )
    fonts = b""
    for i, (name, base) in enumerate(FONTS.items()):
        put(
            first_font + i,
            b"<</Type /Font\n/BaseFont /%s\n/Subtype /Type1\n/Encoding /WinAnsiEncoding\n>>"
            % base.encode(),
        )
        fonts += b"/%s %d 0 R\n" % (name.encode(), first_font + i)
    put(2, b"<</ProcSet [/PDF /Text]\n/Font <<\n%s>>\n>>" % fonts)
    info = first_font + len(FONTS)
    stamp = re.sub(r"\D", "", now())
    put(
        info,
        b"<</Producer (REDCap)\n/Title %s\n/CreationDate (D:%s)\n>>"
        % (_pdf_text(title), stamp.encode()),
    )
    put(info + 1, b"<</Type /Catalog\n/Pages 1 0 R\n>>")
    xref = len(out)
    out.extend(b"xref\n0 %d\n0000000000 65535 f \n" % (info + 2))
    out.extend(b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, info + 2)))
    out.extend(
        b"trailer\n<<\n/Size %d\n/Root %d 0 R\n/Info %d 0 R\n>>\nstartxref\n%d\n%%%%EOF\n"
        % (info + 2, info + 1, info, xref)
    )
    return bytes(out)


# -- what to print --------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Labels may hold HTML; the PDF shows their text."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", text)).strip()


def _document_name(call: Call, doc_id: str) -> str:
    found = document(call, as_id(doc_id))
    return found["name"] if found else ""


def _field_lines(call: Call, meta: dict[str, str], section: Section, compact: bool) -> list[Line]:
    """A field's label and its value, or its choices marked [X] when chosen; with
    `compactDisplay`, a record's empty fields are left out."""
    p = call.p
    name, kind, values = meta["field_name"], meta["field_type"], section.values
    head = [Line("label", _plain(meta["section_header"]))] if meta["section_header"] else []
    if kind == "descriptive":
        return [*head, Line("text", _plain(meta["field_label"]))]
    choices = p.choices(name)
    if kind == "checkbox":
        marks = [values.get(checkbox_column(name, code)) == "1" for code, _ in choices]
    else:
        marks = [values.get(name) == code for code, _ in choices]
    value = values.get(name) or (section.record or "" if name == p.record_id_field else "")
    if kind == "file":
        value = _document_name(call, value)
    if choices:
        body = [
            Line("text", f"[{'X' if on else ' '}] {_plain(text)}", 1)
            for (_, text), on in zip(choices, marks, strict=True)
        ]
    else:
        body = [Line("text", value or (BLANK if section.record is None else ""), 1)]
    if compact and section.record is not None and not (any(marks) or value):
        return []
    return [*head, Line("label", _plain(meta["field_label"])), *body]


def _section_lines(call: Call, section: Section, compact: bool) -> list[Line]:
    p = call.p
    where = [f"Record ID {section.record}"] if section.record is not None else []
    if section.event is not None:
        arm = dict(p.arms).get(section.event.arm_num, "")
        where.append(f"{section.event.event_name} (Arm {section.event.arm_num}: {arm})")
    if section.instance:
        where.append(f"Instance {section.instance}")
    status = {
        "field_name": f"{section.form}_complete",
        "field_type": "dropdown",
        "field_label": "Complete?",
        "section_header": "Form Status",
    }
    lines = [Line("heading", p.form_labels[section.form])]
    lines += [Line("text", " | ".join(where))] if where else []
    for meta in [*p.fields_of(section.form), status]:
        lines += _field_lines(call, meta, section, compact)
    return lines


def _sections(call: Call) -> list[Section]:
    """Blank forms, or the forms a record (or every record, with `allRecords`) has data in,
    limited to `instrument`, `event` and `repeat_instance` when given."""
    p, params = call.p, call.params
    form = params.get("instrument")
    if form is not None and form not in p.forms:
        raise invalid_parameter("instrument")
    forms = [form] if form else p.forms
    event = None
    if p.longitudinal and (name := params.get("event")) is not None:
        event = p.event(name)
        if event is None:
            raise invalid_parameter("event")
    instance = repeat_instance(call)
    record = params.get("record")
    if params.get("allRecords") is not None:  # REDCap: any value means every record
        records = p.record_ids(call.u.dag_id)
        record = None
    elif record is not None:
        require_record(call, record)
        records = [record]
    else:
        return [Section(f) for f in forms]
    sections = []
    rows = [
        row
        for row in p.data_rows(records)
        if (event is None or row.event_id == event.event_id)
        and (instance is None or row.instance in (0, instance))
    ]
    for row in rows:
        if row.repeat_instrument:
            row_forms = [row.repeat_instrument]
        else:
            row_forms = [f for f in p.forms_at(row.event_id) if not p.repeats_form(row.event_id, f)]
        sections += [
            Section(f, row.record, p.event_by_id(row.event_id), row.instance, row.values)
            for f in row_forms
            if f in forms and form_filled(p, row.values, f)
        ]
    return sections or [Section(f, record, event) for f in forms]


def _file_name(call: Call) -> str:
    """[U] REDCap's naming is unverified: the instrument (or project title), then the time."""
    base = call.params.get("instrument") or call.p.info.get("project_title") or "REDCap"
    stamp = now().replace(" ", "_").replace(":", "")[:15]
    return f"{re.sub(r'[^A-Za-z0-9]', '', base.title())[:30] or 'REDCap'}_{stamp}.pdf"


@endpoint("pdf", "export", privilege="api_export")
def export_pdf(call: Call) -> Reply:
    title = call.p.info.get("project_title") or "REDCap"
    compact = call.params.flag("compactDisplay")
    lines = [Line("title", title)]
    for i, section in enumerate(_sections(call)):
        if i:
            lines.append(Line("break", ""))
        lines += _section_lines(call, section, compact)
    return file_reply(_file_name(call), "application/pdf", render_pdf(lines, title))
