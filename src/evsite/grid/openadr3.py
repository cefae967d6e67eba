"""OpenADR 3 VEN (3.0.1 and 3.1.0) over REST/JSON: utility events → the same `dr_limit` signal as 2.0b.

Built on httpx + pydantic from the published OpenAPI description: the maintained client
(`openadr3-client`, ElaadNL) needs Python ≥ 3.12 and is synchronous, and evsite runs on 3.11 in asyncio.

- auth: OAuth2 client credentials; the token is renewed before it expires and once more on a 401.
  3.0.1 uses `<vtn>/auth/token`, 3.1.0 asks `/auth/server` for the token URL (or `token_url` in the site file).
- reading: every `poll_interval_s` the VEN lists programs and events (filtered by the site's targets on the VTN
  and again here). Polling is the only mode: a site behind NAT cannot take webhooks, and it keeps one code path.
  An event the VTN no longer lists is cancelled; an event that fails validation is logged with the reason and
  skipped (its last good version, if any, stays in force).
- payloads: IMPORT_CAPACITY_LIMIT → cap on the EV load = limit − the site's non-EV load (live if known, else the
  building loads' design peak); SIMPLE → the site's `simple_levels_pct`, as in 2.0b; EXPORT_CAPACITY_LIMIT,
  PRICE and GHG are kept and shown but never raise or lower the cap (charging only imports).
- VTN down: nothing changes locally. Each limit holds until its interval ends, then the site's own limits apply
  (every published signal carries `until`, so the load manager drops it on time even if this task dies).
- reports: during each active event, every `report_interval_s`, the EV load (DEMAND), the baseline (EV power when
  the event was first seen), the change against it (DELTA_USAGE, negative = reduction delivered) and the import
  capacity limit in force.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from evsite.grid.openadr import CapMapper, DrEvent, DrInterval, Policy, Ven
from evsite.runtime.events import EventBus
from evsite.site import topology
from evsite.site.model import DemandResponse, OpenAdr3, Site

log = logging.getLogger(__name__)

Version = Literal["3.0.1", "3.1.0"]
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_EVENTS = 500
MAX_INTERVALS = 1000
PAGE = 50
FOREVER = timedelta(days=3650)
"""An interval of duration PT0S lasts until the VTN changes it; held this long at most."""
LIMIT_TYPES = {"IMPORT_CAPACITY_LIMIT", "SIMPLE"}
KNOWN_TYPES = LIMIT_TYPES | {"EXPORT_CAPACITY_LIMIT", "PRICE", "GHG"}
KW_PER_UNIT = {"KW": 1.0, "W": 0.001}
_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


class VtnError(Exception):
    """The VTN could not be used for this request."""


class VtnUnavailable(VtnError):
    """No answer, a timeout or a 5xx: the VTN is down; keep what we have."""


class VtnRejected(VtnError):
    """The VTN refused the request (4xx other than an expired token)."""


class MalformedResponse(VtnError):
    """The answer was not what the OpenAPI description promises."""


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration as the spec's pattern allows; calendar years/months are refused (no fixed length)."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    sign, years, months, days, unit, hours, minutes, seconds = m.groups()
    if years or months:
        raise ValueError(f"calendar duration {text!r} has no fixed length")
    n = int(days or 0) * (7 if unit == "W" else 1)
    td = timedelta(days=n, hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))
    if sign:
        raise ValueError(f"negative duration {text!r}")
    return td


# ---------------------------------------------------------------- wire models (what we read, checked)

ObjectId = str


class _Wire(BaseModel):
    """VTNs may add fields (3.1 adds several); what we use is checked."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ValuesMap(_Wire):
    type: str = Field(min_length=1, max_length=128)
    values: list[Any] = Field(max_length=100)


class IntervalPeriod(_Wire):
    start: AwareDatetime
    duration: str = "PT0S"
    randomize_start: str | None = Field(default=None, alias="randomizeStart")

    @field_validator("duration", "randomize_start")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class WireInterval(_Wire):
    id: int
    interval_period: IntervalPeriod | None = Field(default=None, alias="intervalPeriod")
    payloads: list[ValuesMap] = Field(max_length=50)


