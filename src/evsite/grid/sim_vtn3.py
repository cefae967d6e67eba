"""A small OpenADR 3 VTN on loopback (Starlette + uvicorn) for tests and the demo.

It serves the part of the 3.0.1 / 3.1.0 REST surface a VEN uses: `POST /auth/token` (client credentials, tokens
that expire after `token_ttl_s`), `GET /auth/server` (3.1.0), `GET /programs`, `GET /events` (target filters,
skip/limit), `POST /reports`, `GET /reports` and `POST /subscriptions`. Requests without a live token get 401.
Scripts add, change and cancel (delete) events; `put_raw_event` stores any JSON, to test what a VEN refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)


@dataclass
class Vtn3Log:
    grants: int = 0
    unauthorized: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    reports: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)


def _values(item: dict[str, Any], kind: str | None) -> set[str]:
    """An object's target values (3.1.0 strings, or 3.0.1 valuesMaps of type `kind`)."""
    out: set[str] = set()
    for t in item["targets"]:
        if isinstance(t, str):
            out.add(t)
        elif isinstance(t, dict) and (kind is None or t.get("type") == kind):
            out |= {str(v) for v in t.get("values", [])}
    return out


def _iso_seconds(td: timedelta) -> str:
    return f"PT{td.total_seconds():g}S"


