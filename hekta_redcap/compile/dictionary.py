"""The definitions compiled to REDCap's data dictionary rows (REDCap's 18 columns, in order),
each remembering the definition line it came from.

    >>> rows = compile_project(load_project("hekta"))
    >>> rows[0].field_name, rows[0].form_name
    ('record_id', 'consent')
"""

from __future__ import annotations

from hekta_redcap.definitions.instruments import Field, Instrument
from hekta_redcap.definitions.model import DEFAULT_LANGUAGE, Text
from hekta_redcap.definitions.study import Project
from hekta_redcap.redcap.dictionary import DictRow
from hekta_redcap.redcap.fieldtypes import CHOICE_TYPES


def _text(text: Text | None, lang: str) -> str:
    return (text.get(lang) or "") if text else ""


def _flag(value: bool) -> str:
    return "y" if value else ""


def choices_string(instrument: Instrument, field: Field, lang: str = DEFAULT_LANGUAGE) -> str:
    """REDCap's `code, label | code, label` form of a field's choices."""
    return " | ".join(
        f"{c.code}, {instrument.choice_label(c, lang)}" for c in instrument.choices_of(field)
    )


def choices_column(instrument: Instrument, f: Field, lang: str = DEFAULT_LANGUAGE) -> str:
    """The 'Choices, Calculations, OR Slider Labels' cell: an exact text the definition holds
    (`choices_text`, a calc, an sql query, an ontology), else the choices or slider labels."""
    for exact in (f.choices_text, f.calc, f.sql, f.ontology):
        if exact is not None:
            return exact
    if f.type in CHOICE_TYPES:
        return choices_string(instrument, f, lang)
    if f.type == "slider" and f.slider:
        return " | ".join(_text(t, lang) for t in (f.slider.left, f.slider.mid, f.slider.right))
    return ""


def compile_field(instrument: Instrument, f: Field, lang: str = DEFAULT_LANGUAGE) -> DictRow:
    validation = f.validation or ""
    if f.type == "slider" and f.slider and f.slider.show_number:
        validation = "number"
    return DictRow(
        field_name=f.name,
        form_name=instrument.form,
        section_header=_text(f.section, lang),
        field_type=f.type,
        field_label=instrument.label_of(f, lang),
        select_choices_or_calculations=choices_column(instrument, f, lang),
        field_note=_text(f.note, lang),
        text_validation_type_or_show_slider_number=validation,
        text_validation_min=f.min or "",
        text_validation_max=f.max or "",
        identifier=_flag(f.identifier),
        branching_logic=f.branching or "",
        required_field=_flag(f.required),
        custom_alignment=f.align or "",
        question_number=f.question_number or "",
        matrix_group_name=f.matrix or "",
        matrix_ranking=_flag(f.matrix_ranking),
        field_annotation=f.annotation or "",
        origin=f.origin(),
    )


def compile_project(project: Project, lang: str = DEFAULT_LANGUAGE) -> list[DictRow]:
    """The project's data dictionary rows in form order (labels in `lang`)."""
    return [compile_field(inst, f, lang) for inst, f in project.fields()]
