"""The problem list a study nurse acts on: one row per problem, in bokmål and English.

Each problem names the record, event, repeat instance, instrument and field, the stored value
(blank for identifier fields, whose values never leave REDCap through a report), the rule, its
severity, a plain-language message in both languages built from the field labels in the
definitions, the record's data access group, and a link to the record's data entry page.

A cell is listed once, for the most specific rule it breaks (`RULES` is in that order): a
non-zero answer the skip rule hides is a skip violation, not also a hidden value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from hekta_redcap.core.texts import Entry, catalog, in_language
from hekta_redcap.randomization.audit import RULES as AUDIT_RULES
from hekta_redcap.randomization.audit import TEXTS as AUDIT
from hekta_redcap.redcap import logic
from hekta_redcap.redcap.fieldtypes import checkbox_column
from hekta_redcap.validation.layout import Layout, Spec
from hekta_redcap.validation.reading import codes_of, validation_of
from hekta_redcap.validation.schemas import exclusive_codes

# The problem list's columns (problems.csv); the frame also carries `digest` (see `_digests`).
PROBLEM_COLUMNS = (
    "record",
    "event",
    "instance",
    "instrument",
    "field",
    "value",
    "rule",
    "severity",
    "message_nb",
    "message_en",
    "dag",
    "link",
)
ERROR, ADVISORY = "error", "advisory"


@dataclass(frozen=True)
class Rule:
    """A rule's severity, what it finds (for the report's counts) and its message in bokmål
    and English (placeholders filled by `Message`)."""

    severity: str
    finds: tuple[str, str]
    message: tuple[str, str]


LANGS = ("nb", "en")
# The words are in texts.yaml beside this module: each rule's under `rules.<rule>`.
_TEXTS = catalog("hekta_redcap.validation", "texts.yaml")


def _pair(key: str, texts: Mapping[str, Entry] = _TEXTS) -> tuple[str, str]:
    entry = texts[key]
    return entry["nb"], entry["en"]


# In order of precedence: a cell breaking several rules is listed for the first.
_SEVERITIES = {
    "skip-violation": ERROR,
    "hidden-value": ERROR,
    "missing-code": ADVISORY,
    "type": ERROR,
    "national-id": ERROR,
    "choice": ERROR,
    "range": ERROR,
    "calc-mismatch": ERROR,
    "required": ERROR,
    "date-order": ERROR,
    "check": ERROR,  # each check's own severity and message come from the study file
    "blank": ADVISORY,
    "outlier": ADVISORY,
}
RULES: dict[str, Rule] = {
    rule: Rule(severity, _pair(f"rules.{rule}.finds"), _pair(f"rules.{rule}.message"))
    for rule, severity in _SEVERITIES.items()
}
# The randomization's rules (validation/randomization.py), errors in the audit's words.
RULES |= {
    rule: Rule(ERROR, _pair(f"rules.{rule}.finds", AUDIT), _pair(f"rules.{rule}.checks", AUDIT))
    for rule in AUDIT_RULES
}
# Per language: the words messages are built from, REDCap's own labels for its built-in
# choices (`yesno.1`: not in the definitions) and what a validation expects (`date`).
_WORDS = {lang: in_language(_TEXTS, lang, "words") for lang in LANGS}
_BUILT_IN = {lang: in_language(_TEXTS, lang, "built_in") for lang in LANGS}
_KINDS = {lang: in_language(_TEXTS, lang, "kinds") for lang in LANGS}
_DISPLAY_ORDER = {"dmy": (2, 1, 0), "mdy": (1, 2, 0)}
_STORED_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(.*)")


@dataclass(frozen=True)
class EntryLinks:
    """What a link to REDCap's data entry page needs: the base URL (the API URL without
    `api/`), REDCap's version, the project id and each event's id."""

    base: str
    version: str
    project_id: int
    event_ids: dict[str, int]

    def url(self, record: str, event: str, form: str, instance: str) -> str:
        query: dict[str, object] = {"pid": self.project_id, "id": record}
        if event in self.event_ids:
            query["event_id"] = self.event_ids[event]
        query["page"] = form
        if instance:
            query["instance"] = instance
        return f"{self.base}redcap_v{self.version}/DataEntry/index.php?{urlencode(query)}"


def assemble(layout: Layout, hits: pd.DataFrame, links: EntryLinks | None) -> pd.DataFrame:
    """The problem list from the rules' hits: one per cell, sorted by data access group,
    record, event, instance and field. Messages and links are made once per distinct text."""
    if hits.empty:
        return pd.DataFrame(columns=[*PROBLEM_COLUMNS, "digest"])
    rank = {rule: i for i, rule in enumerate(RULES)}
    hits = hits.assign(rank=hits["rule"].map(rank)).reset_index(drop=True)
    best = hits.groupby(["row", "field"])["rank"].transform("min")
    hits = hits[hits["rank"] == best].drop_duplicates(["row", "column", "rule"])
    rows = hits["row"].to_numpy()
    first_row = layout.record.drop_duplicates()
    first_row = pd.Series(first_row.index, index=first_row.to_numpy())
    columns = zip(hits["column"], hits["field"], strict=True)
    spec = [layout.specs.get(column) or layout.field_spec(field) for column, field in columns]
    hits = hits.assign(
        record=layout.record.to_numpy()[rows],
        event=layout.event.to_numpy()[rows],
        instance=layout.instance.to_numpy()[rows],
        dag=layout.dag.to_numpy()[rows],
        instrument=[s.form for s in spec],
        spec=spec,
        context=_context(layout, hits),
        record_order=layout.record.iloc[rows].map(first_row).to_numpy(),
        field_order=hits["field"].map({name: i for i, name in enumerate(layout.fields)}),
    ).sort_values(["dag", "record_order", "row", "field_order", "rank", "column"])
    texts = _once(
        hits,
        ["rule", "column", "field", "value", "detail", "other", "context"],
        lambda hit: [Message(layout, hit.spec, hit).text(lang) for lang in LANGS],
    )
    page = ["record", "event", "instrument", "instance"]
    url = (
        _once(hits, page, lambda hit: [links.url(*(getattr(hit, k) for k in page))])
        if links
        else None
    )
    identifier = np.array([s.field.identifier for s in hits["spec"]], dtype=bool)
    problems = hits.assign(
        digest=_digests(layout, hits),
        value=np.where(identifier, "", hits["value"]),
        severity=_severities(layout, hits),
        message_nb=texts[0],
        message_en=texts[1],
        link=url[0] if url is not None else "",
    )
    return problems[[*PROBLEM_COLUMNS, "digest"]].reset_index(drop=True)


def _digests(layout: Layout, hits: pd.DataFrame) -> np.ndarray:
    """A digest of each problem's stored answer (every column of its field), so that a value
    a person accepted is known again, and a changed one is not, without keeping the value."""
    out = np.empty(len(hits), dtype=object)
    for name, at in hits.groupby("field", sort=False).indices.items():
        columns = [s.column for s in layout.fields[name]]
        cells = layout.raw[columns].iloc[hits["row"].to_numpy()[at]]
        joined = cells.agg("\x1f".join, axis=1)
        out[at] = [hashlib.sha256(f"{name}\x1e{v}".encode()).hexdigest()[:32] for v in joined]
    return out


def _severities(layout: Layout, hits: pd.DataFrame) -> pd.Series:
    """Each hit's severity: its rule's, or for the study's checks the check's own."""
    severity = hits["rule"].map({rule: r.severity for rule, r in RULES.items()})
    own = {c.name: c.severity for c in layout.study.data_quality.checks}
    checks = hits["rule"] == "check"
    return severity.mask(checks, hits["detail"].map(own))


def _once(
    hits: pd.DataFrame, keys: list[str], make: Callable[[Any], list[str]]
) -> list[np.ndarray]:
    """`make` called once per distinct combination of `keys`, spread back over the hits."""
    group = hits.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    first = hits[~pd.Series(group).duplicated().to_numpy()]
    made = [make(hit) for hit in first.itertuples(index=False)]
    order = np.argsort(pd.Series(group).drop_duplicates().to_numpy())
    return [np.array([m[i] for m in made], dtype=object)[order][group] for i in range(len(made[0]))]


def _context(layout: Layout, hits: pd.DataFrame) -> np.ndarray:
    """What else a message reads from the row: the answers a skip rule's condition names."""
    context = np.full(len(hits), "", dtype=object)
    skips = (hits["rule"] == "skip-violation").to_numpy()
    for i in np.flatnonzero(skips):
        refs = logic.references(logic.parse(hits["detail"].iat[i]))
        row = hits["row"].iat[i]
        context[i] = "\x1f".join(_stored(layout, ref, row) for ref in refs if ref.field)
    return context


