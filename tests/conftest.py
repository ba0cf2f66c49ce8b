from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redcap
from sandbox_support import Handle, seed_project
from werkzeug.serving import make_server

from hekta_redcap.core.settings import Settings
from hekta_redcap.data import sync
from hekta_redcap.definitions.study import load_project
from hekta_redcap.devtools.cohort import generate
from hekta_redcap.devtools.provision import provision
from hekta_redcap.devtools.sandbox.server import SandboxServer, running

REPO = Path(__file__).resolve().parents[1]


def _shipped_definitions() -> Path:
    """The repository's definitions without a site's `instruments/local/` overlays (licensed
    text, git-ignored, on some machines only), copied once per test run so that no test reads
    them."""
    root = Path(tempfile.mkdtemp(prefix="hekta-tests-")) / "instruments"
    shutil.copytree(REPO / "instruments", root, ignore=shutil.ignore_patterns("local"))
    atexit.register(shutil.rmtree, root.parent, ignore_errors=True)
    return root


LIBRARY = _shipped_definitions()


def _fresh_clone(factory: pytest.TempPathFactory, patch: pytest.MonkeyPatch) -> None:
    """Run as on a fresh clone, whatever the developer's machine holds: in an empty working
    directory with only the shipped definitions as `./instruments` (so no `./.env`,
    `./.env.sandbox` or `instruments/local/` overlay is read, here or by a subprocess started
    there), and without the shell's HEKTA_* and REDCAP_* settings but one: REDCap calls are
    retried without waiting, since tests inject faults on purpose. The directory sits two levels
    below the run's temporary files, as a checkout sits far from them: file names that messages
    show relative to the working directory only when near (`errors.Origin`) stay absolute."""
    for name in list(os.environ):
        if name.startswith(("HEKTA_", "REDCAP_")):
            patch.delenv(name)
    patch.setenv("HEKTA_REDCAP_BACKOFF_SECONDS", "0")  # faults are injected on purpose: no waits
    work = factory.mktemp("cwd") / "clone"
    work.mkdir()
    (work / "instruments").symlink_to(LIBRARY, target_is_directory=True)
    patch.chdir(work)


@pytest.fixture(scope="session", autouse=True)
def fresh_clone_for_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`_fresh_clone` for the module- and session-scoped fixtures, set up before them."""
    with pytest.MonkeyPatch.context() as patch:
        _fresh_clone(tmp_path_factory, patch)
        yield


@pytest.fixture(autouse=True)
def fresh_clone(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`_fresh_clone` again for each test, in an empty working directory of its own."""
    _fresh_clone(tmp_path_factory, monkeypatch)


@contextmanager
def serving(app: Callable[..., object]) -> Iterator[str]:
    """A WSGI app served on 127.0.0.1 (a free port) for the block: its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def synced_trial(sandbox: SandboxServer, where: Path, participants: int, seed: int) -> Settings:
    """Settings for a new trial project on the local server holding a synthetic cohort,
    synced into a store under `where`."""
    project = load_project("hekta", LIBRARY)
    provision(sandbox, [project], where / "env")
    settings = Settings.load((where / "env",), {"HEKTA_STORE": str(where / "store.sqlite3")})
    client = redcap.Project(sandbox.url, settings.token("hekta").reveal())
    generate(project, participants, seed=seed).load(client)
    sync.run(settings, "hekta")
    return settings


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A private copy of the shipped definitions (without any site-local overlay)."""
    root = tmp_path / "instruments"
    shutil.copytree(LIBRARY, root, ignore=shutil.ignore_patterns("local"))
    return root


def edit(root: Path, relative: str, old: str, new: str) -> Path:
    """Replace the first `old` in a definition file; fails loudly if `old` is not there."""
    file = root / relative
    text = file.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return file


def line_of(file: Path, snippet: str) -> int:
    """1-based line of the first occurrence of `snippet` in `file`."""
    text = file.read_text(encoding="utf-8")
    assert snippet in text, f"{snippet!r} not in {file}"
    return text[: text.index(snippet)].count("\n") + 1


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """One local REDCap-compatible server on a free loopback port for the whole session."""
    with running(tmp_path_factory.mktemp("sandbox")) as server:
        yield server


@pytest.fixture
def classic(sandbox: SandboxServer) -> Handle:
    """A fresh classic project (every field type) on the session's server."""
    return seed_project(sandbox, "classic")


@pytest.fixture
def longitudinal(sandbox: SandboxServer) -> Handle:
    """A fresh longitudinal project (2 arms, a repeating instrument and a repeating event)."""
    return seed_project(sandbox, "longitudinal")
