"""OpenADR 2.0b VEN: utility events → `dr_limit` signals for the site's EV load.

openleadr's `OpenADRClient` does the protocol (registration, pull polling at the VTN's requested
rate, oadrCreatedEvent, TELEMETRY_USAGE reports). This module decides and schedules:

- opt: per-event override (`Ven.opt_out`) > caller policy > site policy (`max_event_hours`) >
  `DemandResponse.default_opt` (optIn). Test events are answered but never curtail.
- timing: the start is delayed by a random draw from [0, startafter] (tolerance; openleadr does not
  apply it), once per event; the whole event shifts with it. During x-eiRampUp the cap falls
  linearly from the normal EV capacity to the event's value; during x-eiRecovery it rises back.
- signals → cap on the EV load (kW, then amperes per line on node `service`):
  SIMPLE level → `simple_levels_pct` of the normal EV capacity (0 % → 6 A per port);
  LOAD_DISPATCH setpoint → kW; delta → baseline (EV power when first seen) + delta;
  LOAD_CONTROL x-loadControlCapacity → fraction of normal; x-loadControlSetpoint → kW;
  x-loadControlPercentOffset → normal × (1 + offset/100); ELECTRICITY_PRICE → `Ven.prices`.
- the cap is evaluated locally every second, so a VTN that goes away mid-event changes nothing: the
  event's limit holds until its end (+ recovery), then the site returns to normal. Each published
  `SiteSignal` also carries `until`, so the load manager drops the cap on time even if this task dies.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from evsite.bms.state import SITE_NODE, line_amps
from evsite.runtime.events import EventBus, SiteSignal
from evsite.site.model import DemandResponse, Site

log = logging.getLogger(__name__)

Opt = Literal["optIn", "optOut"]
J1772_MIN_A = 6.0
CURTAILING = {"SIMPLE", "simple", "LOAD_DISPATCH", "LOAD_CONTROL"}


@dataclass(frozen=True)
class DrInterval:
    start: datetime
    end: datetime
    payload: float


@dataclass
class DrEvent:
    """One OpenADR event as the VEN understood it (times as the VTN sent them, plus our offset)."""

    event_id: str
    modification: int
    signal_name: str
    signal_type: str
    intervals: list[DrInterval]
    start: datetime
    end: datetime
    ramp_up: timedelta = timedelta(0)
    recovery: timedelta = timedelta(0)
    startafter: timedelta = timedelta(0)
    offset: timedelta = timedelta(0)
    test: bool = False
    cancelled: bool = False
    opt: Opt = "optIn"
    market_context: str = ""
    baseline_kw: float | None = None

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def effective_start(self) -> datetime:
        return self.start + self.offset

    @property
    def effective_end(self) -> datetime:
        return self.end + self.offset

    def payload_at(self, when: datetime) -> float | None:
        for interval in self.intervals:
            if interval.start + self.offset <= when < interval.end + self.offset:
                return interval.payload
        return None


def _td(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, dict):  # {"duration": td} or {"tolerate": {"startafter": td}}
        for key in ("duration", "startafter", "tolerate"):
            if key in value:
                return _td(value[key])
    return timedelta(0)


def parse_event(raw: dict[str, Any]) -> DrEvent:
    """openleadr's event dict → DrEvent (first signal; intervals without dtstart follow each other)."""
    descriptor, period = raw["event_descriptor"], raw["active_period"]
    signals = raw["event_signals"]
    signal = signals[0] if isinstance(signals, list) else signals["event_signals"][0]
    start: datetime = period["dtstart"]
    end = start + period["duration"]
    intervals: list[DrInterval] = []
    cursor = start
    for item in signal.get("intervals") or []:
        begin = item.get("dtstart") or cursor
        stop = begin + item["duration"]
        intervals.append(DrInterval(begin, stop, float(item["signal_payload"])))
        cursor = stop
    return DrEvent(
        event_id=descriptor["event_id"],
        modification=int(descriptor.get("modification_number") or 0),
        signal_name=signal["signal_name"],
        signal_type=signal["signal_type"],
        intervals=intervals,
        start=start,
        end=end,
        ramp_up=_td(period.get("ramp_up_period")),
        recovery=_td(period.get("recovery_period")),
        startafter=_td(period.get("tolerance")),
        test=bool(descriptor.get("test_event")),
        cancelled=descriptor.get("event_status") == "cancelled",
        market_context=str(descriptor.get("market_context") or ""),
    )


