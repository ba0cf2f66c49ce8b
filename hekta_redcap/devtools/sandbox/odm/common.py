"""What the ODM reader and writer share: the names REDCap's project XML gives to dictionary
columns, project settings and role rights, so that a project read in and written out again
means the same thing in both directions."""

from __future__ import annotations

import re

VALIDATION = "text_validation_type_or_show_slider_number"
CHOICES = "select_choices_or_calculations"
DAG_ITEM = "redcap_data_access_group"

# ODM spells some field types and validations the old way.
FIELD_TYPES = {"textarea": "notes", "select": "dropdown"}
VALIDATIONS = {"int": "integer", "float": "number"}

# ItemDef attributes holding a dictionary column unchanged, in the order REDCap writes them.
ITEM_COLUMNS = (
    ("FieldNote", "field_note"),
    ("SectionHeader", "section_header"),
    ("Identifier", "identifier"),
    ("BranchingLogic", "branching_logic"),
    ("RequiredField", "required_field"),
    ("CustomAlignment", "custom_alignment"),
    ("QuestionNumber", "question_number"),
    ("MatrixGroupName", "matrix_group_name"),
    ("MatrixRanking", "matrix_ranking"),
    ("FieldAnnotation", "field_annotation"),
)

# GlobalVariables elements and the project-info keys they set, in REDCap's order.
INFO_TAGS = (
    ("RecordAutonumberingEnabled", "record_autonumbering_enabled"),
    ("CustomRecordLabel", "custom_record_label"),
    ("SecondaryUniqueField", "secondary_unique_field"),
    ("SchedulingEnabled", "scheduling_enabled"),
    ("SurveysEnabled", "surveys_enabled"),
    ("RandomizationEnabled", "randomization_enabled"),
    ("DisplayTodayNowButton", "display_today_now_button"),
    ("PreventBranchingEraseValues", "bypass_branching_erase_field_prompt"),  # [I]
    ("Purpose", "purpose"),
    ("PurposeOther", "purpose_other"),
    ("ProjectNotes", "project_notes"),
    ("MissingDataCodes", "missing_data_codes"),
)

# UserRoles attributes in REDCap 15's order, with the user-export flag each one is (None: a
# right the API does not expose; `forms`/`forms_export` are the `[form,level]` lists).
ROLE_ATTRIBUTES: tuple[tuple[str, str | None], ...] = (
    ("lock_record", "lock_records"),
    ("lock_record_multiform", "lock_records_all_forms"),
    ("lock_record_customize", "lock_records_customization"),
    ("data_export_tool", None),
    ("data_export_instruments", "forms_export"),
    ("data_import_tool", "data_import_tool"),
    ("data_comparison_tool", "data_comparison_tool"),
    ("data_logging", "logging"),
    ("email_logging", "email_logging"),
    ("file_repository", "file_repository"),
    ("double_data", None),
    ("user_rights", "user_rights"),
    ("data_access_groups", "data_access_groups"),
    ("graphical", "stats_and_charts"),
    ("reports", "reports"),
    ("design", "design"),
    ("alerts", "alerts"),
    ("calendar", "calendar"),
    ("data_entry", "forms"),
    ("api_export", "api_export"),
    ("api_import", "api_import"),
    ("api_modules", "api_modules"),
    ("mobile_app", "mobile_app"),
    ("mobile_app_download_data", "mobile_app_download_data"),
    ("record_create", "record_create"),
    ("record_rename", "record_rename"),
    ("record_delete", "record_delete"),
    ("dts", None),
    ("participants", "manage_survey_participants"),
    ("data_quality_design", "data_quality_create"),
    ("data_quality_execute", "data_quality_execute"),
    ("data_quality_resolution", None),
    ("random_setup", None),
    ("random_dashboard", None),
    ("random_perform", None),
    ("realtime_webservice_mapping", None),
    ("realtime_webservice_adjudicate", None),
    ("mycap_participants", None),
    ("mycap_configure_app", None),
    ("external_module_config", None),
)


def as_int(text: str | None) -> int:
    """An integer attribute or stored id; anything else (empty, text) counts as 0, so that a
    missing or odd flag reads as off rather than failing the whole document."""
    text = (text or "").strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else 0
