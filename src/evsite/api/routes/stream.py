"""The live stream: a WebSocket pushing site state, charger tiles and new events every second.

The token never goes in the URL (URLs end up in access logs and browser history). Programs send
`Authorization: Bearer …`; browsers, which cannot set headers on a WebSocket, offer two subprotocols,
`evsite.v1` and `evsite.bearer.<token>`, and the server selects `evsite.v1` so the token is never
echoed back. A bad or missing token, or one in the query string, gets close code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from evsite.api.auth import authenticate
from evsite.api.guard import AuthFailures, bearer_token
from evsite.api.live import LiveState
from evsite.api.problems import ApiProblem
from evsite.api.tokens import TokenStore
from evsite.api.views import charger_views, site_state

router = APIRouter(tags=["live"])


SUBPROTOCOL = "evsite.v1"
BEARER_SUBPROTOCOL = "evsite.bearer."


def offered_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token from the Authorization header or the bearer subprotocol, and the subprotocol to select."""
    offered = list(websocket.scope.get("subprotocols", []))
    selected = SUBPROTOCOL if SUBPROTOCOL in offered else None
    token = bearer_token(websocket.headers)
    if token is None:
        token = next((p.removeprefix(BEARER_SUBPROTOCOL) for p in offered if p.startswith(BEARER_SUBPROTOCOL)), None)
    return token, selected


@router.websocket("/api/v1/live")
async def live_stream(websocket: WebSocket, interval: Annotated[float, Query(ge=0.2, le=10.0)] = 1.0) -> None:
    store: TokenStore = websocket.app.state.tokens
    live: LiveState = websocket.app.state.live
    failures: AuthFailures = websocket.app.state.auth_failures
    token, subprotocol = offered_token(websocket)
    await websocket.accept(subprotocol=subprotocol)
    if "token" in websocket.query_params:
        failures.record("token-in-url", websocket.client.host if websocket.client else None)
        reason = "send the token in the Authorization header or the evsite.bearer subprotocol, never in the URL"
        await websocket.close(code=4401, reason=reason)
        return
    try:
        await authenticate(store, token)
    except ApiProblem as exc:
        failures.record("missing" if token is None else "invalid", websocket.client.host if websocket.client else None)
        await websocket.close(code=4401, reason=exc.detail or exc.title)
        return
    reader = asyncio.create_task(_drain(websocket))
    seq = max(0, live.last_seq - 20)
    try:
        while not reader.done():
            events = live.events_since(seq)
            seq = live.last_seq
            message = {
                "type": "state",
                "state": site_state(live).model_dump(mode="json"),
                "chargers": [c.model_dump(mode="json") for c in charger_views(live)],
                "events": events[-100:],
            }
            await websocket.send_json(message)
            await asyncio.wait({reader}, timeout=interval)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client frames so a close is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