class SimVtn3:
    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        version: str = "3.0.1",
        clients: dict[str, str | None] | None = None,
        token_ttl_s: float = 3600.0,
    ) -> None:
        self.host, self.port, self.version = host, port, version
        self.clients = clients if clients is not None else {"evsite-ven": "ven-secret"}
        self.token_ttl_s = token_ttl_s
        self.log = Vtn3Log()
        self.programs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"/openadr3/{self.version}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.base}"

    # ---------------------------------------------------------------- scripting

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _targets(self, targets: dict[str, list[str]] | None) -> list[Any] | None:
        if not targets:
            return None
        if self.version == "3.1.0":
            return [v for vs in targets.values() for v in vs]
        return [{"type": k, "values": list(vs)} for k, vs in targets.items()]

    def add_program(self, name: str, *, targets: dict[str, list[str]] | None = None) -> str:
        program_id = self._id("program")
        self.programs[program_id] = {
            "id": program_id,
            "objectType": "PROGRAM",
            "programName": name,
            "targets": self._targets(targets),
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
            ],
        }
        return program_id

    def add_event(
        self,
        program_id: str,
        *,
        start: datetime,
        intervals: list[tuple[timedelta, dict[str, float]]],
        units: dict[str, str] | None = None,
        targets: dict[str, list[str]] | None = None,
        randomize: timedelta | None = None,
        name: str | None = None,
    ) -> str:
        """An event of consecutive intervals (duration, {payloadType: value}) from `start`."""
        event_id = self._id("event")
        self.events[event_id] = self._event_body(
            event_id, program_id, start, intervals, units, targets, randomize, name
        )
        return event_id

    def _event_body(
        self,
        event_id: str,
        program_id: str,
        start: datetime,
        intervals: list[tuple[timedelta, dict[str, float]]],
        units: dict[str, str] | None,
        targets: dict[str, list[str]] | None,
        randomize: timedelta | None,
        name: str | None,
    ) -> dict[str, Any]:
        items, cursor = [], start
        for n, (length, payloads) in enumerate(intervals):
            period: dict[str, Any] = {"start": cursor.isoformat(), "duration": _iso_seconds(length)}
            if randomize:
                period["randomizeStart"] = _iso_seconds(randomize)
            items.append(
                {
                    "id": n,
                    "intervalPeriod": period,
                    "payloads": [{"type": k, "values": [v]} for k, v in payloads.items()],
                }
            )
            cursor += length
        types = sorted({k for _, p in intervals for k in p})
        now = datetime.now(UTC).isoformat()
        return {
            "id": event_id,
            "objectType": "EVENT",
            "createdDateTime": now,
            "modificationDateTime": now,
            "programID": program_id,
            "eventName": name or event_id,
            "targets": self._targets(targets),
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": (units or {}).get(t, "KW")}
                for t in types
            ],
            "reportDescriptors": [{"payloadType": "DEMAND", "readingType": "DIRECT_READ", "units": "KW"}],
            "intervals": items,
        }

    def modify_event(self, event_id: str, payloads: dict[str, float]) -> None:
        """Set new values for these payload types in every interval."""
        event = self.events[event_id]
        for interval in event["intervals"]:
            for vm in interval["payloads"]:
                if vm["type"] in payloads:
                    vm["values"] = [payloads[vm["type"]]]
        event["modificationDateTime"] = datetime.now(UTC).isoformat()

    def cancel_event(self, event_id: str) -> None:
        """OpenADR 3 cancels by deleting the event."""
        self.events.pop(event_id, None)

    def put_raw_event(self, body: Any, event_id: str | None = None) -> str:
        """Store anything as an event (for tests of what a VEN refuses)."""
        event_id = event_id or self._id("raw")
        self.events[event_id] = body
        return event_id

    # ---------------------------------------------------------------- HTTP

    def _authorized(self, request: Any) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        expires = self.tokens.get(token)
        ok = expires is not None and datetime.now(UTC) < expires
        if not ok:
            self.log.unauthorized += 1
        return ok

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        def problem(status: int, title: str) -> Response:
            return JSONResponse({"title": title, "status": status}, status, media_type="application/problem+json")

        async def token(request: Request) -> Response:
            self.log.requests.append(("POST", "auth/token"))
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, 400)
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
            expected = self.clients.get(client, "")
            if client not in self.clients or (expected is not None and not secrets.compare_digest(expected, secret)):
                return JSONResponse({"error": "invalid_client"}, 400)
            value = secrets.token_urlsafe(24)
            self.tokens = {t: e for t, e in self.tokens.items() if e > datetime.now(UTC)}
            self.tokens[value] = datetime.now(UTC) + timedelta(seconds=self.token_ttl_s)
            self.log.grants += 1
            return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": self.token_ttl_s})

        async def server(request: Request) -> Response:
            return JSONResponse({"tokenURL": f"{self.url}/auth/token"})

        def listing(items: list[Any], request: Request) -> Response:
            q = request.query_params
            program = q.get("programID")
            wanted = set(q.getlist("targets") or q.getlist("targetValues"))
            kind = q.get("targetType")
            out = []
            for item in items:
                if program and isinstance(item, dict) and item.get("programID") != program:
                    continue
                if wanted and isinstance(item, dict) and item.get("targets") and not _values(item, kind) & wanted:
                    continue
                out.append(item)
            skip, limit = int(q.get("skip", 0)), int(q.get("limit", 50))
            return JSONResponse(out[skip : skip + limit])

        async def programs(request: Request) -> Response:
            self.log.requests.append(("GET", "programs"))
            if not self._authorized(request):
                return problem(401, "Unauthorized")
            return listing(list(self.programs.values()), request)

        async def events(request: Request) -> Response:
            self.log.requests.append(("GET", "events"))
            if not self._authorized(request):
                return problem(401, "Unauthorized")
            return listing(list(self.events.values()), request)

        async def reports(request: Request) -> Response:
            self.log.requests.append((request.method, "reports"))
            if not self._authorized(request):
                return problem(401, "Unauthorized")
            if request.method == "GET":
                return JSONResponse(self.log.reports)
            body = await request.json()
            if not isinstance(body, dict) or not {"eventID", "clientName", "resources"} <= set(body):
                return problem(400, "report needs eventID, clientName and resources")
            body = {**body, "id": self._id("report"), "objectType": "REPORT"}
            self.log.reports.append(body)
            return JSONResponse(body, 201)

        async def subscriptions(request: Request) -> Response:
            self.log.requests.append(("POST", "subscriptions"))
            if not self._authorized(request):
                return problem(401, "Unauthorized")
            body = {**(await request.json()), "id": self._id("subscription"), "objectType": "SUBSCRIPTION"}
            self.log.subscriptions.append(body)
            return JSONResponse(body, 201)

        b = self.base
        routes = [
            Route(f"{b}/auth/token", token, methods=["POST"]),
            Route(f"{b}/programs", programs, methods=["GET"]),
            Route(f"{b}/events", events, methods=["GET"]),
            Route(f"{b}/reports", reports, methods=["GET", "POST"]),
            Route(f"{b}/subscriptions", subscriptions, methods=["POST"]),
        ]
        if self.version == "3.1.0":
            routes.append(Route(f"{b}/auth/server", server, methods=["GET"]))
        return Starlette(routes=routes)

    async def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(), name="sim-vtn3")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the OpenADR 3 VTN did not start (is the port in use?)")
            await asyncio.sleep(0.01)
        if self.port == 0:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
            self._server = self._task = None

    async def __aenter__(self) -> SimVtn3:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(port: int, version: str, ven: str, start: datetime, hours: float, limit_kw: float) -> None:
    """`evsite sim vtn --version 3.x`: one capacity limit for every VEN (client `ven`, any secret)."""
    async with SimVtn3(port=port, version=version, clients={ven: None}) as vtn:
        program = vtn.add_program("evsite-demo-gac")
        event_id = vtn.add_event(
            program, start=start, intervals=[(timedelta(hours=hours), {"IMPORT_CAPACITY_LIMIT": limit_kw})]
        )
        log.info("OpenADR %s VTN on %s: event %s (%g kW) at %s", version, vtn.url, event_id, limit_kw, start)
        await asyncio.Event().wait()
