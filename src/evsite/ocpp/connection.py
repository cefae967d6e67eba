"""OCPP-J RPC over one WebSocket: framing, CALL/CALLRESULT correlation, queues and timeouts.

Three rules of OCPP-J shape this module:

- We keep at most one CALL of our own outstanding per connection (1.6J §4.1.1): `call()` waits
  its turn in a FIFO queue and gives up after the call timeout.
- CALLs cross: the charger may call us while our CALL is pending. The read loop therefore never
  waits for a handler. Inbound CALLs go to a per-connection worker that serves them in arrival
  order (a charger's Start/MeterValues/Stop must be handled in order), while the read loop keeps
  reading and can deliver the CALLRESULT our own call is waiting for.
- Every frame we send is validated against the official schema first; a handler result that
  fails validation is replaced by an InternalError rather than sent.

Malformed input never takes the connection down by itself: a frame with a usable message id gets
a CallError, a frame without one is logged and dropped (OCPP-J 1.6 §4.1.3 says to ignore unknown
message types). A peer that sends a storm of bad frames is closed with 1008 (policy violation).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.connection import Connection as WebSocket
from websockets.exceptions import ConnectionClosed

from evsite.ocpp import validate
from evsite.ocpp.errors import ERROR_CODES, CallErrorReceived, CallTimeout, NotConnected, OcppError

log = logging.getLogger(__name__)

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_MESSAGE_ID = 36


@dataclass(frozen=True)
class Dialect:
    """What differs between OCPP-J versions on one connection: schemas, action sets, error-code spelling."""

    validate_request: Callable[[str, Any], None]
    validate_response: Callable[[str, Any], None]
    inbound_actions: frozenset[str]
    all_actions: frozenset[str]
    renamed_codes: Mapping[str, str] = field(default_factory=dict)
    """Error codes raised here in 1.6 spelling → this version's spelling (applied when sending)."""


