"""Definitions made from other definitions when a project loads, so that a list lives once:
a form's fields repeated under new names (`items_from`: each reviewer's own IPS-25 ratings)
and choice sets made from the study's site list or from a form's items (`generated_choices`).

    >>> project = load_project("ips_fidelity")
    >>> [f.name for f in project.instruments["ips25_rater"].fields][1:3]
    ['ips25r_s1', 'ips25r_s2']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hekta_redcap.core.errors import DefinitionError, Origin
from hekta_redcap.definitions.instruments import Choice, GeneratedChoices, Instrument
from hekta_redcap.definitions.model import Text

if TYPE_CHECKING:
    from hekta_redcap.definitions.study import Study


def generate(study: Study, instruments: dict[str, Instrument]) -> None:
    """Add the generated fields and choice sets to `instruments` (in place)."""
    for instrument in instruments.values():
        if instrument.items_from is not None:
            _repeat_items(instrument, instruments)
        for name, spec in instrument.generated_choices.items():
            where = instrument.origin("generated_choices", name)
            if name in instrument.choice_sets:
                raise DefinitionError(f"choice set '{name}' is also generated", where)
            instrument.choice_sets[name] = _choices(study, instruments, spec, where)


def item_suffix(form: str, name: str) -> str:
    """A form's field name without the form's own prefix (`ips25_s1` -> `s1`)."""
    return name.removeprefix(f"{form}_")


def _source(instruments: dict[str, Instrument], form: str, where: Origin | None) -> Instrument:
    source = instruments.get(form)
    if source is None:
        raise DefinitionError(f"form '{form}' is not in this project", where)
    strays = [f.name for f in source.fields if not f.name.startswith(f"{form}_")]
    if strays:
        raise DefinitionError(
            f"form '{form}': field '{strays[0]}' is not named '{form}_...'", where
        )
    return source


def _repeat_items(instrument: Instrument, instruments: dict[str, Instrument]) -> None:
    spec = instrument.items_from
    assert spec is not None
    where = instrument.origin("items_from")
    source = _source(instruments, spec.form, where)
    if source is instrument or source.items_from is not None:
        raise DefinitionError(f"items_from: form '{spec.form}' has items of its own", where)
    for field in source.fields:
        copy = field.model_copy(deep=True)
        copy.name = spec.prefix + item_suffix(spec.form, field.name)
        if isinstance(field.choices, str):
            copy.choices = list(source.choices_of(field))
        instrument.fields.append(copy)
    # the copies carry the source's text: licensed text installed there is installed here
    instrument._overlay_applied = source._overlay_applied


def _choices(
    study: Study, instruments: dict[str, Instrument], spec: GeneratedChoices, where: Origin | None
) -> list[Choice]:
    if spec.sites:
        return [Choice(code=site.code, label=site.label) for site in study.sites]
    assert spec.items_of is not None
    source = _source(instruments, spec.items_of, where)
    return [
        Choice(
            code=item_suffix(source.form, f.name),
            label=Text(nb=source.label_of(f, "nb"), en=source.label_of(f, "en")),
        )
        for f in source.fields
    ]
