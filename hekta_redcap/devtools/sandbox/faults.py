"""Fault injection: make the local server misbehave the way real REDCap servers and their
proxies do, so that clients can be tested against it. Off by default; seeded, so a failing
test can be replayed.

    >>> faults = Faults(rate=0.2, kinds=("error", "drop"), seed=7)
    >>> app = FaultInjector(SandboxApp(store, super_token), faults)

Each fault happens at a fixed point:

- `error`: HTTP 500 with PHP's error page; the request is not processed.
- `html`: a proxy's 502 HTML page; the request is not processed.
- `delay`: the request is processed after `delay` seconds.
- `truncate`: the request IS processed, but the body is cut in half.
- `drop`: the request IS processed, then the connection is closed without an answer.

The last two are the hard cases for a client: the server changed state but the client cannot
know it.
"""

from __future__ import annotations

import contextlib
import io
import random
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

KINDS = ("error", "html", "delay", "truncate", "drop")

PHP_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body>"
    "<h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>"
)
PROXY_ERROR_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class Faults:
    """What to inject: a share of requests (`rate`, 0..1) gets one of `kinds`."""

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    seed: int = 0
    delay: float = 2.0
    # only these calls, as `content` or `content:action` (empty: every request)
    contents: frozenset[str] = frozenset()
    injected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._check()
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def _check(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"faults: rate must be 0..1 and kinds among {', '.join(KINDS)}")

    def configure(
        self,
        rate: float,
        kinds: Iterable[str] = KINDS,
        seed: int | None = None,
        contents: Iterable[str] = (),
    ) -> None:
        """Change the faults of a running server (tests turn them on and off)."""
        with self._lock:
            self.rate, self.kinds, self.contents = rate, tuple(kinds), frozenset(contents)
            self._check()
            if seed is not None:
                self.seed, self._random = seed, random.Random(seed)

    def draw(self, call: tuple[str, str] | None = None) -> str | None:
        """The fault for a request (its content and action), or None."""
        with self._lock:
            if self.contents and not (
                call and (call[0] in self.contents or ":".join(call) in self.contents)
            ):
                return None
            if self.rate <= 0 or self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.injected.append(kind)
            return kind


class FaultInjector:
    """WSGI middleware that applies `Faults` to the wrapped app."""

    def __init__(self, app: WSGIApplication, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from werkzeug.wrappers import Response  # werkzeug only where it serves (not for --help)

        kind = self.faults.draw(_call(environ) if self.faults.contents else None)
        if kind == "error":
            return Response(PHP_ERROR_PAGE, 500, content_type="text/html")(environ, start_response)
        if kind == "html":
            return Response(PROXY_ERROR_PAGE, 502, content_type="text/html")(
                environ, start_response
            )
        if kind == "delay":
            time.sleep(self.faults.delay)
        if kind not in ("truncate", "drop"):
            return self.app(environ, start_response)
        response = Response.from_app(self.app, environ)
        if kind == "truncate":
            body = response.get_data()
            response.set_data(body[: len(body) // 2])
            return response(environ, start_response)
        _drop(environ)
        return []


def _call(environ: WSGIEnvironment) -> tuple[str, str] | None:
    """The API content and action of a form-encoded request, read without consuming its body."""
    from werkzeug.wrappers import Request

    if "urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    body = Request(environ).get_data(cache=True)
    environ["wsgi.input"] = io.BytesIO(body)
    params = parse_qs(body.decode("latin-1"))
    content = params.get("content", [""])[0]
    action = params.get("action", ["import" if "data" in params else "export"])[0]
    return content, action


def _drop(environ: WSGIEnvironment) -> None:
    """Close the client's connection without writing a response."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError("fault injection: connection dropped")