V16 = Dialect(
    validate.validate_request, validate.validate_response, validate.CHARGE_POINT_ACTIONS, validate.ALL_ACTIONS
)

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Serves one inbound CALL: (action, payload) → result payload, or raises OcppError."""


class RpcConnection:
    """The OCPP-J endpoint of one charger connection."""

    def __init__(
        self,
        ws: WebSocket,
        identity: str,
        handler: Handler,
        *,
        call_timeout: float = 30.0,
        dialect: Dialect = V16,
        max_inbox: int = 1000,
        bad_frame_budget: int = 50,
        bad_frame_window_s: float = 10.0,
    ) -> None:
        self.ws = ws
        self.identity = identity
        self.call_timeout = call_timeout
        self._handler = handler
        self.dialect = dialect
        self._inbox: asyncio.Queue[tuple[str, str, dict[str, Any]] | None] = asyncio.Queue()
        self._max_inbox = max_inbox
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[Any]] | None = None
        self._ids = (f"{os.urandom(4).hex()}-{n}" for n in itertools.count(1))
        self._bad_budget = bad_frame_budget
        self._bad_window = bad_frame_window_s
        self._bad_times: list[float] = []
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._after_reply: list[Callable[[], None]] = []
        self.last_seen = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ read loop

    async def run(self) -> None:
        """Read frames until the connection closes; serve inbound CALLs in a worker task."""
        worker = asyncio.create_task(self._serve_inbox(), name=f"ocpp-inbox-{self.identity}")
        try:
            async for frame in self.ws:
                self.last_seen = time.monotonic()
                if self._closing is not None:
                    continue  # keep reading (and dropping) so the closing handshake can complete
                if isinstance(frame, bytes):
                    # OCPP-J uses text frames only (§3.3); 1003 = data type we cannot accept.
                    self._close(1003, "OCPP-J messages are text frames")
                    continue
                await self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._closed = True
            if self._closing is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._closing
            self._inbox.put_nowait(None)
            if self._pending is not None and not self._pending[1].done():
                self._pending[1].set_exception(NotConnected(self.identity))
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _on_frame(self, frame: str) -> None:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            await self._bad_frame("not JSON", None)
            return
        if not isinstance(message, list) or len(message) < 3 or type(message[0]) is not int:
            unique_id = message[1] if isinstance(message, list) and len(message) > 1 else None
            await self._bad_frame("not an OCPP-J message array", unique_id if isinstance(unique_id, str) else None)
            return
        kind, unique_id = message[0], message[1]
        if not isinstance(unique_id, str):
            await self._bad_frame("message id must be a string", None)
            return
        if kind == CALL:
            await self._on_call(message)
        elif kind in (CALLRESULT, CALLERROR):
            self._on_answer(message)
        else:
            # §4.1.3: a message type not in the list SHALL be ignored.
            log.warning("%s: ignored message of unknown type %r", self.identity, kind)
            await self._bad_frame(f"unknown message type {kind!r}", None)

    async def _on_call(self, message: list[Any]) -> None:
        unique_id = message[1]
        if len(message) != 4 or not isinstance(message[2], str):
            await self._bad_frame("a CALL is [2, id, action, payload]", unique_id)
            return
        if len(unique_id) > MAX_MESSAGE_ID:
            await self._bad_frame(f"message id longer than {MAX_MESSAGE_ID} characters", unique_id)
            return
        action, payload = message[2], message[3]
        if action not in self.dialect.inbound_actions:
            if action in self.dialect.all_actions:
                await self.send_error(unique_id, OcppError("NotSupported", f"{action} is not sent by a charge point"))
            else:
                await self.send_error(unique_id, OcppError("NotImplemented", f"unknown action {action!r}"))
            return
        if self._inbox.qsize() >= self._max_inbox:
            await self.send_error(unique_id, OcppError("GenericError", "too many CALLs waiting; wait for answers"))
            return
        self._inbox.put_nowait((unique_id, action, payload))

    def _on_answer(self, message: list[Any]) -> None:
        unique_id = message[1]
        pending = self._pending
        if pending is None or pending[0] != unique_id or pending[1].done():
            log.warning("%s: dropped answer to unknown or timed-out call %s", self.identity, unique_id)
            return
        future = pending[1]
        if message[0] == CALLRESULT:
            if len(message) != 3:
                future.set_exception(OcppError("FormationViolation", "a CALLRESULT is [3, id, payload]"))
            else:
                future.set_result(message[2])
        else:
            code = message[2] if len(message) > 2 and isinstance(message[2], str) else "GenericError"
            description = message[3] if len(message) > 3 and isinstance(message[3], str) else ""
            details = message[4] if len(message) > 4 and isinstance(message[4], dict) else {}

            future.set_exception(
                CallErrorReceived(code if code in ERROR_CODES else "GenericError", description, details)
            )

    async def _bad_frame(self, reason: str, unique_id: str | None) -> None:
        log.warning("%s: malformed frame: %s", self.identity, reason)
        if unique_id is not None:
            await self.send_error(unique_id, OcppError("FormationViolation", reason))
        now = time.monotonic()
        self._bad_times = [t for t in self._bad_times if now - t < self._bad_window]
        self._bad_times.append(now)
        if len(self._bad_times) > self._bad_budget:
            log.warning("%s: too many malformed frames; closing", self.identity)
            self._close(1008, "too many malformed OCPP messages")

    def _close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self.ws.close(code, reason))

    # ------------------------------------------------------------------ inbound CALLs

    async def _serve_inbox(self) -> None:
        while (item := await self._inbox.get()) is not None:
            unique_id, action, payload = item
            try:
                self.dialect.validate_request(action, payload)
                result = await self._handler(action, payload)
                try:
                    self.dialect.validate_response(action, result)
                except OcppError as exc:
                    log.error("%s: our %s response fails its schema (%s): %r", self.identity, action, exc, result)
                    raise OcppError("InternalError", "the central system produced an invalid response") from None
            except OcppError as exc:
                self._after_reply.clear()
                await self.send_error(unique_id, exc)
                continue
            except Exception:
                self._after_reply.clear()
                log.exception("%s: %s handler failed", self.identity, action)
                await self.send_error(unique_id, OcppError("InternalError", f"{action} could not be processed"))
                continue
            await self._send([CALLRESULT, unique_id, result])
            callbacks, self._after_reply = self._after_reply, []
            for callback in callbacks:
                callback()

    def after_reply(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the CALLRESULT being produced has been sent (e.g. to start our own CALLs)."""
        self._after_reply.append(callback)

    async def send_error(self, unique_id: str, error: OcppError) -> None:
        code = self.dialect.renamed_codes.get(error.code, error.code)
        await self._send([CALLERROR, unique_id, code, error.description[:255], error.details])

    async def _send(self, message: list[Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(orjson.dumps(message), text=True)

    # ------------------------------------------------------------------ our CALLs

    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL and return the validated CALLRESULT payload.

        Raises CallErrorReceived (the charger answered with a CallError), CallTimeout,
        NotConnected, or OcppError when the charger's answer fails the response schema.
        """
        self.dialect.validate_request(action, payload)  # a bug on our side: never send it
        async with self._call_lock:
            if self._closed:
                raise NotConnected(self.identity)
            unique_id = next(self._ids)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending = (unique_id, future)
            try:
                try:
                    await self.ws.send(orjson.dumps([CALL, unique_id, action, payload]), text=True)
                except ConnectionClosed:
                    raise NotConnected(self.identity) from None
                try:
                    result = await asyncio.wait_for(future, timeout or self.call_timeout)
                except TimeoutError:
                    raise CallTimeout(
                        f"{self.identity}: no answer to {action} within {timeout or self.call_timeout} s"
                    ) from None
            finally:
                self._pending = None
        self.dialect.validate_response(action, result)
        return dict(result)