@dataclass
class CapMapper:
    """Signal payloads → a cap on the EV load in kW."""

    normal_kw: float
    minimum_kw: float
    levels_pct: dict[int, float] = field(default_factory=lambda: {0: 100.0, 1: 75.0, 2: 50.0, 3: 0.0})

    @classmethod
    def for_site(cls, site: Site) -> CapMapper:
        """Normal = the EV capacity (service or allocation, EMS setpoints, EVSE nameplates, all per line);
        minimum = 6 A on every port (level 3 / 0 % keeps sessions alive at the J1772 minimum)."""
        system = site.service.system
        ev_amps = min(site.service.limit_a, sum(e.max_current_a for e in site.evse) or math.inf)
        if site.ems:
            ev_amps = min(ev_amps, sum(e.setpoint_a for e in site.ems))
        kw_per_amp = system.line_to_line_v * (math.sqrt(3) if system.is_three_phase else 1.0) / 1000.0
        minimum = sum(
            len(e.connectors) * J1772_MIN_A * system.line_to_line_v * (math.sqrt(3) if e.phases == 3 else 1.0) / 1000
            for e in site.evse
        )
        normal = ev_amps * kw_per_amp
        mapper = cls(normal, min(normal, minimum))
        if site.demand_response:
            mapper.levels_pct = dict(site.demand_response.simple_levels_pct)
        return mapper

    def cap_kw(self, event: DrEvent, payload: float) -> float | None:
        """The EV cap for one payload; None when the signal does not limit power."""
        name, kind = event.signal_name.upper(), event.signal_type
        if name == "SIMPLE":
            level = max(0, min(3, round(payload)))
            pct = self.levels_pct.get(level, 100.0)
            return None if pct >= 100.0 else max(self.minimum_kw, self.normal_kw * pct / 100.0)
        if name == "LOAD_DISPATCH":
            if kind == "setpoint":
                return max(0.0, payload)
            if kind == "delta":
                base = event.baseline_kw if event.baseline_kw is not None else self.normal_kw
                return max(0.0, base + payload)
            if kind == "multiplier":
                return max(0.0, self.normal_kw * payload)
        if name == "LOAD_CONTROL":
            if kind == "x-loadControlCapacity":
                return self.normal_kw * max(0.0, min(1.0, payload))
            if kind == "x-loadControlSetpoint":
                return max(0.0, payload)
            if kind == "x-loadControlPercentOffset":
                return max(0.0, self.normal_kw * (1 + payload / 100.0))
        return None

    def curtails(self, event: DrEvent) -> bool:
        """Whether this kind of signal limits the EV load at all (prices only inform)."""
        return event.signal_name.upper() in CURTAILING

    def cap_at(self, event: DrEvent, now: datetime) -> float | None:
        """The cap this event asks for at `now`, with ramp-up and recovery; None outside it."""
        if event.cancelled or event.opt == "optOut" or event.test or not self.curtails(event):
            return None
        start, end = event.effective_start, event.effective_end
        if now < start - event.ramp_up or now >= end + event.recovery:
            return None
        if now < start:  # ramp-up: step down gradually to the first interval's value
            target = self.cap_kw(event, event.intervals[0].payload) if event.intervals else None
            if target is None:
                return None
            done = 1 - (start - now) / event.ramp_up
            return self.normal_kw - (self.normal_kw - target) * done
        if now < end:
            payload = event.payload_at(now)
            return None if payload is None else self.cap_kw(event, payload)
        last = self.cap_kw(event, event.intervals[-1].payload) if event.intervals else None
        if last is None:
            return None
        done = (now - end) / event.recovery
        return last + (self.normal_kw - last) * done


Policy = Callable[[DrEvent], Opt | None]


