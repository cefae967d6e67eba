"""The API's front door: body size limit, authentication before any body is read, security headers.

Everything here runs before FastAPI parses a request, because parsing is where an unauthenticated
client could make the server buffer a body of any size. The order is: a declared `Content-Length`
over the limit is answered 413 at once; a protected path without a valid token is answered 401 at
once (its body, up to the limit, is drained unparsed so the client can read the answer); an
undeclared (chunked) body is counted as it arrives and cut off at the limit with 413. Failed
authentication is counted for `/metrics` and logged at most once per interval, so a flood of bad
requests costs neither a database row nor a log line each.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evsite.api.problems import PROBLEM_JSON, Problem
from evsite.api.tokens import Principal, TokenStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest request body accepted (1 MiB); every command body is a few hundred bytes."""
PUBLIC_PATHS = frozenset({"/api/v1/health"})
PROTECTED_PREFIXES = ("/api/", "/metrics")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc load their code from a CDN and start it with an inline script (FastAPI's pages).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def content_security_policy(path: str) -> str:
    """The CSP for a response: strict for data, `self`-only for the dashboard, CDN-allowing for /docs."""
    if path.startswith("/dashboard") or path == "/":
        return DASHBOARD_CSP
    if path.startswith(("/docs", "/redoc")):
        return DOCS_CSP
    return API_CSP


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without a declared length grows past the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


@dataclass
class AuthFailures:
    """Failed authentications: counted by reason for `/metrics`, logged at most once per `log_interval_s`."""

    log_interval_s: float = 60.0
    counts: Counter[str] = field(default_factory=Counter)
    _unlogged: int = 0
    _last_log: float = float("-inf")

    def record(self, reason: str, client: str | None) -> None:
        self.counts[reason] += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= self.log_interval_s:
            log.warning(
                "%d failed API authentication(s) since the last report (latest: %s from %s)",
                self._unlogged, reason, client or "unknown",
            )  # fmt: skip
            self._last_log, self._unlogged = now, 0


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class RequestGuard:
    """Pure ASGI middleware (outermost of ours): size limit, then authentication, then the app; adds headers."""

    def __init__(
        self,
        app: ASGIApp,
        store: Callable[[], TokenStore | None],
        failures: AuthFailures,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app, self.store, self.failures, self.max_body_bytes = app, store, failures, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = content_security_policy(path).encode()
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(b"content-security-policy", csp), *COMMON_HEADERS]
                if path.startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *((n, v) for n, v in extra if n not in present)]
            await send(message)

        headers = Headers(scope=scope)
        declared = _declared_length(headers)
        has_body = bool(declared) or "transfer-encoding" in headers
        if declared is not None and declared > self.max_body_bytes:
            detail = BodyTooLarge(self.max_body_bytes).detail
            await _problem(scope, send_with_headers, 413, "Payload too large", detail, close=True)
            return
        if path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS:
            principal = await self._authenticate(scope, headers)
            if principal is None:
                drained = not has_body or await _discard(receive, self.max_body_bytes)
                await _problem(
                    scope, send_with_headers, 401, "Unauthorized",
                    "send a valid API token as `Authorization: Bearer …`", {"www-authenticate": "Bearer"},
                    close=not drained,
                )  # fmt: skip
                return
            scope.setdefault("state", {})["principal"] = principal

        received = 0
        ended = True

        async def receive_limited() -> Message:
            nonlocal received, ended
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    ended = not message.get("more_body", False) or await _discard(receive, self.max_body_bytes)
                    raise BodyTooLarge(self.max_body_bytes)  # FastAPI answers it as a 413 problem
            return message

        try:
            await self.app(scope, receive_limited, send_with_headers)
        except BodyTooLarge as exc:  # raised outside FastAPI's handlers (they turn it into the same 413)
            if started:
                raise
            await _problem(scope, send_with_headers, 413, "Payload too large", exc.detail, close=not ended)

    async def _authenticate(self, scope: Scope, headers: Headers) -> Principal | None:
        token = bearer_token(headers)
        store = self.store()
        principal = await store.verify(token) if token and store is not None else None
        if principal is None:
            client = scope.get("client")
            self.failures.record("missing" if token is None else "invalid", client[0] if client else None)
        return principal


async def _discard(receive: Receive, budget: int) -> bool:
    """Read and drop at most `budget` more body bytes; True when the body ended within them.

    Closing a socket with unread data makes the kernel send a reset, which can destroy the answer
    before the client reads it; a small body is therefore drained (never stored) so a client with
    an expired token sees its 401. Anything longer is cut off and the connection closed.
    """
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return True
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


async def _problem(
    scope: Scope,
    send: Send,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    """A problem+json answer sent straight from the middleware; `close` when a body is left unread."""
    kind = "unauthorized" if status == 401 else "payload-too-large"
    body = (
        Problem(
            type=f"https://evsite.dev/problems/{kind}",
            title=title,
            status=status,
            detail=detail,
            instance=scope["path"],
        )
        .model_dump_json(exclude_none=True)
        .encode()
    )
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
