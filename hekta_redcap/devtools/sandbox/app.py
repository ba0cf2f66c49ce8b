"""The HTTP side of the local REDCap-compatible server: one POST endpoint ending in `/api/`.

The app authenticates the token, finds the handler registered for (content, action), runs it in
one transaction (so a refused import changes nothing) and renders REDCap's error body in the
request's return format when the handler refuses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from hekta_redcap.devtools.sandbox import api  # noqa: F401  (registers the area modules' endpoints)
from hekta_redcap.devtools.sandbox.endpoints import ENDPOINTS, Call, load_user
from hekta_redcap.devtools.sandbox.store import Store
from hekta_redcap.devtools.sandbox.wire import (
    ApiError,
    Params,
    Reply,
    invalid_parameter,
    render_error,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

NO_PERMISSION = "You do not have permissions to use the API"
PROJECT_TOKEN = re.compile(r"[0-9A-Fa-f]{32}")
MAX_BODY = 512 * 1024 * 1024  # uploads of whole projects and files

NOT_FOUND_PAGE = (
    "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
    "<p>The REDCap API is at /api/</p></body></html>"
)


class SandboxApp:
    """A WSGI application serving one `Store`."""

    def __init__(self, store: Store, super_token: str, public_url: str | None = None) -> None:
        self.store = store
        self.super_token = super_token
        self.public_url = public_url  # REDCap's configured base URL, for survey links

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        if not request.path.endswith("/api/"):
            return Response(NOT_FOUND_PAGE, 404, content_type="text/html; charset=utf-8")
        if request.method != "POST":
            return Response("The REDCap API takes POST requests only.", 405)
        try:
            params = Params(request.form, request.files)
        except HTTPException as exc:
            return Response(str(exc.description), exc.code or 400)
        base_url = self.public_url or (
            request.host_url + request.path.removeprefix("/").removesuffix("api/")
        )
        reply = self.handle(params, base_url)
        return Response(
            reply.body, reply.status, headers=reply.headers, content_type=reply.content_type
        )

    def handle(self, params: Params, base_url: str) -> Reply:
        """Authenticate, dispatch and render one API call."""
        fmt = params.return_format
        try:
            with self.store.transaction() as conn:
                call = Call(params, conn, self.store, base_url)
                found = ENDPOINTS.get((params.content, params.action))
                token = params.get("token") or ""
                if found is not None and found.super_token:
                    if token != self.super_token:
                        raise ApiError(NO_PERMISSION, 403)
                    return found.handler(call)
                if not PROJECT_TOKEN.fullmatch(token):
                    raise ApiError(NO_PERMISSION, 403)
                owner = load_user(conn, token)
                if owner is None:
                    raise ApiError(NO_PERMISSION, 403)
                call.user, call.project = owner
                if found is None:
                    raise invalid_parameter("content")
                for right in found.privileges:
                    call.require(right)
                return found.handler(call)
        except ApiError as exc:
            return render_error(exc.message, fmt, exc.status)
