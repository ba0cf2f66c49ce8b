"""Study rules on the site list (`sites:`, docs/fidelity.md): the codes a review's site dropdown
stores, so that a site's reviews line up over the years."""

from __future__ import annotations

from collections.abc import Callable

from hekta_redcap.compile.checks import DictionaryContext
from hekta_redcap.core.findings import Report
from hekta_redcap.definitions.model import LANGUAGES
from hekta_redcap.definitions.study import Project


def _sites(report: Report, project: Project, ctx: DictionaryContext) -> None:
    """Codes are positive whole numbers, unique and added in increasing order (a new site gets
    the next code; a site that stops stays listed as retired, so a code never passes to another
    site); every label has each language; a site list is used by a generated choice set."""
    study = project.study
    highest = 0
    seen: set[str] = set()
    for i, site in enumerate(study.sites):
        origin = study.origin("sites", i)
        if not site.code.isdigit() or int(site.code) < 1:
            report.error("sites", f"site code '{site.code}' is not a positive whole number", origin)
        elif site.code in seen:
            report.error("sites", f"site code '{site.code}' is used twice", origin)
        elif int(site.code) <= highest:
            report.error(
                "sites",
                f"site code '{site.code}' comes after code {highest}: add a new site at the end "
                "with the next code (a code is never reused)",
                origin,
            )
        else:
            highest = int(site.code)
        seen.add(site.code)
        missing = [lang for lang in LANGUAGES if not site.label.get(lang)]
        if missing:
            report.error("sites", f"site {site.code} has no {' or '.join(missing)} label", origin)
    users = [
        inst.form
        for inst in project.instruments.values()
        if any(spec.sites for spec in inst.generated_choices.values())
    ]
    if users and not study.sites:
        report.error(
            "sites",
            f"{users[0]} makes choices from the site list, but the study has none",
            study.origin(),
        )
    if study.sites and not users:
        report.warn(
            "sites", "the site list is not used by any form's choices", study.origin("sites")
        )


SITE_RULES: list[Callable[[Report, Project, DictionaryContext], None]] = [_sites]
