"""The state of one emulated REDCap project and the rules REDCap applies to it.

This is the server's domain model (as moto keeps its `models` apart from its HTTP layer): the
API area modules under `sandbox/api/` translate HTTP parameters into calls on `ProjectModel`
and never touch SQL for metadata, design or record data themselves.

A project's structure (metadata, instruments, arms, events, mappings, repeating setup) is
loaded once per request; record data lives in `data` rows, one JSON object per record × event
× repeat instance, holding only non-empty values (checkbox options as `field___code: "1"`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sqlite3
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from hekta_redcap.redcap.dictionary import COLUMNS
from hekta_redcap.redcap.fieldtypes import checkbox_column, parse_choices
from hekta_redcap.redcap.names import DAG, natural_key, unique_event_name

METADATA_COLUMNS = COLUMNS  # REDCap's 18 data dictionary keys, in order
COMPLETE_CHOICES = (("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete"))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SQL_CHUNK = 900  # record names per `IN (...)` query
CLASSIC_EVENT_ID = 0  # the event id of a classic project's data and repeating setup
FIRST_ARM, FIRST_EVENT = "Arm 1", "Event 1"  # what REDCap names a new project's first arm/event


def now() -> str:
    """Server time as REDCap writes it (local time, seconds)."""
    return dt.datetime.now().strftime(TIME_FORMAT)


@dataclass(frozen=True)
class Event:
    event_id: int
    arm_num: int
    event_name: str
    unique_event_name: str
    custom_event_label: str = ""
    day_offset: float | None = None
    offset_min: float | None = None
    offset_max: float | None = None


@dataclass(frozen=True)
class Randomization:
    """A randomization of REDCap's module: its id, the target field and the strata fields,
    each with the id of the event holding it (`redcap_data_access_group` stands for the
    record's data access group)."""

    rid: int
    target: str
    target_event: int
    strata: tuple[tuple[str, int], ...]

    @property
    def fields(self) -> list[str]:
        """The target and the strata fields: what the allocation table's columns name."""
        return [self.target, *(name for name, _ in self.strata)]


@dataclass
class DataRow:
    """One record × event × repeat instance and its non-empty values."""

    record: str
    event_id: int
    repeat_instrument: str
    instance: int
    values: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.record, self.event_id, self.repeat_instrument, self.instance)


