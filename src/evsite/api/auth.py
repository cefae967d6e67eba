"""Bearer-token authentication, role checks, and the audit trail of every mutating call by a known token.

`evsite.api.guard` authenticates before the body is read and leaves the principal in the request
state; the dependencies here check its role. Requests without a valid token never reach a route or
the audit log (they are counted in `/metrics` instead).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evsite.api.problems import ApiProblem
from evsite.api.tokens import Principal, Role, TokenStore

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An evsite API token: `Authorization: Bearer evs_…`")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token_store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.tokens
    return store


async def authenticate(store: TokenStore, token: str | None) -> Principal:
    if not token:
        raise ApiProblem(401, "Unauthorized", "send an API token as `Authorization: Bearer …`", "unauthorized")
    principal = await store.verify(token)
    if principal is None:
        raise ApiProblem(401, "Unauthorized", "the API token is unknown or revoked", "unauthorized")
    return principal


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose role is `role` or higher (admin > operator > viewer)."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # a route outside the guard's protected paths
            principal = await authenticate(token_store(request), credentials.credentials if credentials else None)
            request.state.principal = principal
        if not principal.role.allows(role):
            raise ApiProblem(403, "Forbidden", f"this needs the {role.value} role; the token has {principal.role}")
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


viewer = Depends(require(Role.VIEWER))
operator = Depends(require(Role.OPERATOR))
admin = Depends(require(Role.ADMIN))


def note(request: Request, **detail: Any) -> None:
    """Add what a mutating call did to its audit entry."""
    request.state.audit = {**getattr(request.state, "audit", {}), **detail}


class AuditMiddleware:
    """Writes one audit entry per mutating API request by a known token once its status is known, allowed or not.

    Anonymous and bad-token requests are left out on purpose: one row each would let anyone fill the database.
    """

    def __init__(self, app: ASGIApp, store: Callable[[], TokenStore | None]) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        status = 500
        written = False

        async def write_audit() -> None:
            nonlocal written
            store = self.store()
            if written or store is None:
                return
            written = True
            state = scope.get("state", {})
            principal: Principal | None = state.get("principal")
            if principal is None:
                return
            try:
                await store.audit(principal, scope["method"], scope["path"], status, state.get("audit"))
            except Exception:  # the audit write must not turn a served request into an error
                log.exception("could not write the audit entry for %s %s", scope["method"], scope["path"])

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await write_audit()  # stored before the client sees the end of the response
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            await write_audit()