def _stored(layout: Layout, ref: logic.Ref, row: int) -> str:
    """What a reference to the row's own field holds (a checkbox option: 1 or 0)."""
    assert ref.field is not None
    if ref.code is None:
        return layout.raw[ref.field].iat[row]
    return "1" if layout.raw[checkbox_column(ref.field, ref.code)].iat[row] == "1" else "0"


class Message:
    """The plain-language text of one problem in each language."""

    def __init__(self, layout: Layout, spec: Spec, hit: Any) -> None:
        self.layout, self.spec, self.hit = layout, spec, hit

    def text(self, lang: str) -> str:
        words = _WORDS[lang]
        hit, spec = self.hit, self.spec
        value = self.shown(spec, hit.value, lang)
        fill = {
            "label": self.label(spec, lang, option=hit.column != spec.field.name),
            "value": value,
            "the_value": words["the_value"] + (f" {value}" if value else ""),
        }
        match hit.rule:
            case "type":
                fill["kind"] = self.kind(lang)
            case "range":
                bound = spec.field.max if hit.detail == "max" else spec.field.min
                assert bound is not None  # a range problem is found only against a set bound
                shown = (
                    words["today"] if bound in ("today", "now") else self.shown(spec, bound, lang)
                )
                if (validation_of(spec) or "").startswith("date"):
                    fill |= {"side": words[f"{hit.detail}-date"], "bound": f"({shown or bound})"}
                else:
                    fill |= {"side": words[hit.detail], "bound": shown or str(bound)}
            case "choice" if hit.detail == "exclusive":
                choices = spec.instrument.choices_of(spec.field)
                alone = [c for c in choices if c.code in exclusive_codes(spec)]
                names = [_quoted(spec.instrument.choice_label(c, lang), lang) for c in alone]
                fill["option"] = f" {words['or']} ".join(names)
                return _TEXTS["exclusive"][lang].format_map(fill)
            case "choice":
                fill["codes"] = ", ".join(codes_of(spec) or [])
            case "calc-mismatch":
                blank = "" if hit.value else f" ({words['blank']})"
                fill["stored"] = f" {value}" if value else blank
                fill["expected"] = hit.other or words["blank"]
            case "missing-code":
                meanings = {m.code: m.label for m in self.layout.study.missing_data_codes}
                fill["code"] = hit.value
                fill["meaning"] = ", ".join(meanings.get(c, c) for c in hit.value.split(","))
            case "date-order":
                other = self.layout.field_spec(hit.detail)
                other_value = self.shown(other, hit.other, lang)
                fill |= {
                    "when": f" ({value})" if value else "",
                    "other_label": self.label(other, lang),
                    "other_when": f" ({other_value})" if other_value else "",
                }
            case "skip-violation":
                fill["reason"] = self.reason(hit.detail, lang)
            case "outlier":
                fill["mean"] = hit.other
            case "national-id":
                fill["reason"] = _TEXTS[f"identity.{hit.detail}"][lang]
            case "check":
                check = next(
                    c for c in self.layout.study.data_quality.checks if c.name == hit.detail
                )
                return (check.message.get(lang) or check.name).format_map(fill)
        return _TEXTS[f"rules.{hit.rule}.message"][lang].format_map(fill)

    @staticmethod
    def label(spec: Spec, lang: str, option: bool = False) -> str:
        """A field's label in quotes; a checkbox option's with the option's label."""
        text = spec.instrument.label_of(spec.field, lang)
        if option and spec.code is not None:
            choice = next(c for c in spec.instrument.choices_of(spec.field) if c.code == spec.code)
            text = f"{text}: {spec.instrument.choice_label(choice, lang)}"
        return _quoted(text, lang)

    @staticmethod
    def shown(spec: Spec, value: str, lang: str) -> str:
        """A stored value as a person sees it: dates in the field's display order, choices with
        their label; nothing for an identifier field."""
        if spec.field.identifier or not value:
            return ""
        validation = validation_of(spec) or ""
        order = _DISPLAY_ORDER.get(validation.rpartition("_")[2])
        match = _STORED_DATE.fullmatch(value)
        if validation.startswith("date") and order and match:
            parts = match.groups()
            return "-".join(parts[j] for j in order) + parts[3]
        built_in = _BUILT_IN[lang].get(f"{spec.field.type}.{value}")
        if built_in is not None:
            return f"{value} ({built_in})"
        if spec.field.type in ("radio", "dropdown"):
            for choice in spec.instrument.choices_of(spec.field):
                if choice.code == value and choice.label is not None:
                    return f"{value} ({spec.instrument.choice_label(choice, lang)})"
        return value

    def kind(self, lang: str) -> str:
        """What the field's validation expects, in words."""
        validation = validation_of(self.spec) or ""
        places = re.fullmatch(r"number_(\d)dp(_comma_decimal)?", validation)
        if places:
            return _TEXTS["decimal_number"][lang].format(n=places.group(1))
        families = ("datetime", "date", "time", "number")
        family = next((f for f in families if validation.startswith(f)), validation)
        kind = _KINDS[lang].get(family)
        return kind if kind is not None else _TEXTS["valid_for"][lang].format(validation=validation)

    def reason(self, when: str, lang: str) -> str:
        """A skip rule's condition as this row's answers: «Item 1» er «0 (Aldri)»."""
        words = _WORDS[lang]
        parts = []
        for ref in dict.fromkeys(logic.references(logic.parse(when))):
            if ref.field is None:
                continue
            spec = self.layout.field_spec(ref.field)
            stored = _stored(self.layout, ref, self.hit.row)
            shown = self.shown(spec, stored, lang) or words["blank"]
            parts.append(f"{self.label(spec, lang)} {words['is']} {shown}")
        return f" {words['and']} ".join(parts)


def _quoted(text: str, lang: str) -> str:
    """A label or option as quoted in the language: «Yrke» in bokmål, “Occupation” in English."""
    return _TEXTS["quoted"][lang].format(text=text)
