"""The text catalogs beside the code: every text in both languages with the same placeholders,
shipped with the package, and a broken catalog one error naming the file and line."""

from __future__ import annotations

import fnmatch
import string
import tomllib
from pathlib import Path

import pytest

from hekta_redcap import LANGUAGES
from hekta_redcap.analysis import consort
from hekta_redcap.core.errors import HektaError
from hekta_redcap.core.texts import catalog, in_language

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hekta_redcap"
CATALOGS = sorted(PACKAGE.glob("*/*.yaml"))


def _load(file: Path) -> dict[str, dict[str, str]]:
    package = ".".join(file.parent.relative_to(REPO).parts)
    return {key: dict(entry) for key, entry in catalog(package, file.name).items()}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_catalogs_are_found() -> None:
    names = {str(f.relative_to(PACKAGE)) for f in CATALOGS}
    wanted = {
        "validation/texts.yaml",
        "followup/texts.yaml",
        "analysis/codebook.yaml",
        "analysis/consort.yaml",
    }
    assert wanted <= names


@pytest.mark.parametrize("file", CATALOGS, ids=lambda f: str(f.relative_to(PACKAGE)))
def test_every_text_has_both_languages_and_the_same_placeholders(file: Path) -> None:
    entries = _load(file)
    assert entries
    for key, entry in entries.items():
        assert tuple(entry) == LANGUAGES, key
        assert all(text.strip() for text in entry.values()), key
        nb, en = (_placeholders(entry[lang]) for lang in LANGUAGES)
        assert nb == en, f"{file.name}: {key} has {sorted(nb)} in nb but {sorted(en)} in en"


@pytest.mark.parametrize("file", CATALOGS, ids=lambda f: str(f.relative_to(PACKAGE)))
def test_an_installed_package_ships_the_catalog(file: Path) -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["hekta_redcap"]
    shipped = str(file.relative_to(PACKAGE).as_posix())
    assert any(fnmatch.fnmatch(shipped, pattern) for pattern in patterns)


def test_every_stage_of_the_flow_has_a_label() -> None:
    """The stage keys are in the code, their labels in consort.yaml: they must meet."""
    keys = {*consort.ENROLMENT, "randomised", *consort.STATES, *consort.ANALYSIS}
    keys |= {consort.TOTAL, consort.UNKNOWN}
    keys -= set(consort.ENDINGS)  # labelled by the end-of-study form's choices
    for language in LANGUAGES:
        labels = in_language(catalog("hekta_redcap.analysis", "consort.yaml"), language, "labels")
        assert keys <= set(labels)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("words:\n  and:\n    nb: og\n", "words.and has nb: each text needs nb, en"),
        ("words:\n  and:\n    nb: og\n    en: and\n    de: und\n", "each text needs nb, en"),
        ("words:\n  no:\n    nb: nei\n    en: 'no'\n", "key 'no' under words is not text"),
        ("words:\n  'no':\n    nb: Nei\n    en: No\n", "words.no: the en text must be"),
        ("words:\n  blank:\n    nb: ''\n    en: blank\n", "words.blank: the nb text must be"),
        ("words:\n  and: og\n", "words.and must be a mapping"),
        ("a:\n  nb: x\n  en: y\na:\n  nb: x\n  en: y\n", "has 'a' twice"),
        ("a.b:\n  nb: x\n  en: y\n", "a dot joins ids"),
        ("words: [\n", "unreadable"),
    ],
)
def test_a_broken_catalog_names_the_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, error: str
) -> None:
    package = f"broken_{tmp_path.name}"  # catalogs are cached by package and name
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "texts.yaml").write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HektaError, match=r"texts\.yaml") as raised:
        catalog(package, "texts.yaml")
    assert error in str(raised.value)
    assert raised.value.origin is not None and raised.value.origin.file.name == "texts.yaml"
    if error != "unreadable":
        assert raised.value.origin.line is not None


def test_a_group_in_one_language() -> None:
    texts = catalog("hekta_redcap.validation", "texts.yaml")
    assert in_language(texts, "en", "built_in")["yesno.1"] == "Yes"
    assert in_language(texts, "nb", "words")["and"] == "og"