class ProjectModel:
    """A project as REDCap sees it, bound to the current request's connection."""

    def __init__(self, conn: sqlite3.Connection, project_id: int) -> None:
        self.conn = conn
        self.project_id = project_id

    # -- project settings -------------------------------------------------------------------

    @cached_property
    def info(self) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT info FROM project WHERE project_id = ?", (self.project_id,)
        ).fetchone()
        return json.loads(row[0])

    def save_info(self) -> None:
        self.conn.execute(
            "UPDATE project SET info = ? WHERE project_id = ?",
            (json.dumps(self.info), self.project_id),
        )

    @property
    def longitudinal(self) -> bool:
        return bool(self.info.get("is_longitudinal"))

    @property
    def in_production(self) -> bool:
        return bool(self.info.get("in_production"))

    @property
    def surveys_enabled(self) -> bool:
        return bool(self.info.get("surveys_enabled"))

    @property
    def autonumbering(self) -> bool:
        return bool(self.info.get("record_autonumbering_enabled"))

    def make_longitudinal(self) -> None:
        """Switch a classic project to longitudinal as REDCap does: `Arm 1` with `Event 1`
        (`event_1_arm_1`), every instrument designated to it, and the data, repeating setup and
        survey participants kept under it (a record's survey queue row stays event-less)."""
        self.save_arm(1, FIRST_ARM)
        event_id = self.save_event(None, 1, FIRST_EVENT)
        self._move_event(CLASSIC_EVENT_ID, event_id)
        self.replace_mapping((event_id, form) for form in self.forms)
        self._set_longitudinal(True)

    def make_classic(self) -> None:
        """Switch a longitudinal project of at most one event to classic, as REDCap does: the
        event's data, repeating instruments and survey participants stay as the project's; the
        arms, the event and its designations go. Callers refuse more events first."""
        assert len(self.events) <= 1, "REDCap makes only a single-event project classic"
        for event in self.events:
            self._move_event(event.event_id, CLASSIC_EVENT_ID)
        for table in ("form_event", "event", "arm"):
            self.conn.execute(f"DELETE FROM {table} WHERE project_id = ?", (self.project_id,))
        self._set_longitudinal(False)

    def _move_event(self, old: int, new: int) -> None:
        """Put an event's data, repeating setup and survey participants under another id."""
        queue_rows_stay = " AND form_name != ''"
        for table, only in (("data", ""), ("repeating", ""), ("participant", queue_rows_stay)):
            self.conn.execute(
                f"UPDATE {table} SET event_id = ? WHERE project_id = ? AND event_id = ?{only}",
                (new, self.project_id, old),
            )

    def _set_longitudinal(self, longitudinal: bool) -> None:
        self.info["is_longitudinal"] = int(longitudinal)
        self.save_info()
        self._forget()

    # -- metadata ---------------------------------------------------------------------------

    @cached_property
    def metadata(self) -> list[dict[str, str]]:
        """The data dictionary rows (REDCap's 18 keys), in field order."""
        rows = self.conn.execute(
            "SELECT row FROM metadata WHERE project_id = ? ORDER BY position", (self.project_id,)
        )
        return [json.loads(r[0]) for r in rows]

    @cached_property
    def fields(self) -> dict[str, dict[str, str]]:
        return {row["field_name"]: row for row in self.metadata}

    @property
    def record_id_field(self) -> str:
        return self.metadata[0]["field_name"] if self.metadata else "record_id"

    @cached_property
    def forms(self) -> list[str]:
        """Instrument names in form order."""
        return list(dict.fromkeys(row["form_name"] for row in self.metadata))

    @cached_property
    def form_labels(self) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT form_name, label FROM instrument WHERE project_id = ?", (self.project_id,)
        )
        labels = dict(rows.fetchall())
        return {form: labels.get(form, default_form_label(form)) for form in self.forms}

    def fields_of(self, form: str) -> list[dict[str, str]]:
        return [row for row in self.metadata if row["form_name"] == form]

    def form_of(self, field_name: str) -> str | None:
        """The form a field (or `<form>_complete`, or a checkbox column) belongs to."""
        base = field_name if field_name in self.fields else field_name.split("___")[0]
        if base in self.fields:
            return self.fields[base]["form_name"]
        form = field_name.removesuffix("_complete")
        return form if field_name.endswith("_complete") and form in self.forms else None

    def choices(self, field_name: str) -> list[tuple[str, str]]:
        """A field's codes and labels (yes/no, true/false and `_complete` included)."""
        if field_name.endswith("_complete") and field_name not in self.fields:
            return list(COMPLETE_CHOICES)
        row = self.fields[field_name]
        if row["field_type"] == "yesno":
            return [("1", "Yes"), ("0", "No")]
        if row["field_type"] == "truefalse":
            return [("1", "True"), ("0", "False")]
        if row["field_type"] in ("radio", "dropdown", "checkbox"):
            return parse_choices(row["select_choices_or_calculations"])
        return []

    def export_columns(self, row: dict[str, str]) -> list[str]:
        """The export columns of one metadata row: none for descriptive fields, one per option
        for checkboxes, else the field itself."""
        if row["field_type"] == "descriptive":
            return []
        if row["field_type"] == "checkbox":
            return [
                checkbox_column(row["field_name"], c) for c, _ in self.choices(row["field_name"])
            ]
        return [row["field_name"]]

    def replace_metadata(self, rows: list[dict[str, str]]) -> None:
        """Replace the dictionary, as REDCap's import_metadata does: values of dropped fields,
        checkbox options and forms are lost, a dropped form leaves the mapping and repeating
        setup, and every user and role gets full rights to new forms [I]."""
        old_columns, old_forms = self._value_columns(), list(self.forms)
        self.conn.execute("DELETE FROM metadata WHERE project_id = ?", (self.project_id,))
        self.conn.executemany(
            "INSERT INTO metadata VALUES (?, ?, ?)",
            [
                (self.project_id, i, json.dumps({c: row.get(c, "") for c in METADATA_COLUMNS}))
                for i, row in enumerate(rows)
            ],
        )
        forms = list(dict.fromkeys(r["form_name"] for r in rows))
        self.conn.execute(
            f"DELETE FROM instrument WHERE project_id = ? AND form_name NOT IN "
            f"({','.join('?' * len(forms))})",
            (self.project_id, *forms),
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO instrument VALUES (?, ?, ?)",
            [(self.project_id, form, default_form_label(form)) for form in forms],
        )
        self._forget()
        if dropped := [f for f in old_forms if f not in forms]:
            self.replace_mapping(
                (event_id, form)
                for event_id, mapped in self.mapping.items()
                for form in mapped
                if form not in dropped
            )
            self.replace_repeating(
                (event_id, form, label)
                for (event_id, form), label in self.repeating.items()
                if form not in dropped
            )
            self.conn.execute(
                f"DELETE FROM data WHERE project_id = ? AND repeat_instrument IN "
                f"({','.join('?' * len(dropped))})",
                (self.project_id, *dropped),
            )
        if gone := old_columns - self._value_columns():
            self._drop_values(gone)
        if added := [f for f in forms if f not in old_forms]:
            self._grant_forms(added)

    def _value_columns(self) -> set[str]:
        """Every name a stored value can have: export columns, form status and timestamp."""
        columns = {c for row in self.metadata for c in self.export_columns(row)}
        return columns | {
            f"{f}_{suffix}" for f in self.forms for suffix in ("complete", "timestamp")
        }

    def _drop_values(self, columns: set[str]) -> None:
        for row in self.data_rows():
            kept = {k: v for k, v in row.values.items() if k not in columns}
            if kept != row.values:
                row.values = kept
                self.save_row(row)

    def _grant_forms(self, forms: list[str]) -> None:
        for table, key in (("user", "username"), ("role", "role_id")):
            rows = self.conn.execute(
                f"SELECT {key}, rights FROM {table} WHERE project_id = ?", (self.project_id,)
            ).fetchall()
            for owner, text in rows:
                rights = json.loads(text)
                for kind in ("forms", "forms_export"):
                    rights[kind] = {**dict.fromkeys(forms, 1), **(rights.get(kind) or {})}
                self.conn.execute(
                    f"UPDATE {table} SET rights = ? WHERE project_id = ? AND {key} = ?",
                    (json.dumps(rights), self.project_id, owner),
                )

    def set_form_label(self, form: str, label: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO instrument VALUES (?, ?, ?)", (self.project_id, form, label)
        )
        self._forget()

    def _forget(self) -> None:
        """Drop cached structure after a design change."""
        for name in (
            "metadata",
            "fields",
            "forms",
            "form_labels",
            "events",
            "arms",
            "mapping",
            "repeating",
        ):
            self.__dict__.pop(name, None)

    # -- arms, events, mapping, repeating -----------------------------------------------------

    @cached_property
    def arms(self) -> list[tuple[int, str]]:
        rows = self.conn.execute(
            "SELECT arm_num, name FROM arm WHERE project_id = ? ORDER BY arm_num",
            (self.project_id,),
        )
        return [(r[0], r[1]) for r in rows]

    @cached_property
    def events(self) -> list[Event]:
        """Events in arm order, then creation order, with REDCap's computed unique names
        (a repeated name in one arm gets a letter: `event_2_arm_1b`)."""
        rows = self.conn.execute(
            "SELECT event_id, arm_num, event_name, custom_event_label, day_offset, offset_min, "
            "offset_max FROM event WHERE project_id = ? ORDER BY arm_num, event_id",
            (self.project_id,),
        ).fetchall()
        seen: dict[str, int] = {}
        events = []
        for r in rows:
            name = unique_event_name(r["event_name"], r["arm_num"])
            count = seen.get(name, 0)
            seen[name] = count + 1
            unique = name + (chr(ord("a") + count) if count else "")
            events.append(
                Event(
                    r["event_id"],
                    r["arm_num"],
                    r["event_name"],
                    unique,
                    r["custom_event_label"],
                    r["day_offset"],
                    r["offset_min"],
                    r["offset_max"],
                )
            )
        return events

    def event(self, unique_name: str) -> Event | None:
        return next((e for e in self.events if e.unique_event_name == unique_name), None)

    def event_by_id(self, event_id: int) -> Event | None:
        return next((e for e in self.events if e.event_id == event_id), None)

    @cached_property
    def mapping(self) -> dict[int, list[str]]:
        """Forms collected at each event id, in form order."""
        rows = self.conn.execute(
            "SELECT event_id, form_name FROM form_event WHERE project_id = ?", (self.project_id,)
        ).fetchall()
        order = {form: i for i, form in enumerate(self.forms)}
        mapping: dict[int, list[str]] = {e.event_id: [] for e in self.events}
        for event_id, form in rows:
            mapping.setdefault(event_id, []).append(form)
        for forms in mapping.values():
            forms.sort(key=lambda f: order.get(f, len(order)))
        return mapping

    def forms_at(self, event_id: int) -> list[str]:
        """Forms collected at an event (every form in a classic project, event id 0)."""
        return self.forms if not self.longitudinal else self.mapping.get(event_id, [])

    @cached_property
    def repeating(self) -> dict[tuple[int, str], str]:
        """(event id, form) -> custom label; form '' when the whole event repeats."""
        rows = self.conn.execute(
            "SELECT event_id, form_name, custom_form_label FROM repeating WHERE project_id = ?",
            (self.project_id,),
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def repeats_form(self, event_id: int, form: str) -> bool:
        return (event_id, form) in self.repeating

    def repeats_event(self, event_id: int) -> bool:
        return (event_id, "") in self.repeating

    @property
    def has_repeating(self) -> bool:
        return bool(self.repeating)

    def save_arm(self, arm_num: int, name: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO arm VALUES (?, ?, ?)", (self.project_id, arm_num, name)
        )
        self._forget()

    def delete_arm(self, arm_num: int) -> None:
        """Remove an arm with its events, mappings and the data collected in them."""
        for event in [e for e in self.events if e.arm_num == arm_num]:
            self.delete_event(event.event_id)
        self.conn.execute(
            "DELETE FROM arm WHERE project_id = ? AND arm_num = ?", (self.project_id, arm_num)
        )
        self._forget()

    def save_event(
        self,
        event_id: int | None,
        arm_num: int,
        event_name: str,
        custom_event_label: str = "",
        day_offset: float | None = None,
        offset_min: float | None = None,
        offset_max: float | None = None,
    ) -> int:
        """Create an event (`event_id` None) or update one; returns its id."""
        values = (arm_num, event_name, custom_event_label, day_offset, offset_min, offset_max)
        if event_id is None:
            cursor = self.conn.execute(
                "INSERT INTO event (project_id, arm_num, event_name, custom_event_label, "
                "day_offset, offset_min, offset_max) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.project_id, *values),
            )
            event_id = int(cursor.lastrowid or 0)
        else:
            self.conn.execute(
                "UPDATE event SET arm_num = ?, event_name = ?, custom_event_label = ?, "
                "day_offset = ?, offset_min = ?, offset_max = ? WHERE event_id = ?",
                (*values, event_id),
            )
        self._forget()
        return event_id

    def delete_event(self, event_id: int) -> None:
        """Remove an event with its mappings, repeating setup and data."""
        for table in ("form_event", "repeating", "data"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE project_id = ? AND event_id = ?",
                (self.project_id, event_id),
            )
        self.conn.execute("DELETE FROM event WHERE event_id = ?", (event_id,))
        self._forget()

    def replace_mapping(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Set the instrument-event mapping to exactly these (event id, form) pairs."""
        self.conn.execute("DELETE FROM form_event WHERE project_id = ?", (self.project_id,))
        self.conn.executemany(
            "INSERT OR IGNORE INTO form_event VALUES (?, ?, ?)",
            [(self.project_id, event_id, form) for event_id, form in pairs],
        )
        self._forget()

    def replace_repeating(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """Set the repeating setup to exactly these (event id, form or '', label) rows."""
        self.conn.execute("DELETE FROM repeating WHERE project_id = ?", (self.project_id,))
        self.conn.executemany(
            "INSERT OR REPLACE INTO repeating VALUES (?, ?, ?, ?)",
            [(self.project_id, *row) for row in rows],
        )
        self._forget()

    # -- records ----------------------------------------------------------------------------

    def record_ids(self, dag_id: int | None = None) -> list[str]:
        """Existing records in REDCap's order (only one DAG's when `dag_id` is given)."""
        sql = "SELECT record FROM record WHERE project_id = ?"
        args: tuple[Any, ...] = (self.project_id,)
        if dag_id is not None:
            sql += " AND dag_id = ?"
            args += (dag_id,)
        return sorted((r[0] for r in self.conn.execute(sql, args)), key=natural_key)

    def record_exists(self, record: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM record WHERE project_id = ? AND record = ?", (self.project_id, record)
        ).fetchone()
        return row is not None

    def record_info(self, record: str) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT record, dag_id, created, modified FROM record WHERE project_id = ? AND "
            "record = ?",
            (self.project_id, record),
        ).fetchone()

    def records_modified(self, begin: str | None, end: str | None) -> set[str]:
        """Records created or changed in [begin, end] (REDCap's dateRangeBegin/End)."""
        sql = "SELECT record FROM record WHERE project_id = ?"
        args: list[Any] = [self.project_id]
        if begin:
            sql += " AND modified >= ?"
            args.append(begin)
        if end:
            sql += " AND modified <= ?"
            args.append(end)
        return {r[0] for r in self.conn.execute(sql, args)}

    def touch_record(self, record: str, when: str, dag_id: int | None = None) -> bool:
        """Mark a record as changed now, creating it if new; True when it was created."""
        created = not self.record_exists(record)
        if created:
            self.conn.execute(
                "INSERT INTO record VALUES (?, ?, ?, ?, ?)",
                (self.project_id, record, dag_id, when, when),
            )
        else:
            self.conn.execute(
                "UPDATE record SET modified = ? WHERE project_id = ? AND record = ?",
                (when, self.project_id, record),
            )
        return created

    def set_record_dag(self, record: str, dag_id: int | None) -> None:
        self.conn.execute(
            "UPDATE record SET dag_id = ? WHERE project_id = ? AND record = ?",
            (dag_id, self.project_id, record),
        )

    def data_rows(self, records: Iterable[str] | None = None) -> Iterator[DataRow]:
        """Stored rows in REDCap's export order: record (natural), arm/event order, the
        non-repeating row, then repeat instances by instrument order and instance."""
        sql = (
            "SELECT record, event_id, repeat_instrument, instance, vals FROM data "
            "WHERE project_id = ?"
        )
        if records is None:
            found = self.conn.execute(sql, (self.project_id,)).fetchall()
        else:  # filtered in SQL, in chunks below SQLite's limit on parameters
            wanted, found = sorted(set(records)), []
            for i in range(0, len(wanted), SQL_CHUNK):
                chunk = wanted[i : i + SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                found += self.conn.execute(
                    f"{sql} AND record IN ({marks})", (self.project_id, *chunk)
                ).fetchall()
        rows = [DataRow(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in found]
        event_order = {e.event_id: i for i, e in enumerate(self.events)}
        form_order = {f: i for i, f in enumerate(self.forms)}
        rows.sort(
            key=lambda r: (
                natural_key(r.record),
                event_order.get(r.event_id, -1),
                form_order.get(r.repeat_instrument, -1),
                r.instance,
            )
        )
        return iter(rows)

    def get_row(self, key: tuple[str, int, str, int]) -> DataRow:
        """The stored row for a key, or an empty one."""
        found = self.conn.execute(
            "SELECT vals FROM data WHERE project_id = ? AND record = ? AND event_id = ? AND "
            "repeat_instrument = ? AND instance = ?",
            (self.project_id, *key),
        ).fetchone()
        return DataRow(*key, orjson.loads(found[0]) if found else {})

    def save_row(self, row: DataRow) -> None:
        """Store a row; a row with no values still exists (the record exists in that event)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO data VALUES (?, ?, ?, ?, ?, ?)",
            (self.project_id, *row.key, orjson.dumps(row.values).decode()),
        )

    def set_value(
        self, record: str, event_id: int, field: str, value: str, user: str, action: str, when: str
    ) -> None:
        """Set one value of a record's (non-repeating) row at an event and log it as REDCap
        logs a data change: `<action> <record>` with `field = 'value'`."""
        row = self.get_row((record, event_id, "", 0))
        row.values[field] = value
        self.save_row(row)
        self.touch_record(record, when)
        event = self.event_by_id(event_id)
        self.log(
            user,
            f"{action} {record}",
            f"{field} = '{value}'",
            kind="record_edit",
            record=record,
            event=event.unique_event_name if event else None,
            when=when,
        )

    def delete_rows(self, record: str, event_id: int | None = None) -> int:
        """Delete a record's rows (in one event when given) with the files they hold."""
        where = "project_id = ? AND record = ?"
        args: tuple[Any, ...] = (self.project_id, record)
        if event_id is not None:
            where += " AND event_id = ?"
            args += (event_id,)
        for (vals,) in self.conn.execute(f"SELECT vals FROM data WHERE {where}", args).fetchall():
            self.release_documents(orjson.loads(vals))
        return self.conn.execute(f"DELETE FROM data WHERE {where}", args).rowcount

    def delete_row(self, key: tuple[str, int, str, int]) -> None:
        self.release_documents(self.get_row(key).values)
        self.conn.execute(
            "DELETE FROM data WHERE project_id = ? AND record = ? AND event_id = ? AND "
            "repeat_instrument = ? AND instance = ?",
            (self.project_id, *key),
        )

    def release_documents(self, values: dict[str, str]) -> None:
        """Delete the uploaded files that these values (file fields hold doc ids) point to."""
        doc_ids = [
            values[name]
            for name, row in self.fields.items()
            if row["field_type"] == "file" and values.get(name, "").isdigit()
        ]
        self.conn.executemany(
            "DELETE FROM document WHERE project_id = ? AND doc_id = ?",
            [(self.project_id, int(doc_id)) for doc_id in doc_ids],
        )

    def delete_record(self, record: str) -> None:
        """Delete a record with its rows, files and survey participants."""
        self.delete_rows(record)
        for table in ("participant", "record"):
            self.conn.execute(
                f"DELETE FROM {table} WHERE project_id = ? AND record = ?",
                (self.project_id, record),
            )

    def rename_record(self, old: str, new: str, event_ids: set[int] | None = None) -> None:
        """Give a record's rows (only those in `event_ids` when given) a new record name."""
        info = self.record_info(old)
        assert info is not None, old
        self.touch_record(new, info["created"], info["dag_id"])
        where, args = "project_id = ? AND record = ?", [self.project_id, old]
        if event_ids is not None:
            where += f" AND event_id IN ({','.join('?' * len(event_ids))})"
            args += sorted(event_ids)
        self.conn.execute(f"UPDATE data SET record = ? WHERE {where}", (new, *args))
        if event_ids is None:
            self.conn.execute(
                "UPDATE participant SET record = ? WHERE project_id = ? AND record = ?",
                (new, self.project_id, old),
            )
            self.conn.execute(  # the slot stays the record's, so it is not randomized twice
                "UPDATE allocation SET record = ? WHERE record = ? AND rid IN "
                "(SELECT rid FROM randomization WHERE project_id = ?)",
                (new, old, self.project_id),
            )
        self.forget_empty_record(old)

    def forget_empty_record(self, record: str) -> None:
        """A record whose last row was deleted no longer exists."""
        left = self.conn.execute(
            "SELECT 1 FROM data WHERE project_id = ? AND record = ? LIMIT 1",
            (self.project_id, record),
        ).fetchone()
        if left is None:
            self.delete_record(record)

    # -- logging ----------------------------------------------------------------------------

    def log(
        self,
        username: str,
        action: str,
        details: str = "",
        *,
        kind: str,
        record: str | None = None,
        event: str | None = None,
        when: str | None = None,
    ) -> None:
        """Add a logging entry. `kind` is the logtype it answers to: record_add, record_edit,
        record_delete, manage, user, export, lock_record or page_view."""
        self.conn.execute(
            "INSERT INTO log (project_id, ts, username, action, details, record, event, kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.project_id, when or now(), username, action, details, record, event, kind),
        )

    # -- randomization ------------------------------------------------------------------------

    @cached_property
    def randomizations(self) -> list[Randomization]:
        rows = self.conn.execute(
            "SELECT rid, target, target_event, strata FROM randomization WHERE project_id = ? "
            "ORDER BY rid",
            (self.project_id,),
        )
        return [
            Randomization(r[0], r[1], r[2], tuple((f, e) for f, e in json.loads(r[3])))
            for r in rows
        ]

    @property
    def randomization_enabled(self) -> bool:
        return bool(self.info.get("randomization_enabled")) and bool(self.randomizations)

    def event_holding(self, field_name: str) -> int | None:
        """The event a randomization reads a field at: the first event collecting its form
        (REDCap's setup page asks for it; the first is what a design with one such event
        gets [I]), the classic project's event id 0, or None when no event collects it. The
        data access group belongs to the record, not to an event (0)."""
        if field_name == DAG or not self.longitudinal:
            return CLASSIC_EVENT_ID
        form = self.form_of(field_name)
        return next((e.event_id for e in self.events if form in self.forms_at(e.event_id)), None)

    def add_randomization(self, target: str, strata: list[str]) -> Randomization:
        """A new randomization, with the module enabled, as REDCap's setup page saves it: each
        field with the event holding it (callers check there is one)."""
        events = {name: self.event_holding(name) for name in (target, *strata)}
        assert None not in events.values(), events
        cursor = self.conn.execute(
            "INSERT INTO randomization (project_id, target, target_event, strata) "
            "VALUES (?, ?, ?, ?)",
            (self.project_id, target, events[target], json.dumps([[n, events[n]] for n in strata])),
        )
        self.info["randomization_enabled"] = 1
        self.save_info()
        self.__dict__.pop("randomizations", None)
        return next(r for r in self.randomizations if r.rid == cursor.lastrowid)

    def allocation_in_use(self, rid: int, production: bool) -> bool:
        """Whether any slot of the table is used (REDCap then keeps the table as it is)."""
        row = self.conn.execute(
            "SELECT 1 FROM allocation WHERE rid = ? AND production = ? AND record IS NOT NULL",
            (rid, int(production)),
        ).fetchone()
        return row is not None

    def replace_allocation(
        self, rid: int, production: bool, slots: list[tuple[str, list[str]]]
    ) -> None:
        """Load an allocation table: (target value, strata values) per slot, in table order."""
        self.conn.execute(
            "DELETE FROM allocation WHERE rid = ? AND production = ?", (rid, int(production))
        )
        self.conn.executemany(
            "INSERT INTO allocation (rid, production, slot, target_value, strata) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (rid, int(production), slot, value, json.dumps(strata))
                for slot, (value, strata) in enumerate(slots, 1)
            ],
        )

    def randomized(self, records: Iterable[str]) -> dict[str, list[Randomization]]:
        """The randomizations each of these records has been randomized in (either table)."""
        by_id = {r.rid: r for r in self.randomizations}
        wanted = sorted(set(records)) if by_id else []
        found: dict[str, list[Randomization]] = {}
        for i in range(0, len(wanted), SQL_CHUNK):
            chunk = wanted[i : i + SQL_CHUNK]
            rows = self.conn.execute(
                f"SELECT record, rid FROM allocation WHERE rid IN "
                f"({','.join('?' * len(by_id))}) AND record IN ({','.join('?' * len(chunk))})",
                (*by_id, *chunk),
            )
            for record, rid in rows:
                found.setdefault(record, []).append(by_id[rid])
        return found

    def take_slot(
        self, rid: int, strata: list[str], record: str, username: str, when: str
    ) -> str | None:
        """Give `record` the next free slot of its stratum in the table in use (production's
        once the project is in production) and return its target value; None when the
        stratum has no free slot left. Callers hold the request's transaction (BEGIN
        IMMEDIATE: one writer at a time), so two calls never find the same free slot."""
        production = int(self.in_production)
        found = self.conn.execute(
            "SELECT slot, target_value FROM allocation WHERE rid = ? AND production = ? "
            "AND strata = ? AND record IS NULL ORDER BY slot LIMIT 1",
            (rid, production, json.dumps(strata)),
        ).fetchone()
        if found is None:
            return None
        self.conn.execute(
            "UPDATE allocation SET record = ?, allocated = ?, username = ? "
            "WHERE rid = ? AND production = ? AND slot = ?",
            (record, when, username, rid, production, found[0]),
        )
        return str(found[1])

    def dag_names(self) -> dict[int, str]:
        """Unique group names by DAG id."""
        rows = self.conn.execute(
            "SELECT dag_id, unique_name FROM dag WHERE project_id = ?", (self.project_id,)
        )
        return dict(rows.fetchall())


# The rights of a project's creator as REDCap exports them (all 1 but these three).
CREATOR_RIGHTS: dict[str, int] = {
    name: 0
    if name in ("email_logging", "mobile_app_download_data", "lock_records_customization")
    else 1
    for name in (
        "design alerts user_rights data_access_groups reports stats_and_charts "
        "manage_survey_participants calendar data_import_tool data_comparison_tool logging "
        "email_logging file_repository data_quality_create data_quality_execute api_export "
        "api_import api_modules mobile_app mobile_app_download_data record_create record_rename "
        "record_delete lock_records_all_forms lock_records lock_records_customization"
    ).split()
}


# The right to randomize a record, by its name in REDCap's project XML (UserRoles
# `random_perform`). REDCap's user export does not show it (its keys are api.users.USER_COLUMNS),
# so it is kept with the rights but not among the exported flags: the creator has it, a user
# added through the API does not [I].
RANDOMIZE_RIGHT = "random_perform"


def creator_rights(forms: Iterable[str]) -> dict[str, Any]:
    """The creator's rights with full data entry and export rights on each form."""
    forms = list(forms)
    return {
        **CREATOR_RIGHTS,
        RANDOMIZE_RIGHT: 1,
        "forms": dict.fromkeys(forms, 1),
        "forms_export": dict.fromkeys(forms, 1),
    }


def new_token() -> str:
    """A project API token: 32 uppercase hexadecimal characters, as REDCap issues."""
    return secrets.token_hex(16).upper()


def add_user(
    conn: sqlite3.Connection,
    project_id: int,
    username: str,
    rights: dict[str, Any],
    token: str | None = None,
) -> None:
    """Add (or replace) a project user; `rights` holds REDCap's user flags and form maps."""
    conn.execute(
        "INSERT OR REPLACE INTO user VALUES (?, ?, ?, ?)",
        (project_id, username, token, json.dumps(rights)),
    )


def unique_group_name(label: str, taken: Iterable[str]) -> str:
    """REDCap's unique DAG name: `Test DAG` -> `test_dag` (lowercase, other characters '_').
    The 18-character cut follows unique event names [I]; a clash gets a letter as repeated
    event names do (`site_b`) [U]."""
    stem = re.sub(r"[^a-z0-9]", "_", label.lower())[:18]
    taken = set(taken)
    suffixes = ("", *string.ascii_lowercase[1:])
    return next(stem + s for s in suffixes if stem + s not in taken)


def default_form_label(form: str) -> str:
    """REDCap's label for a form created by a dictionary import: `my_form` -> `My Form`."""
    return form.replace("_", " ").title()


# A project's settings as REDCap 14/15 export them, in that order, with a new project's values;
# the integers are those REDCap's JSON gives as numbers.
PROJECT_INFO: dict[str, Any] = {
    "project_id": 0,
    "project_title": "",
    "creation_time": "",
    "production_time": "",
    "in_production": 0,
    "project_language": "English",
    "purpose": 0,
    "purpose_other": "",
    "project_notes": "",
    "custom_record_label": "",
    "secondary_unique_field": "",
    "is_longitudinal": 0,
    "has_repeating_instruments_or_events": 0,  # derived from the setup when exported
    "surveys_enabled": 0,
    "scheduling_enabled": 0,
    "record_autonumbering_enabled": 0,
    "randomization_enabled": 0,
    "ddp_enabled": 0,
    "project_irb_number": "",
    "project_grant_number": "",
    "project_pi_firstname": "",
    "project_pi_lastname": "",
    "project_pi_email": "",
    "display_today_now_button": 1,
    "missing_data_codes": "",
    "external_modules": "",
    "bypass_branching_erase_field_prompt": 0,
}


def create_project(conn: sqlite3.Connection, info: dict[str, Any]) -> ProjectModel:
    """A new, empty project row; callers add metadata, design and users."""
    cursor = conn.execute("INSERT INTO project (info) VALUES ('{}')")
    project_id = int(cursor.lastrowid or 0)
    full = {**PROJECT_INFO, "project_id": project_id, "creation_time": now(), **info}
    conn.execute("UPDATE project SET info = ? WHERE project_id = ?", (json.dumps(full), project_id))
    return ProjectModel(conn, project_id)
