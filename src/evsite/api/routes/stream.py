"""The live stream: a WebSocket pushing site state, charger tiles and new events every second.

Browsers cannot set headers on a WebSocket, so the token may come as `?token=` as well as in an
`Authorization: Bearer` header. Bad tokens get close code 4401, wrong roles 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from evsite.api.live import LiveState
from evsite.api.problems import ApiProblem
from evsite.api.tokens import TokenStore
from evsite.api.views import charger_views, site_state

router = APIRouter(tags=["live"])


@router.websocket("/api/v1/live")
async def live_stream(
    websocket: WebSocket,
    token: Annotated[str | None, Query(max_length=200)] = None,
    interval: Annotated[float, Query(ge=0.2, le=10.0)] = 1.0,
) -> None:
    store: TokenStore = websocket.app.state.tokens
    live: LiveState = websocket.app.state.live
    header = websocket.headers.get("authorization", "")
    if token is None and header.lower().startswith("bearer "):
        token = header[7:].strip()
    await websocket.accept()
    try:
        from evsite.api.auth import authenticate

        await authenticate(store, token)
    except ApiProblem as exc:
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