class PayloadDescriptor(_Wire):
    payload_type: str = Field(alias="payloadType", min_length=1, max_length=128)
    units: str | None = None
    currency: str | None = None


class WireEvent(_Wire):
    id: ObjectId = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]*$")
    program_id: ObjectId = Field(alias="programID", min_length=1, max_length=128)
    event_name: str | None = Field(default=None, alias="eventName")
    priority: int | None = Field(default=None, ge=0)
    targets: list[ValuesMap | str] | None = None
    payload_descriptors: list[PayloadDescriptor] | None = Field(default=None, alias="payloadDescriptors")
    report_descriptors: list[dict[str, Any]] | None = Field(default=None, alias="reportDescriptors")
    interval_period: IntervalPeriod | None = Field(default=None, alias="intervalPeriod")
    intervals: list[WireInterval] = Field(max_length=MAX_INTERVALS)


class WireProgram(_Wire):
    id: ObjectId = Field(min_length=1, max_length=128)
    program_name: str = Field(alias="programName", min_length=1, max_length=128)
    targets: list[ValuesMap | str] | None = None
    payload_descriptors: list[dict[str, Any]] | None = Field(default=None, alias="payloadDescriptors")


def target_pairs(targets: list[ValuesMap | str] | None) -> set[tuple[str | None, str]]:
    """(type, value) pairs; 3.1.0 targets are bare strings (type None)."""
    out: set[tuple[str | None, str]] = set()
    for t in targets or []:
        if isinstance(t, str):
            out.add((None, t))
        else:
            out |= {(t.type, str(v)) for v in t.values}
    return out


def targets_match(ours: dict[str, list[str]], theirs: list[ValuesMap | str] | None) -> bool:
    """An object with no targets is for everyone; else one of its targets must be ours (type-blind for 3.1.0)."""
    pairs = target_pairs(theirs)
    if not pairs:
        return True
    mine = {(k, v) for k, vs in ours.items() for v in vs}
    values = {v for _, v in mine}
    return any((kind, v) in mine if kind is not None else v in values for kind, v in pairs)


# ---------------------------------------------------------------- events → DrEvents


@dataclass
class Oadr3Event:
    """One VTN event as understood here: one DrEvent per payload type we act on or show."""

    event_id: str
    program_id: str
    parts: dict[str, DrEvent] = field(default_factory=dict)


def _payload_value(ptype: str, vm: ValuesMap, units: str | None, kw_per_amp: float) -> float:
    """One payload → a number in our units (capacity in kW), or ValueError with the reason."""
    if len(vm.values) != 1:
        raise ValueError(f"{ptype} must carry exactly one value, got {len(vm.values)}")
    raw = vm.values[0]
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"{ptype} value {raw!r} is not a finite number")
    value = float(raw)
    if ptype == "SIMPLE":
        if value not in (0, 1, 2, 3):
            raise ValueError(f"SIMPLE level {raw!r} is not 0, 1, 2 or 3")
        return value
    if ptype in ("IMPORT_CAPACITY_LIMIT", "EXPORT_CAPACITY_LIMIT", "GHG") and value < 0:
        raise ValueError(f"{ptype} {raw!r} is negative")
    if ptype.endswith("CAPACITY_LIMIT"):
        unit = (units or "").upper()
        if unit == "AMPS":
            return value * kw_per_amp
        if unit in KW_PER_UNIT:
            return value * KW_PER_UNIT[unit]
        if unit:
            raise ValueError(f"{ptype} in {units!r}: only KW, W or AMPS")
        # No unit given: read it as the smaller one (W), never as headroom.
        log.warning("%s without units: read as W (the conservative reading)", ptype)
        return value * KW_PER_UNIT["W"]
    return value


