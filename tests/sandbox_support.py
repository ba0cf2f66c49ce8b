"""Projects for testing the local REDCap-compatible server, seeded straight into its store so
that each API area can be tested on its own. (The API-level way in, project creation and
metadata import, is tested by its own area.)"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import redcap

from hekta_redcap.devtools.sandbox.models import (
    METADATA_COLUMNS,
    DataRow,
    ProjectModel,
    add_user,
    create_project,
    creator_rights,
    new_token,
)
from hekta_redcap.devtools.sandbox.server import SandboxServer

CREATOR = "test_admin"

# A classic project covering every field type and common validations (two forms).
CLASSIC_DICTIONARY = """\
field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,field_annotation
record_id,demographics,,text,Study ID,,,,,,,,,,,,,
first_name,demographics,Contact,text,First name,,,,,,y,,,,,,,
dob,demographics,,text,Date of birth,,,date_ymd,,,y,,,,,,,
age,demographics,,text,Age,,,integer,0,120,,,,,,,,
weight,demographics,,text,Weight (kg),,,number_1dp,,,,,,,,,,
email,demographics,,text,E-mail,,,email,,,y,,,,,,,
sex,demographics,,radio,Sex,"1, Male | 2, Female",,,,,,,,,,,,
colors,demographics,,checkbox,Colours,"1, Red | 2, Green | -99, Unknown",,,,,,,,,,,,
consent,demographics,,yesno,Consent given,,,,,,,,,,,,,
notes,demographics,,notes,Notes,,,,,,,,,,,,,
bmi,demographics,,calc,BMI,[weight] / 2,,,,,,,,,,,,
upload,demographics,,file,Upload,,,,,,,,,,,,,
info,demographics,,descriptive,Some information,,,,,,,,,,,,,
fav,followup,,dropdown,Favourite fruit,"a, Apple | b, Banana",,,,,,,,,,,,
visit_date,followup,,text,Visit date,,,date_dmy,,,,[consent] = '1',,,,,,
"""

# A longitudinal project: two arms, a repeating instrument and a repeating event.
LONGITUDINAL_DICTIONARY = """\
field_name,form_name,section_header,field_type,field_label,select_choices_or_calculations,field_note,text_validation_type_or_show_slider_number,text_validation_min,text_validation_max,identifier,branching_logic,required_field,custom_alignment,question_number,matrix_group_name,matrix_ranking,field_annotation
record_id,enrollment,,text,Record ID,,,,,,,,,,,,,
enroll_date,enrollment,,text,Enrollment date,,,date_ymd,,,,,,,,,,
group,enrollment,,radio,Group,"1, Drug | 2, Placebo",,,,,,,,,,,,
weight,vitals,,text,Weight,,,number,,,,,,,,,,
bp,vitals,,text,Systolic BP,,,integer,50,250,,,,,,,,
med_name,medications,,text,Medication,,,,,,,,,,,,,
med_dose,medications,,text,Dose (mg),,,number,,,,,,,,,,
"""
LONGITUDINAL_ARMS = [(1, "Drug A"), (2, "Drug B")]
LONGITUDINAL_EVENTS = [  # (arm, name) -> unique names baseline_arm_1, visit_1_arm_1, ...
    (1, "Baseline"),
    (1, "Visit 1"),
    (1, "Visit 2"),
    (2, "Baseline"),
]
LONGITUDINAL_MAPPING = {
    "baseline_arm_1": ["enrollment", "vitals"],
    "visit_1_arm_1": ["vitals", "medications"],
    "visit_2_arm_1": ["vitals"],
    "baseline_arm_2": ["enrollment", "vitals"],
}
LONGITUDINAL_REPEATING = [("visit_1_arm_1", "medications", "[med_name]"), ("visit_2_arm_1", "", "")]


def dictionary_rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert all(list(r) == list(METADATA_COLUMNS) for r in rows)
    return rows


@dataclass
class Handle:
    """A seeded project on a running sandbox server."""

    server: SandboxServer
    project_id: int
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def pycap(self, token: str | None = None) -> redcap.Project:
        return redcap.Project(self.server.url, token or self.token)

    def model(self, conn: Any) -> ProjectModel:
        return ProjectModel(conn, self.project_id)

    def put(
        self,
        record: str,
        values: dict[str, str],
        event: str | None = None,
        repeat_instrument: str = "",
        instance: int = 0,
        dag_id: int | None = None,
    ) -> None:
        """Store values as they would be after an import, bypassing the API."""
        with self.server.store.transaction() as conn:
            model = self.model(conn)
            event_id = model.event(event).event_id if event else 0
            row = model.get_row((record, event_id, repeat_instrument, instance))
            row.values.update({k: v for k, v in values.items() if v != ""})
            model.save_row(DataRow(*row.key, row.values))
            model.touch_record(record, "2026-01-01 12:00:00", dag_id)

    def add_user(self, username: str, **rights: Any) -> str:
        """Another user of this project with the creator's rights changed by `rights`."""
        token = new_token()
        with self.server.store.transaction() as conn:
            rights = {**creator_rights(self.model(conn).forms), **rights}
            add_user(conn, self.project_id, username, rights, token)
        return token


def seed_project(
    server: SandboxServer,
    kind: str = "classic",
    *,
    title: str = "Test project",
    surveys: tuple[str, ...] = (),
    production: bool = False,
    autonumber: bool = False,
) -> Handle:
    """A new project of `kind` ("classic" or "longitudinal") with a creator token."""
    longitudinal = kind == "longitudinal"
    rows = dictionary_rows(LONGITUDINAL_DICTIONARY if longitudinal else CLASSIC_DICTIONARY)
    token = new_token()
    with server.store.transaction() as conn:
        model = create_project(
            conn,
            {
                "project_title": title,
                "is_longitudinal": int(longitudinal),
                "surveys_enabled": int(bool(surveys)),
                "in_production": int(production),
                "record_autonumbering_enabled": int(autonumber),
            },
        )
        model.replace_metadata(rows)
        if longitudinal:
            for num, name in LONGITUDINAL_ARMS:
                model.save_arm(num, name)
            for arm, name in LONGITUDINAL_EVENTS:
                model.save_event(None, arm, name)
            ids = {e.unique_event_name: e.event_id for e in model.events}
            model.replace_mapping(
                (ids[e], form) for e, forms in LONGITUDINAL_MAPPING.items() for form in forms
            )
            model.replace_repeating(
                (ids[e], form, label) for e, form, label in LONGITUDINAL_REPEATING
            )
        for form in surveys:
            conn.execute(
                "INSERT INTO survey VALUES (?, ?, ?)",
                (model.project_id, form, '{"title": "' + form.title() + '"}'),
            )
        add_user(conn, model.project_id, CREATOR, creator_rights(model.forms), token)
        model.log(CREATOR, "Manage/Design ", "Create project (API)", kind="manage")
    return Handle(server, model.project_id, token)