class Ven:
    """The site's VEN. `run()` registers, polls and keeps the `dr_limit` signal current until cancelled."""

    def __init__(
        self,
        site: Site,
        bus: EventBus,
        *,
        settings: DemandResponse | None = None,
        ev_power_w: Callable[[], float | None] = lambda: None,
        policy: Policy | None = None,
        rng: random.Random | None = None,
        tick_s: float = 1.0,
        align: bool = True,
    ) -> None:
        if settings is None:
            if site.demand_response is None:
                raise ValueError("the site has no demand_response section")
            settings = site.demand_response
        self.site, self.bus, self.settings = site, bus, settings
        self.mapper = CapMapper.for_site(site)
        self.ev_power_w, self.policy = ev_power_w, policy
        self.rng = rng or random.SystemRandom()
        self.tick_s = tick_s
        self.align = align  # wake exactly at event boundaries, not only every tick_s
        self.events: dict[str, DrEvent] = {}
        self.prices: list[DrInterval] = []
        self.overrides: dict[str, Opt] = {}
        self.published: tuple[float, ...] | None = None
        self.client: Any = None
        self._last_power_w = 0.0

    # ---------------------------------------------------------------- decisions

    def decide(self, event: DrEvent) -> Opt:
        if event.event_id in self.overrides:
            return self.overrides[event.event_id]
        if self.policy is not None and (choice := self.policy(event)) is not None:
            return choice
        limit = self.settings.max_event_hours
        if limit is not None and event.duration > timedelta(hours=limit):
            return "optOut"
        return self.settings.default_opt

    def accept(self, raw: dict[str, Any]) -> Opt:
        """Take a new or modified event from the VTN and answer it."""
        event = parse_event(raw)
        previous = self.events.get(event.event_id)
        if previous is not None:
            event.offset = previous.offset  # one draw per event, kept across modifications
            event.baseline_kw = previous.baseline_kw
        elif event.startafter > timedelta(0):
            event.offset = timedelta(seconds=self.rng.uniform(0, event.startafter.total_seconds()))
        if event.baseline_kw is None:
            power = self.ev_power_w()
            event.baseline_kw = None if power is None else power / 1000.0
        event.opt = self.decide(event)
        self.events[event.event_id] = event
        if event.signal_name.upper() == "ELECTRICITY_PRICE" and not event.cancelled:
            self.prices = [p for p in self.prices if p not in event.intervals] + list(event.intervals)
        log.info(
            "DR event %s (mod %d) %s %s: %s",
            event.event_id, event.modification, event.signal_name, "cancelled" if event.cancelled else "", event.opt,
        )  # fmt: skip
        self.tick()
        return event.opt

    async def on_event(self, raw: dict[str, Any]) -> Opt:
        return self.accept(raw)

    async def on_update_event(self, raw: dict[str, Any]) -> Opt:
        return self.accept(raw)

    async def opt_out(self, event_id: str) -> None:
        """Opt out of one event now (operator action); the VTN is told on the spot."""
        self.overrides[event_id] = "optOut"
        event = self.events.get(event_id)
        if event is not None:
            event.opt = "optOut"
            self.tick()
        if self.client is not None and event is not None:
            self.client.responded_events[event_id] = "optOut"
            await self.client.created_event(f"evsite-{event_id}", event_id, "optOut", event.modification)

    # ---------------------------------------------------------------- the limit

    def cap_kw(self, now: datetime) -> tuple[float | None, datetime | None]:
        """The lowest cap of all events at `now` and when it ends."""
        caps: list[tuple[float, datetime]] = []
        for event in self.events.values():
            cap = self.mapper.cap_at(event, now)
            if cap is not None:
                caps.append((cap, event.effective_end + event.recovery))
        if not caps:
            return None, None
        cap, until = min(caps, key=lambda x: x[0])
        return cap, until

    def tick(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        cap, until = self.cap_kw(now)
        lines = self.site.service.system.lines
        if cap is None:
            amps: tuple[float, ...] = ()
        else:
            per_line = math.floor(line_amps(self.site, cap) * 10) / 10  # round down to 0.1 A: never above
            amps = tuple(per_line for _ in lines)
        if amps == self.published:
            return
        self.published = amps
        self.bus.publish(
            SiteSignal("dr_limit", SITE_NODE, dict(zip(lines, amps, strict=False)), "openadr", at=now, until=until)
        )

    def next_change(self, now: datetime) -> datetime | None:
        """The next instant any event's cap steps (start/end of ramp, event or interval)."""
        times: list[datetime] = []
        for e in self.events.values():
            start, end = e.effective_start, e.effective_end
            times += [start - e.ramp_up, start, end, end + e.recovery]
            times += [i.start + e.offset for i in e.intervals]
        later = [t for t in times if t > now]
        return min(later) if later else None

    def forget_past(self, now: datetime) -> None:
        """Drop events that ended (with recovery) more than five minutes ago."""
        for event in list(self.events.values()):
            if now >= event.effective_end + event.recovery + timedelta(minutes=5):
                del self.events[event.event_id]

    def _telemetry(self) -> float:
        power = self.ev_power_w()
        if power is not None:
            self._last_power_w = power
        return self._last_power_w

    # ---------------------------------------------------------------- run

    def make_client(self) -> Any:
        from openleadr import OpenADRClient
        from openleadr.objects import SamplingRate

        client = OpenADRClient(
            ven_name=self.settings.ven_name,
            vtn_url=self.settings.vtn_url,
            ven_id=self.settings.ven_id,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.on_event)
        client.add_handler("on_update_event", self.on_update_event)
        client.add_report(
            callback=self._telemetry,
            resource_id="ev-load",
            measurement="real_power",
            unit="W",
            # we can sample every 1 s … 1 h; the VTN picks the interval it wants within that
            sampling_rate=SamplingRate(min_period=timedelta(seconds=1), max_period=timedelta(hours=1)),
            report_duration=timedelta(hours=1),
        )
        return client

    async def run(self) -> None:
        self.client = self.make_client()
        try:
            await self.client.run()
            while True:
                now = datetime.now(UTC)
                self.tick(now)
                self.forget_past(now)
                delay = self.tick_s
                if self.align and (step := self.next_change(now)) is not None:
                    delay = min(delay, max(0.001, (step - now).total_seconds()))
                await asyncio.sleep(delay)
        finally:
            with_session = getattr(self.client, "client_session", None) is not None
            if with_session:
                await self.client.stop()
