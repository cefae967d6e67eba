"""A utility's VTN on loopback (openleadr `OpenADRServer`) that issues scripted events.

Any VEN may register; its venID is its ven_name, so scripts can address a VEN before it connects.
The VTN records what VENs answer (opt in/out) and the TELEMETRY_USAGE values they report, and asks
for reports every `report_s`. `evsite sim vtn` runs the demo script: a 2-hour SIMPLE level-2
curtailment at 14:00 local time (or `--in` seconds from now).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class VtnLog:
    registrations: list[str] = field(default_factory=list)
    opts: list[tuple[str, str, str]] = field(default_factory=list)  # (ven_id, event_id, opt)
    reports: list[tuple[datetime, float]] = field(default_factory=list)


class SimVtn:
    def __init__(self, port: int = 8080, host: str = "127.0.0.1", poll_s: float = 1.0, report_s: float = 1.0) -> None:
        self.host, self.port, self.report_s = host, port, report_s
        self.log = VtnLog()
        with warnings.catch_warnings():  # aiohttp's NotAppKeyWarning from inside openleadr
            warnings.simplefilter("ignore")
            from openleadr import OpenADRServer

            self.server = OpenADRServer(
                vtn_id="EVSITE-SIM-VTN", http_host=host, http_port=port, requested_poll_freq=timedelta(seconds=poll_s)
            )
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)
        # Record every oadrCreatedEvent (openleadr's per-event callback fires only for the first answer,
        # but a VEN may opt out later or answer a modification).
        service = self.server.services["event_service"]
        answered = service.handlers["oadrCreatedEvent"]

        async def created_event(payload: dict[str, Any]) -> Any:
            for response in payload.get("event_responses") or []:
                self.log.opts.append((payload["ven_id"], response["event_id"], response["opt_type"]))
            try:
                return await answered(payload)
            except TypeError:  # openleadr fails on answers to events it already retired; acknowledge them
                return "oadrResponse", {}

        service.handlers["oadrCreatedEvent"] = created_event
        self.running = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/OpenADR2/Simple/2.0b"

    async def _register(self, info: dict[str, Any]) -> tuple[str, str]:
        ven = str(info["ven_name"])
        self.log.registrations.append(ven)
        return ven, f"reg-{ven}"

    async def _register_report(
        self, ven_id: str, resource_id: str, measurement: str, unit: str, scale: str, min_sampling_interval: Any,
        max_sampling_interval: Any,
    ) -> tuple[Any, timedelta]:  # fmt: skip
        async def collect(data: list[tuple[datetime, float]]) -> None:
            self.log.reports.extend(data)

        return collect, timedelta(seconds=self.report_s)

    def _opt(self, ven_id: str, event_id: str, opt_type: str) -> None:
        """openleadr wants a callback per event; the answers are recorded in `created_event`."""

    def add_event(
        self,
        ven_id: str,
        *,
        signal_name: str = "SIMPLE",
        signal_type: str = "level",
        start: datetime,
        intervals: list[tuple[timedelta, float]],
        ramp_up: timedelta | None = None,
        recovery: timedelta | None = None,
        startafter: timedelta | None = None,
        test: bool = False,
    ) -> str:
        """Queue an event: consecutive intervals (duration, payload) from `start`."""
        items, cursor = [], start
        for duration, payload in intervals:
            items.append({"dtstart": cursor, "duration": duration, "signal_payload": payload})
            cursor += duration
        event_id: str = self.server.add_event(
            ven_id=ven_id, signal_name=signal_name, signal_type=signal_type, intervals=items, callback=self._opt
        )
        event = self._event(ven_id, event_id)
        period = event.active_period
        # openleadr's add_event drops these (openleadr-python #187); set them on the active period
        for key, value in (("ramp_up_period", ramp_up), ("recovery_period", recovery)):
            if value:
                period[key] = value
        if startafter:
            period["tolerance"] = {"startafter": startafter}
        event.event_descriptor.test_event = test
        return event_id

    def _event(self, ven_id: str, event_id: str) -> Any:
        return next(e for e in self.server.events[ven_id] if e.event_descriptor.event_id == event_id)

    def modify_event(
        self, ven_id: str, event_id: str, payload: float | None = None, end: datetime | None = None
    ) -> None:
        """Change the payload of every interval and/or the end; the VEN gets modificationNumber + 1."""
        event = self._event(ven_id, event_id)
        signal = event.event_signals[0]
        if payload is not None:
            for interval in signal.intervals:
                interval["signal_payload"] = payload
        if end is not None:
            last = signal.intervals[-1]
            last["duration"] = end - last["dtstart"]
            event.active_period["duration"] = end - event.active_period["dtstart"]
        event.event_descriptor.modification_number += 1
        self.server.events_updated[ven_id] = True

    def cancel_event(self, ven_id: str, event_id: str) -> None:
        self.server.cancel_event(ven_id, event_id)

    def demo_curtailment(self, ven_id: str, start: datetime, hours: float = 2.0, level: int = 2) -> str:
        """The demo's 'utility calls a 2-hour curtailment at 14:00' (SIMPLE level 2, 5 min ramp/recovery)."""
        return self.add_event(
            ven_id,
            start=start,
            intervals=[(timedelta(hours=hours), float(level))],
            ramp_up=timedelta(minutes=5),
            recovery=timedelta(minutes=5),
        )

    async def start(self) -> None:
        await self.server.run()
        self.running = True

    async def stop(self) -> None:
        if self.running:
            await self.server.stop()
            self.running = False

    async def __aenter__(self) -> SimVtn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def next_local(at: str, tz: str) -> datetime:
    """The next occurrence of HH:MM in time zone `tz`, as UTC."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    now = datetime.now(zone)
    hour, minute = (int(x) for x in at.split(":"))
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when <= now:
        when += timedelta(days=1)
    return when.astimezone(UTC)


async def serve(port: int, ven: str, start: datetime, hours: float, level: int) -> None:
    async with SimVtn(port=port) as vtn:
        event_id = vtn.demo_curtailment(ven, start, hours, level)
        log.info("VTN on %s: event %s for %s at %s", vtn.url, event_id, ven, start.isoformat())
        await asyncio.Event().wait()