def convert_event(
    ev: WireEvent, kw_per_amp: float, program_units: dict[str, str | None] | None = None
) -> dict[str, DrEvent]:
    """A checked wire event → one DrEvent per known payload type (ValueError with the reason if unusable)."""
    units = dict(program_units or {})
    units.update({d.payload_type: d.units for d in ev.payload_descriptors or []})
    series: dict[str, list[DrInterval]] = {}
    randomize = timedelta(0)
    cursor: datetime | None = None
    for interval in ev.intervals:  # in the order sent: an interval id is not a sequence number (spec)
        period = interval.interval_period or ev.interval_period
        if period is None:
            raise ValueError(f"interval {interval.id} has no intervalPeriod and the event gives none")
        # an interval without its own period follows the one before it
        start = period.start if interval.interval_period is not None or cursor is None else cursor
        length = parse_duration(period.duration)
        end = start + (length if length > timedelta(0) else FOREVER)
        if period.randomize_start:
            randomize = max(randomize, parse_duration(period.randomize_start))
        cursor = end
        for vm in interval.payloads:
            if vm.type not in KNOWN_TYPES:
                continue
            value = _payload_value(vm.type, vm, units.get(vm.type), kw_per_amp)
            series.setdefault(vm.type, []).append(DrInterval(start, end, value))
    parts: dict[str, DrEvent] = {}
    for ptype, intervals in series.items():
        parts[ptype] = DrEvent(
            event_id=f"{ev.id}:{ptype}",
            modification=0,
            signal_name=ptype,
            signal_type="level" if ptype == "SIMPLE" else "x-oadr3",
            intervals=intervals,
            start=min(i.start for i in intervals),
            end=max(i.end for i in intervals),
            startafter=randomize,
            market_context=ev.program_id,
        )
    return parts


@dataclass
class Oadr3Mapper(CapMapper):
    """2.0b's mapper plus IMPORT_CAPACITY_LIMIT, a cap on the whole site's import."""

    non_ev_kw: Callable[[], float] = lambda: 0.0

    def curtails(self, event: DrEvent) -> bool:
        return event.signal_name in LIMIT_TYPES

    def cap_kw(self, event: DrEvent, payload: float) -> float | None:
        if event.signal_name == "IMPORT_CAPACITY_LIMIT":
            return max(0.0, payload - max(0.0, self.non_ev_kw()))
        return super().cap_kw(event, payload)


# ---------------------------------------------------------------- HTTP


class TokenSource:
    """OAuth2 client credentials with expiry; renewed `margin` before it runs out."""

    def __init__(self, settings: OpenAdr3, token_url: str | None, secret: str) -> None:
        self.settings, self.token_url, self.secret = settings, token_url, secret
        self._token: str | None = None
        self._expires: datetime | None = None
        self.grants = 0

    def valid(self, now: datetime) -> bool:
        return self._token is not None and (self._expires is None or now < self._expires)

    def invalidate(self) -> None:
        self._token, self._expires = None, None

    async def get(self, http: httpx.AsyncClient) -> str:
        now = datetime.now(UTC)
        if self._token is not None and self.valid(now):
            return self._token
        if self.token_url is None:
            self.token_url = await self._discover(http)
        form = {"grant_type": "client_credentials", "client_id": self.settings.client_id, "client_secret": self.secret}
        try:
            resp = await http.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise VtnUnavailable(f"token endpoint: {exc!r}") from exc
        if resp.status_code >= 500:
            raise VtnUnavailable(f"token endpoint answered {resp.status_code}")
        if resp.status_code != 200:
            raise VtnRejected(f"token refused ({resp.status_code}): {resp.text[:200]}")
        body = _json(resp)
        token, ttl = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not 0 < len(token) <= 4096 or str(body.get("token_type")).lower() != "bearer":
            raise MalformedResponse("token answer without a bearer access_token")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
            raise MalformedResponse(f"token expires_in {ttl!r} is not a positive number")
        self._token, self.grants = token, self.grants + 1
        if ttl is None:
            self._expires = None  # keep it until the VTN says 401
        else:
            margin = min(30.0, 0.1 * float(ttl))
            self._expires = now + timedelta(seconds=float(ttl) - margin)
        return token

    async def _discover(self, http: httpx.AsyncClient) -> str:
        try:
            resp = await http.get("auth/server")
        except httpx.HTTPError as exc:
            raise VtnUnavailable(f"auth/server: {exc!r}") from exc
        if resp.status_code != 200:
            raise VtnUnavailable(f"auth/server answered {resp.status_code}")
        url = _json(resp).get("tokenURL")
        if not isinstance(url, str) or not url:
            raise MalformedResponse("auth/server without tokenURL")
        return url


