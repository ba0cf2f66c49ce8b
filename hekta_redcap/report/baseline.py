"""The baseline table ("Table 1") by arm, from the analysts' export (`build_tables`, long
shape): the same typed, scored values an analysis reads, at the randomization event, for the
randomised. The variables and their sections are the study file's `baseline_table`.

Drawn by `tableone`. A number is shown as mean (SD) when its distribution is roughly symmetric,
|skewness| <= SKEWED (pooled over the arms, so the rule does not depend on the allocation),
else as median [IQR]; a choice, yes/no or checkbox as n (%) of each label; "missing" counts
the randomised without a value.
"""

from __future__ import annotations

import warnings

import pandas as pd

from hekta_redcap.analysis.export.frames import GROUP, Language, Table, build_tables
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import in_language
from hekta_redcap.definitions.study import Project
from hekta_redcap.randomization.design import design_of
from hekta_redcap.redcap.names import EVENT
from hekta_redcap.report.blinding import TEXTS, Arms

SKEWED = 1.0  # |skewness| above which a number is summarised by median [IQR]
DECIMALS = 1
ARM = "_arm"
COLUMNS = ("section", "variable", "statistic", "level", "missing", "overall")


def baseline_frame(
    project: Project, rows: pd.DataFrame, language: Language
) -> tuple[pd.DataFrame, Table]:
    """The export's long table at the randomization event, one row per randomised record."""
    long = build_tables(project, rows, "long", language)[0]
    event = design_of(project).event
    frame = long.frame
    if event is not None:
        frame = frame[frame[EVENT] == event]
    return frame[frame[GROUP].notna()], long


def baseline_table(
    project: Project, rows: pd.DataFrame, arms: Arms, language: Language
) -> pd.DataFrame:
    """Table 1: COLUMNS, then one column per arm (as `arms` names them); the first row is n."""
    from tableone import TableOne  # loads scipy and statsmodels: only when a report is built

    frame, long = baseline_frame(project, rows, language)
    words = in_language(TEXTS, language, "statistics")
    data = pd.DataFrame({ARM: frame[GROUP].astype(str).map(arms.name)}, index=frame.index)
    rows_out: list[tuple[str, str, str]] = []  # (section, variable name, statistic)
    categorical, nonnormal, order = [], [], {}
    for section in project.study.baseline_table:
        for name in section.variables:
            if name not in frame.columns:
                raise HektaError(f"baseline table: the export has no variable {name}")
            values = frame[name]
            labels = long.value_labels.get(name)
            if labels is not None:
                data[name] = values.map(lambda v, labels=labels: labels.get(v, v)).astype(object)
                data.loc[values.isna(), name] = None
                categorical.append(name)
                order[name] = [str(v) for v in labels.values()]
                statistic = words["count"]
            else:
                data[name] = pd.to_numeric(values, errors="coerce").astype(float)
                skewed = abs(data[name].skew()) > SKEWED if data[name].count() > 2 else False
                if skewed:
                    nonnormal.append(name)
                statistic = words["median" if skewed else "mean"]
            rows_out.append((section.section.get(language) or "", name, statistic))
    names = [name for _, name, _ in rows_out]
    if data.empty or not names:
        return pd.DataFrame(columns=[*COLUMNS, *(arms.name(c) for c in arms.codes)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = TableOne(
            data,
            columns=names,
            categorical=categorical,
            nonnormal=nonnormal,
            groupby=ARM,
            order={
                k: [v for v in levels if v in set(data[k].dropna())] for k, levels in order.items()
            },
            missing=True,
            overall=True,
            pval=False,
            label_suffix=False,
            decimals=DECIMALS,
        ).tableone
    table.columns = [c[1] if isinstance(c, tuple) else c for c in table.columns]
    shown = [arms.name(c) for c in arms.codes]
    out = []
    section_of = {name: (heading, statistic) for heading, name, statistic in rows_out}
    missing_word = in_language(TEXTS, language, "columns")["missing"]
    seen: set[str] = set()
    for (variable, level), values in table.iterrows():
        heading, statistic = section_of.get(variable, ("", ""))
        label = long.labels.get(variable, variable) if variable in section_of else variable
        missing = str(values.get("Missing", ""))
        if variable in categorical and variable not in seen:  # tableone lists them as a level
            missing = str(int(data[variable].isna().sum()))
        seen.add(variable)
        out.append(
            {
                "section": heading,
                "variable": label,
                "statistic": statistic,
                "level": missing_word if variable in categorical and level == "None" else level,
                "missing": missing,
                "overall": values.get("Overall", ""),
                **{arm: values.get(arm, "") for arm in shown},
            }
        )
    return pd.DataFrame(out, columns=[*COLUMNS, *shown])
