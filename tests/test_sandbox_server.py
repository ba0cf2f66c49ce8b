"""The local REDCap-compatible server as a whole: persistence across restarts, routing, the super
token, fault injection, and `sandbox init`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redcap
import requests
from click.testing import CliRunner
from conftest import LIBRARY
from sandbox_support import Handle, seed_project

from hekta_redcap.cli import cli
from hekta_redcap.compile.dictionary import compile_project
from hekta_redcap.core.errors import ConfigError
from hekta_redcap.core.settings import Settings
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.faults import Faults
from hekta_redcap.devtools.sandbox.server import (
    SUPER_TOKEN_VARIABLE,
    SandboxServer,
    running,
    super_token,
)


def test_restart_keeps_projects_and_records(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        handle = seed_project(server, "longitudinal", title="Kept")
        handle.pycap().import_records(
            [
                {
                    "record_id": "1",
                    "redcap_event_name": "baseline_arm_1",
                    "enroll_date": "2026-01-02",
                },
                {
                    "record_id": "1",
                    "redcap_event_name": "visit_1_arm_1",
                    "redcap_repeat_instrument": "medications",
                    "redcap_repeat_instance": 2,
                    "med_name": "x",
                },
            ]
        )
        before = handle.pycap().export_records()
    with running(tmp_path) as server:
        project = redcap.Project(server.url, handle.token)
        assert project.export_project_info()["project_title"] == "Kept"
        assert project.export_records() == before
        assert {r["redcap_repeat_instance"] for r in before} == {"", 2}


def test_only_post_to_api_is_served(sandbox: SandboxServer) -> None:
    base = sandbox.url.removesuffix("api/")
    page = requests.post(base + "index.php", data={"content": "version"}, timeout=10)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert requests.get(sandbox.url, timeout=10).status_code == 405


def test_unknown_content_is_refused(classic: Handle) -> None:
    reply = requests.post(
        classic.url, data={"token": classic.token, "content": "nope", "format": "json"}, timeout=10
    )
    assert reply.status_code == 400
    assert reply.json() == {"error": 'The value of the parameter "content" is not valid'}


def test_super_token_is_generated_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SUPER_TOKEN_VARIABLE, raising=False)
    token, generated = super_token(tmp_path)
    assert generated and len(token) == 64 and int(token, 16) >= 0
    assert super_token(tmp_path) == (token, False)
    assert (tmp_path / "super_token").stat().st_mode & 0o077 == 0


def test_super_token_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SUPER_TOKEN_VARIABLE, "ab" * 32)
    assert super_token(tmp_path) == ("AB" * 32, False)
    monkeypatch.setenv(SUPER_TOKEN_VARIABLE, "not-a-token")
    with pytest.raises(ConfigError, match=f"{SUPER_TOKEN_VARIABLE} must be 64 hexadecimal"):
        super_token(tmp_path)


def test_project_creation_needs_the_super_token(sandbox: SandboxServer) -> None:
    data = {
        "content": "project",
        "format": "json",
        "data": '[{"project_title": "X", "purpose": 0}]',
    }
    refused = requests.post(sandbox.url, data={**data, "token": "A" * 64}, timeout=10)
    assert refused.status_code == 403
    created = requests.post(sandbox.url, data={**data, "token": sandbox.super_token}, timeout=10)
    assert created.status_code == 200 and len(created.text.strip()) == 32


def test_faults_are_seeded_and_reproducible() -> None:
    first, second = Faults(rate=0.5, seed=3), Faults(rate=0.5, seed=3)
    sequence = [first.draw() for _ in range(50)]
    assert sequence == [second.draw() for _ in range(50)]
    assert 10 < sum(kind is not None for kind in sequence) < 40
    assert Faults().draw() is None
    with pytest.raises(ValueError):
        Faults(rate=2)


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[SandboxServer, Handle]]:
    with running(tmp_path, faults=Faults(delay=0.3)) as server:
        yield server, seed_project(server, "classic")


def _version(url: str, token: str) -> requests.Response:
    return requests.post(url, data={"token": token, "content": "version"}, timeout=10)


def test_fault_error_and_proxy_page(faulty: tuple[SandboxServer, Handle]) -> None:
    server, handle = faulty
    server.faults.configure(1.0, ["error"])
    reply = _version(server.url, handle.token)
    assert reply.status_code == 500 and "Internal Server Error" in reply.text
    server.faults.configure(1.0, ["html"])
    reply = _version(server.url, handle.token)
    assert reply.status_code == 502 and "nginx" in reply.text
    with pytest.raises(requests.RequestException):  # PyCap cannot read either
        handle.pycap().export_records(format_type="json")
    server.faults.configure(0.0)
    assert _version(server.url, handle.token).text == "15.2.1"


def test_fault_delay(faulty: tuple[SandboxServer, Handle]) -> None:
    server, handle = faulty
    server.faults.configure(1.0, ["delay"])
    start = time.monotonic()
    assert _version(server.url, handle.token).text == "15.2.1"
    assert time.monotonic() - start >= 0.3


def test_fault_truncate_and_drop_still_apply_the_request(
    faulty: tuple[SandboxServer, Handle],
) -> None:
    server, handle = faulty
    project = handle.pycap()
    server.faults.configure(1.0, ["truncate"])
    with pytest.raises(json.JSONDecodeError):
        project.import_records([{"record_id": "7", "age": "40"}])
    server.faults.configure(1.0, ["drop"])
    with pytest.raises(requests.ConnectionError):
        project.import_records([{"record_id": "8", "age": "41"}])
    server.faults.configure(0.0)
    assert [r["record_id"] for r in project.export_records(fields=["record_id"])] == ["7", "8"]
    assert server.faults.injected == ["truncate", "drop"]


def test_sandbox_refuses_non_loopback_without_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--host", "0.0.0.0", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a loopback address; add --allow-remote" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_init_creates_the_projects_and_is_safe_to_repeat(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.sandbox"
    args = ["sandbox", "--data", str(tmp_path / "data"), "--port", str(_free_port())]
    args += ["init", "--env-file", str(env_file), "--definitions", str(LIBRARY)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "hekta: created" in first.output and "ips_fidelity: created" in first.output
    assert env_file.stat().st_mode & 0o077 == 0
    settings = Settings.load((env_file,), {})
    token = settings.token("hekta")
    assert token.reveal() not in first.output
    second = CliRunner().invoke(cli, args)
    assert "hekta: kept" in second.output and "ips_fidelity: kept" in second.output
    assert Settings.load((env_file,), {}).token("hekta") == token


def test_provisioned_project_matches_the_definitions(tmp_path: Path) -> None:
    project = load_project("hekta", LIBRARY)
    with running(tmp_path) as server:
        provision(server, [project], tmp_path / "env")
        token = Settings.load((tmp_path / "env",), {}).token("hekta")
        client = redcap.Project(server.url, token.reveal())
        assert client.is_longitudinal
        assert [m["field_name"] for m in client.export_metadata()] == [
            row.field_name for row in compile_project(project)
        ]
        assert [e["unique_event_name"] for e in client.export_events()] == [
            e.unique_name for e in project.study.events
        ]
        repeating = client.export_repeating_instruments_events()
        assert {r["form_name"] for r in repeating} == {"job_episode"}


def test_what_the_server_cannot_do_is_refused_clearly(classic: Handle) -> None:
    for data in (
        {"content": "record", "format": "odm"},
        {"content": "record", "format": "json", "combineCheckboxOptions": "true"},
    ):
        reply = requests.post(classic.url, data={"token": classic.token, **data}, timeout=10)
        assert reply.status_code == 400
        assert "local" in reply.text.lower(), reply.text


def test_faults_can_target_one_kind_of_call(faulty: tuple[SandboxServer, Handle]) -> None:
    server, handle = faulty
    server.faults.configure(1.0, ["error"], contents=["metadata"])
    assert _version(server.url, handle.token).text == "15.2.1"
    with pytest.raises(requests.RequestException):
        handle.pycap().export_metadata()
    data = {"token": handle.token, "content": "record", "format": "csv"}
    assert requests.post(server.url, data=data, timeout=10).status_code == 200
    assert server.faults.injected == ["error"]