def _json(resp: httpx.Response) -> Any:
    if len(resp.content) > MAX_BODY_BYTES:
        raise MalformedResponse(f"answer of {len(resp.content)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        return resp.json()
    except ValueError as exc:
        raise MalformedResponse(f"answer is not JSON: {exc}") from exc


class Oadr3Client:
    """The few VTN operations a VEN needs, with the bearer token handled."""

    def __init__(self, vtn_url: str, version: Version, settings: OpenAdr3, secret: str) -> None:
        base = vtn_url.rstrip("/") + "/"
        self.version, self.settings = version, settings
        self.http = httpx.AsyncClient(base_url=base, timeout=settings.timeout_s, follow_redirects=False)
        default = None if version == "3.1.0" else base + "auth/token"
        self.tokens = TokenSource(settings, settings.token_url or default, secret)

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in (0, 1):
            token = await self.tokens.get(self.http)
            try:
                async with self.http.stream(
                    method, path, headers={"Authorization": f"Bearer {token}"}, **kw
                ) as resp:  # fmt: skip
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY_BYTES:
                            raise MalformedResponse(f"{path}: answer exceeds {MAX_BODY_BYTES} bytes")
            except httpx.HTTPError as exc:
                raise VtnUnavailable(f"{method} {path}: {exc!r}") from exc
            if resp.status_code == 401 and attempt == 0:
                self.tokens.invalidate()
                continue
            if resp.status_code >= 500:
                raise VtnUnavailable(f"{method} {path}: {resp.status_code}")
            if resp.status_code >= 400:
                raise VtnRejected(f"{method} {path}: {resp.status_code} {bytes(body[:200])!r}")
            if not body:
                return None
            try:
                return json.loads(body)
            except ValueError as exc:
                raise MalformedResponse(f"{method} {path}: not JSON ({exc})") from exc
        raise VtnRejected(f"{method} {path}: 401 with a fresh token")

    def _target_params(self) -> list[tuple[str, str]]:
        targets = self.settings.targets
        if self.version == "3.1.0":
            return [("targets", v) for vs in targets.values() for v in vs]
        if len(targets) == 1:  # 3.0.1 filters one target type per query
            (kind, values), = targets.items()  # fmt: skip
            return [("targetType", kind)] + [("targetValues", v) for v in values]
        return []

    async def list(self, path: str, cap: int = MAX_EVENTS) -> list[Any]:
        """Every object of a collection (pages of PAGE), at most `cap`."""
        out: list[Any] = []
        while True:
            params = [*self._target_params(), ("skip", str(len(out))), ("limit", str(PAGE))]
            page = await self.request("GET", path, params=params)
            if not isinstance(page, list):
                raise MalformedResponse(f"GET {path}: expected a list, got {type(page).__name__}")
            out += page
            if len(page) < PAGE:
                return out
            if len(out) >= cap:
                log.warning("VTN lists more than %d %s; reading the first %d", cap, path, cap)
                return out[:cap]


# ---------------------------------------------------------------- the VEN


class Ven3(Ven):
    """The site's OpenADR 3 VEN. `run()` polls, reports and keeps the `dr_limit` signal current until cancelled."""

    def __init__(
        self,
        site: Site,
        bus: EventBus,
        *,
        settings: DemandResponse | None = None,
        ev_power_w: Callable[[], float | None] = lambda: None,
        non_ev_kw: Callable[[], float | None] = lambda: None,
        policy: Policy | None = None,
        rng: random.Random | None = None,
        tick_s: float = 1.0,
        align: bool = True,
    ) -> None:
        super().__init__(
            site, bus, settings=settings, ev_power_w=ev_power_w, policy=policy, rng=rng, tick_s=tick_s, align=align
        )
        if self.settings.openadr3 is None or self.settings.version == "2.0b":
            raise ValueError("Ven3 needs demand_response.version 3.0.1 or 3.1.0 and an openadr3 section")
        self.oadr3: OpenAdr3 = self.settings.openadr3
        self.version: Version = self.settings.version
        self._non_ev = non_ev_kw
        design_peak = sum(b.peak_kw for b in site.building_loads)
        base = CapMapper.for_site(site)
        self.mapper = Oadr3Mapper(
            base.normal_kw, base.minimum_kw, base.levels_pct, non_ev_kw=lambda: self._non_ev_now(design_peak)
        )
        self.kw_per_amp = topology.power_kw(site.service.system, 1.0)  # the one kW ↔ A definition
        self.vtn_events: dict[str, Oadr3Event] = {}
        self.programs: dict[str, WireProgram] = {}
        self.ghg: list[DrInterval] = []
        self.rejected: dict[str, str] = {}  # event id → why it was refused (last poll)
        self.vtn_up: bool | None = None
        self._cancelled_at: dict[str, datetime] = {}
        self.client3: Oadr3Client | None = None

    def _non_ev_now(self, design_peak: float) -> float:
        live = self._non_ev()
        return design_peak if live is None or not math.isfinite(live) else live

    # ---------------------------------------------------------------- reading

    def _followed(self, program_id: str) -> bool:
        program = self.programs.get(program_id)
        if program is None:  # not listed to us with our targets: another site's program
            return False
        return not self.oadr3.programs or program.program_name in self.oadr3.programs

    def apply_programs(self, raw: list[Any]) -> None:
        programs: dict[str, WireProgram] = {}
        for item in raw:
            try:
                program = WireProgram.model_validate(item)
            except ValidationError as exc:
                old = self.programs.get(str(item.get("id"))) if isinstance(item, dict) else None
                log.warning("OpenADR 3: program refused: %s%s", _reason(exc), " (kept as it was)" if old else "")
                if old is not None:  # a broken update must not drop the program's events (their limits)
                    programs[old.id] = old
                continue
            if targets_match(self.oadr3.targets, program.targets):
                programs[program.id] = program
        self.programs = programs

    def apply_events(self, raw: list[Any], now: datetime | None = None, *, complete: bool = True) -> None:
        """A listing of the VTN's events → our events (new, changed; gone only if the listing is complete)."""
        now = now or datetime.now(UTC)
        listed: set[str] = set()
        rejected: dict[str, str] = {}
        for item in raw:
            event_id = str(item.get("id")) if isinstance(item, dict) else "?"
            listed.add(event_id)
            try:
                ev = WireEvent.model_validate(item)
                if not targets_match(self.oadr3.targets, ev.targets) or not self._followed(ev.program_id):
                    listed.discard(event_id)
                    continue
                parts = convert_event(ev, self.kw_per_amp, self._program_units(ev.program_id))
            except (ValidationError, ValueError) as exc:
                reason = _reason(exc) if isinstance(exc, ValidationError) else str(exc)
                rejected[event_id] = reason
                if self.rejected.get(event_id) != reason:
                    kept = " (its last good version stays)" if event_id in self.vtn_events else ""
                    log.warning("OpenADR 3: event %s refused: %s%s", event_id, reason, kept)
                continue
            self._take(ev, parts)
        self.rejected = rejected
        for event_id in list(self.vtn_events):
            if complete and event_id not in listed:
                self._cancel(event_id, now)
        self.tick(now)

    def _program_units(self, program_id: str) -> dict[str, str | None]:
        program = self.programs.get(program_id)
        out: dict[str, str | None] = {}
        for d in (program.payload_descriptors if program else None) or []:
            if isinstance(d, dict) and isinstance(d.get("payloadType"), str):
                units = d.get("units")
                out[d["payloadType"]] = units if isinstance(units, str) else None
        return out

    def _take(self, ev: WireEvent, parts: dict[str, DrEvent]) -> None:
        known = self.vtn_events.get(ev.id)
        offset: timedelta | None = None
        baseline: float | None = None
        if known is not None and known.parts:
            first = next(iter(known.parts.values()))
            offset, baseline = first.offset, first.baseline_kw
        if offset is None:
            span = max((p.startafter for p in parts.values()), default=timedelta(0))
            offset = timedelta(seconds=self.rng.uniform(0, span.total_seconds())) if span else timedelta(0)
        if baseline is None:
            power = self.ev_power_w()
            baseline = None if power is None else power / 1000.0
        changed = known is None or _signature(known.parts) != _signature(parts)
        for key, part in parts.items():
            part.offset, part.baseline_kw = offset, baseline
            old = known.parts.get(key) if known else None
            part.modification = (old.modification + (1 if changed else 0)) if old else 0
            part.opt = self.decide(part)
        if known is not None:
            for key in set(known.parts) - set(parts):
                self.events.pop(known.parts[key].event_id, None)
        self.vtn_events[ev.id] = Oadr3Event(ev.id, ev.program_id, parts)
        for part in parts.values():
            self.events[part.event_id] = part
        self.prices = [i for p in self.events.values() if p.signal_name == "PRICE" for i in p.intervals]
        self.ghg = [i for p in self.events.values() if p.signal_name == "GHG" for i in p.intervals]
        if changed:
            log.info("OpenADR 3 event %s (%s): %s", ev.id, ", ".join(sorted(parts)) or "nothing we act on",
                     "new" if known is None else "changed")  # fmt: skip

    def _cancel(self, event_id: str, now: datetime) -> None:
        known = self.vtn_events.pop(event_id)
        for part in known.parts.values():
            part.cancelled = True
        self._cancelled_at[event_id] = now
        log.info("OpenADR 3 event %s: gone from the VTN, cancelled", event_id)

    def forget_past(self, now: datetime) -> None:
        super().forget_past(now)
        for event_id, at in list(self._cancelled_at.items()):
            if now - at >= timedelta(minutes=5):
                del self._cancelled_at[event_id]
                for key in [k for k in self.events if k.startswith(f"{event_id}:")]:
                    if self.events[key].cancelled:
                        del self.events[key]
        for known in self.vtn_events.values():
            known.parts = {k: p for k, p in known.parts.items() if p.event_id in self.events}

    async def opt_out(self, event_id: str) -> None:
        """Opt out locally (OpenADR 3 has no opt message; the reports show what the site did)."""
        vtn_id = event_id.split(":", 1)[0]
        known = self.vtn_events.get(vtn_id)
        keys = [p.event_id for p in known.parts.values()] if known else [event_id]
        for key in keys:
            self.overrides[key] = "optOut"
            if key in self.events:
                self.events[key].opt = "optOut"
        self.tick()

    async def poll(self) -> bool:
        """One round: programs, then events. Raises VtnError; our state is untouched then."""
        assert self.client3 is not None
        programs = await self.client3.list("programs")
        self.apply_programs(programs)
        events = await self.client3.list("events")
        self.apply_events(events, complete=len(events) < MAX_EVENTS)
        return True

    # ---------------------------------------------------------------- reports

    def report_body(self, known: Oadr3Event, now: datetime, interval_s: float) -> dict[str, Any] | None:
        """A report for one active event, or None when there is nothing to say."""
        power = self.ev_power_w()
        if power is not None:
            self._last_power_w = power
        load_kw = power / 1000.0 if power is not None else None
        parts = list(known.parts.values())
        if not parts or load_kw is None:
            return None
        payloads: list[tuple[str, str, float]] = [("DEMAND", "DIRECT_READ", load_kw)]
        baseline = parts[0].baseline_kw
        if baseline is not None:
            payloads += [("BASELINE", "ESTIMATED", baseline), ("DELTA_USAGE", "ESTIMATED", load_kw - baseline)]
        limit = known.parts.get("IMPORT_CAPACITY_LIMIT")
        if limit is not None and (value := limit.payload_at(now)) is not None:
            payloads.append(("IMPORT_CAPACITY_LIMIT", "DIRECT_READ", value))
        start = now - timedelta(seconds=interval_s)
        body: dict[str, Any] = {
            "eventID": known.event_id,
            "clientName": self.settings.ven_name,
            "reportName": f"evsite {self.site.name}",
            "payloadDescriptors": [
                {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": t, "readingType": r, "units": "KW"}
                for t, r, _ in payloads
            ],
            "resources": [
                {
                    "resourceName": self.site.name[:128] or "evsite",
                    "intervalPeriod": {"start": start.isoformat(), "duration": f"PT{interval_s:g}S"},
                    "intervals": [
                        {"id": 0, "payloads": [{"type": t, "values": [round(v, 3)]} for t, _, v in payloads]}
                    ],
                }
            ],
        }
        if self.version == "3.0.1":
            body["programID"] = known.program_id
        return body

    def active(self, known: Oadr3Event, now: datetime) -> bool:
        return any(
            p.opt == "optIn" and not p.cancelled and p.effective_start <= now < p.effective_end
            for p in known.parts.values()
        )

    async def send_reports(self, now: datetime) -> int:
        assert self.client3 is not None
        sent = 0
        for known in list(self.vtn_events.values()):
            if not self.active(known, now) or not any(p.signal_name in LIMIT_TYPES for p in known.parts.values()):
                continue
            body = self.report_body(known, now, self.oadr3.report_interval_s)
            if body is not None:
                await self.client3.request("POST", "reports", json=body)
                sent += 1
        return sent

    # ---------------------------------------------------------------- run

    def _secret(self) -> str:
        name = self.oadr3.client_secret_env
        if name is None:
            return ""
        secret = os.environ.get(name)
        if secret is None:
            raise ValueError(f"OpenADR 3: environment variable {name} (client secret) is not set")
        return secret

    async def run(self) -> None:
        self.client3 = Oadr3Client(self.settings.vtn_url, self.version, self.oadr3, self._secret())
        loop = asyncio.get_running_loop()
        next_poll = next_report = loop.time()
        try:
            while True:
                now = datetime.now(UTC)
                if loop.time() >= next_poll:
                    next_poll = loop.time() + self.settings.poll_interval_s
                    await self._guarded(self.poll(), "poll")
                if loop.time() >= next_report:
                    next_report = loop.time() + self.oadr3.report_interval_s
                    await self._guarded(self.send_reports(now), "report")
                now = datetime.now(UTC)
                self.tick(now)
                self.forget_past(now)
                delay = min(self.tick_s, max(0.0, next_poll - loop.time()))
                if self.align and (step := self.next_change(now)) is not None:
                    delay = min(delay, (step - now).total_seconds())
                await asyncio.sleep(max(0.001, delay))
        finally:
            await self.client3.close()

    async def _guarded(self, job: Any, what: str) -> None:
        """A VTN error is logged once per outage; local limits carry on from what we have."""
        try:
            talked = await job
        except VtnUnavailable as exc:
            if self.vtn_up is not False:
                log.warning("OpenADR 3 VTN unavailable (%s): %s; holding the limits we have", what, exc)
            self.vtn_up = False
            return
        except VtnError as exc:
            log.warning("OpenADR 3 %s failed: %s", what, exc)
            return
        if not talked:
            return
        if self.vtn_up is False:
            log.info("OpenADR 3 VTN reachable again")
        self.vtn_up = True


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first.get('msg')}{more}"


def _signature(parts: dict[str, DrEvent]) -> list[tuple[str, list[DrInterval]]]:
    return sorted((k, p.intervals) for k, p in parts.items())
