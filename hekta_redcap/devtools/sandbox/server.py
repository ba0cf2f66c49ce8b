"""Running the local REDCap-compatible server: in a thread for tests, init and the demo, or in
the foreground for `hekta-redcap sandbox`.

    >>> with running(Path("var/sandbox")) as server:
    ...     project = redcap.Project(server.url, token)

The data directory holds the SQLite file and the super token. The super token comes from
`HEKTA_SANDBOX_SUPER_TOKEN` when set; otherwise it is generated once and kept in the directory.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from hekta_redcap.core.errors import ConfigError
from hekta_redcap.devtools.sandbox.app import SandboxApp
from hekta_redcap.devtools.sandbox.faults import FaultInjector, Faults
from hekta_redcap.devtools.sandbox.store import Store

DATABASE = "sandbox.sqlite3"
SUPER_TOKEN_FILE = "super_token"
SUPER_TOKEN_VARIABLE = "HEKTA_SANDBOX_SUPER_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def super_token(data_dir: Path) -> tuple[str, bool]:
    """The server's super token and whether it was generated just now."""
    configured = os.environ.get(SUPER_TOKEN_VARIABLE, "").strip()
    if configured:
        if not re.fullmatch(r"[0-9A-Fa-f]{64}", configured):
            raise ConfigError(f"{SUPER_TOKEN_VARIABLE} must be 64 hexadecimal characters")
        return configured.upper(), False
    file = data_dir / SUPER_TOKEN_FILE
    if file.is_file():
        return file.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32).upper()
    file.touch(mode=0o600)
    file.write_text(token + "\n")
    return token, True


class _QuietHandler(WSGIRequestHandler):
    """No per-request log lines: request bodies hold tokens and personal data."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@dataclass
class SandboxServer:
    """A running server: its URL, its store and its fault switch."""

    url: str
    store: Store
    faults: Faults
    super_token: str
    httpd: BaseWSGIServer

    @property
    def data_dir(self) -> Path:
        return self.store.path.parent


def build(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: Faults | None = None,
    public_url: str | None = None,
) -> SandboxServer:
    """A server bound to host:port (0 picks a free port), not yet serving. `public_url` is
    the base URL survey links start with (REDCap's own setting); default: the request's."""
    store = Store(data_dir / DATABASE)
    token, _ = super_token(data_dir)
    faults = faults or Faults()
    app = FaultInjector(SandboxApp(store, token, public_url), faults)
    httpd = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{httpd.server_port}/api/"
    return SandboxServer(url, store, faults, token, httpd)


@contextmanager
def running(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: Faults | None = None,
    public_url: str | None = None,
) -> Iterator[SandboxServer]:
    """Serve in a background thread for the duration of the block."""
    server = build(data_dir, host, port, faults, public_url)
    thread = threading.Thread(target=server.httpd.serve_forever, name="sandbox", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        thread.join(timeout=10)
        server.httpd.server_close()
        server.store.close()
