"""PyCap's own documentation examples, run unchanged against the local REDCap-compatible server.

PyCap's maintainers run these doctests against a real REDCap server, on a project created from
their own project XML. We create ours from `tests/fixtures/redcap-odm/doctest_project.xml`, this
project's own file with the state the examples expect (see the README there). Passing them here is
the strongest evidence that PyCap works against this server as it does against REDCap. The
examples share one project and change it as they go, so they run in PyCap's own order: module by
module, then by name.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tempfile
from collections.abc import Iterator

import pandas as pd
import pytest
import redcap
import redcap.methods
import requests
from conftest import REPO

from hekta_redcap.devtools.sandbox.server import running

DOCTEST_XML = REPO / "tests" / "fixtures" / "redcap-odm" / "doctest_project.xml"
PUBLIC_URL = "https://redcapdemo.vumc.org/"  # the base URL PyCap's examples show in links
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    tests = []
    for info in sorted(pkgutil.iter_modules(redcap.methods.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"redcap.methods.{info.name}")
        tests += [t for t in sorted(finder.find(module)) if t.examples]
    return tests


EXAMPLES = _examples()


def _create_project(url: str, super_token: str) -> str:
    """As PyCap's integration suite creates its doctest project: XML with a super token."""
    reply = requests.post(
        url,
        data={
            "token": super_token,
            "content": "project",
            "format": "xml",
            "data": "<item><project_title>PyCap</project_title><purpose>0</purpose></item>",
            "odm": DOCTEST_XML.read_text(encoding="utf-8"),
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return reply.text[-32:]


def _grant_superuser_rights(project: redcap.Project) -> None:
    user = project.export_users()[0]
    user |= {"record_delete": 1, "record_rename": 1, "lock_records_all_forms": 1, "lock_records": 1}
    assert project.import_users([user]) == 1


def _add_files_to_repository(project: redcap.Project) -> None:
    with tempfile.TemporaryFile() as file:
        file.write(b"hello")
        file.seek(0)
        project.import_file_into_repository(file_name="test.txt", file_object=file)
    folder = project.create_folder_in_repository(name="test")[0]["folder_id"]
    with tempfile.TemporaryFile() as file:
        project.import_file_into_repository(
            file_name="test_in_folder.txt", file_object=file, folder_id=folder
        )


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redcap.Project]:
    with running(tmp_path_factory.mktemp("doctests"), public_url=PUBLIC_URL) as server:
        project = redcap.Project(server.url, _create_project(server.url, server.super_token))
        _grant_superuser_rights(project)
        _add_files_to_repository(project)
        # As in a terminal, where PyCap's examples were recorded: frames cut to 80 columns.
        with pd.option_context("display.max_columns", 0, "display.width", 80):
            yield project


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[t.name.removeprefix("redcap.methods.") for t in EXAMPLES]
)
def test_pycap_example(proj: redcap.Project, example: doctest.DocTest) -> None:
    example.globs = {"proj": proj}
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(example, out=output.append)
    assert result.failed == 0, "".join(output)
