"""Billing one period: sessions → per-unit statements and a site summary (pure, deterministic).

How a session is billed (docs/metering-billing.md has the user-facing version):
- Energy is split over constant-rate TOU spans *and* local month boundaries in proportion to time within
  each register interval, then apportioned to whole Wh (largest remainder) over the whole session, so the
  pieces always add up to the session's register delta whichever period bills them: a session across a
  month boundary is billed once, partly in each month.
- The session fee and the idle fee (time plugged in after the last energy, beyond the grace period, per
  whole minute) are billed in the period in which the session stops.
- The demand charge is the site's coincident peak: the demand interval of the period with the highest
  total EV demand (all chargers, billable or not); each unit pays the tariff's $/kW on its own demand in
  that interval. The part drawn by non-billable sessions stays with the site (shown as unallocated).
- Tax applies to the taxable subtotal. Money is rounded per line item or only on the statement total, as
  the tariff states; quantities are shown in the precision the amount was computed from.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from evsite.errors import InputError
from evsite.metering.integrity import Reconciliation, Severity, reconcile
from evsite.metering.registry import MeterRegistry
from evsite.metering.sessions import Session
from evsite.metering.tariffs import WH_PER_KWH, RateSchedule, allocate, apportion_wh, round_money, shown_amounts
from evsite.metering.tenants import SharedTag, TenantDirectory, UnknownTag
from evsite.site import topology
from evsite.site.model import MeterRole, Site, Tariff

KWH_Q = Decimal("0.001")


class BillingError(InputError):
    """The site or the request cannot be billed (no tariff, bad period)."""


@dataclass(frozen=True)
class BillingPeriod:
    """A calendar month in the site's local time, as [start, end) in UTC."""

    month: str  # "2026-10"
    start: datetime
    end: datetime

    @classmethod
    def of(cls, month: str, timezone: str) -> BillingPeriod:
        try:
            year, mon = (int(x) for x in month.split("-"))
            first = date(year, mon, 1)
        except ValueError:
            raise BillingError(f"billing month must look like 2026-10, got {month!r}") from None
        nxt = date(year + (mon == 12), mon % 12 + 1, 1)
        tz = ZoneInfo(timezone)
        return cls(month, _local_midnight(first, tz), _local_midnight(nxt, tz))

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def month_edges(start: datetime, end: datetime, timezone: str) -> list[datetime]:
    """Local month boundaries strictly inside (start, end)."""
    tz = ZoneInfo(timezone)
    local = start.astimezone(tz)
    year, mon = local.year, local.month
    edges: list[datetime] = []
    while True:
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
        edge = _local_midnight(date(year, mon, 1), tz)
        if edge >= end:
            return edges
        edges.append(edge)


@dataclass(frozen=True)
class Adjustment:
    """A correction posted as a new line on a later statement; the closed statement is never edited."""

    id: str
    unit_id: str
    posted_month: str
    description: str
    amount: Decimal
    taxable: bool = True
    refers_to: str | None = None  # the session key or month it corrects


@dataclass(frozen=True)
class Line:
    """One charge as printed: quantity × rate = amount (cents); `detail` explains a line that needs it."""

    kind: str  # energy, session_fee, idle_fee, demand, adjustment, tax
    description: str
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal
    session: str | None = None
    rate_unit: str = ""  # "USD/kWh", "USD/h", "%", …
    taxable: bool = True
    detail: str = ""


@dataclass
class SessionEntry:
    """A session as a statement or the site summary lists it."""

    key: str
    charger_id: str
    connector_id: int | None
    id_tag: str | None
    unit_id: str | None
    meter_id: str
    started_at: datetime
    stopped_at: datetime | None
    start_wh: Decimal
    end_wh: Decimal
    energy_wh: int  # whole session, register delta
    period_energy_wh: int  # the part billed in this period
    energy_by_rate: dict[str, int]  # TOU period name → Wh in this period
    billable: bool
    reason: str | None
    flags: list[dict[str, str | None]]
    idle_minutes: int = 0
    fees_in_period: bool = False
    signed: str = ""  # OCMF signed meter values: "", "verified", "unverified" (no key), "failed"
    note: str = ""  # a session billed over two statements says so


@dataclass
class Statement:
    unit_id: str
    unit_name: str
    month: str
    currency: str
    sessions: list[SessionEntry]
    lines: list[Line]
    energy_wh: int
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    notes: list[str] = field(default_factory=list)
    period_first: date | None = None  # local calendar days covered
    period_last: date | None = None
    issued: date | None = None
    due: date | None = None
    payee: str = ""
    payee_address: str = ""
    timezone: str = "UTC"


@dataclass
class SiteSummary:
    site: str
    month: str
    currency: str
    timezone: str
    period_start: datetime
    period_end: datetime
    units_billed: int
    sessions: int
    energy_billed_wh: int
    energy_not_billable_wh: dict[str, int]
    total_billed: Decimal
    tax_billed: Decimal
    demand_peak_kw: Decimal
    demand_peak_at: datetime | None
    demand_allocated_kw: Decimal
    demand_unallocated_kw: Decimal
    reconciliations: list[Reconciliation]
    flags: dict[str, int]
    compliance_notes: list[str] = field(default_factory=list)  # for the operator, not the tenant's bill


@dataclass
class BillingRun:
    summary: SiteSummary
    statements: list[Statement]
    not_billed: list[SessionEntry]
    tariff: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "summary": asdict(self.summary)
                | {"reconciliations": [r.to_dict() for r in self.summary.reconciliations]},
                "statements": [asdict(s) for s in self.statements],
                "not_billed": [asdict(s) for s in self.not_billed],
                "tariff": self.tariff,
            }
        )

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: equal digests mean identical statements."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------- the engine


@dataclass
class _Peak:
    """The month's site EV peak interval and how it is shared between units."""

    kw: Decimal
    at: datetime | None
    until: datetime | None
    minutes: int
    unit_kw: dict[str, Decimal] = field(default_factory=dict)
    session_kw: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    allocated_kw: Decimal = Decimal(0)


def _to_kw(wh: Decimal, per_hour: Decimal) -> Decimal:
    return (wh / WH_PER_KWH * per_hour).quantize(KWH_Q, rounding=ROUND_HALF_UP)


def local_time(at: datetime) -> str:
    """A local time with its zone abbreviation, so the repeated hour in autumn reads 01:27 PDT or 01:27 PST."""
    return f"{at:%Y-%m-%d %H:%M %Z}"


def _foot(lines: list[Line], tariff: Tariff) -> list[Line]:
    """Lines with their amounts in cents as they will be printed (see `shown_amounts`)."""
    shown = shown_amounts([ln.amount for ln in lines], tariff.rounding)
    return [replace(ln, amount=amount) for ln, amount in zip(lines, shown, strict=True)]


@dataclass
class _Priced:
    entry: SessionEntry
    session: Session


def _kwh(wh: int) -> str:
    return f"{Decimal(wh) / WH_PER_KWH:,.3f}"


def _round_wh(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class Biller:
    """Bills periods of one site. Construct once; `bill()` is pure given its inputs."""

    def __init__(self, site: Site, standby_w_per_evse: float | None = None) -> None:
        """`standby_w_per_evse` overrides every charger's `standby_w` from the site file in reconciliation."""
        if site.tariff is None:
            raise BillingError(f"site {site.name!r} has no tariff")
        self.site = site
        self.tariff: Tariff = site.tariff
        self.schedule = RateSchedule(site.tariff, site.timezone)
        self.registry = MeterRegistry(site)
        self.tenants = TenantDirectory(site)
        self.tz = ZoneInfo(site.timezone)
        self._evse_power = {e.id: _max_power_w(site, e.id) for e in site.evse}
        self.standby_w_per_evse = standby_w_per_evse

    def _standby_w(self, charger_id: str) -> Decimal:
        """A charger's own draw when idle: the override if given, else its model's figure in the site file."""
        if self.standby_w_per_evse is not None:
            return Decimal(str(self.standby_w_per_evse))
        evse = next((e for e in self.site.evse if e.id == charger_id), None)
        return Decimal(str(evse.standby_w)) if evse is not None else Decimal(0)

    def max_power_w(self, charger_id: str) -> float:
        """Nameplate power, for plausibility checks (unknown chargers: 80 A at 240 V, the Level 2 maximum)."""
        return self._evse_power.get(charger_id, 80 * 240.0)

    # ---- per session
    def split(self, session: Session, month: str) -> tuple[int, dict[tuple[str, Decimal], int]]:
        """Whole-session Wh, and this month's Wh by (TOU period, rate)."""
        total = _round_wh(session.energy_wh)
        if not session.intervals:
            return total, {}
        t0 = min(iv.start for iv in session.intervals)
        t1 = max(iv.end for iv in session.intervals)
        spans = self.schedule.spans(t0, t1) if t1 > t0 else []
        edges = sorted({t0, t1} | {s.start for s in spans} | set(month_edges(t0, t1, self.site.timezone)))
        if len(edges) < 2:  # every interval has zero length: the energy sits at t0
            edges = [t0, t0 + timedelta(microseconds=1)]
        exact, before, after = allocate(session.intervals, edges)
        exact[0] += before
        exact[-1] += after
        whole = apportion_wh(exact, total)
        out: dict[tuple[str, Decimal], int] = defaultdict(int)
        for a, wh in zip(edges, whole, strict=False):
            if wh == 0 or a.astimezone(self.tz).strftime("%Y-%m") != month:
                continue
            name, rate = self.schedule.period_at(a)
            out[(name, rate)] += wh
        return total, dict(out)

    def _entry(self, session: Session, period: BillingPeriod) -> tuple[SessionEntry, dict[tuple[str, Decimal], int]]:
        total, by_rate = self.split(session, period.month)
        unit: str | None = None
        reasons: list[str] = []
        shared: dict[str, str | None] | None = None
        try:
            unit = self.tenants.unit_for(session.id_tag, session.started_at)
        except UnknownTag as exc:
            reasons.append(str(exc))
        except SharedTag as exc:
            reasons.append(f"held: {exc}")
            shared = {"code": "shared_tag", "severity": "hold", "detail": str(exc), "at": None}
        fit = self.registry.evse_fitness(session.charger_id, session.started_at.astimezone(self.tz).date())
        if not fit.billable and fit.reason:
            reasons.append(fit.reason)
        reasons += [f"held: {f.detail}" for f in session.flags if f.severity is Severity.HOLD]
        flags = [f.to_dict() for f in session.flags if f.code != "duplicate_reading"] + [
            {"code": "meter_note", "severity": "warning", "detail": n, "at": None} for n in fit.notes
        ]
        flags += [f.to_dict() for f in session.flags if f.code == "duplicate_reading"]
        if shared is not None:
            flags.insert(0, shared)
        idle_s = (session.stopped_at - session.charging_ended_at).total_seconds() if session.stopped_at else 0.0
        entry = SessionEntry(
            key=session.key,
            charger_id=session.charger_id,
            connector_id=session.connector_id,
            id_tag=session.id_tag,
            unit_id=unit,
            meter_id=session.meter_id,
            started_at=session.started_at,
            stopped_at=session.stopped_at,
            start_wh=session.start_wh,
            end_wh=session.end_wh,
            energy_wh=total,
            period_energy_wh=sum(by_rate.values()),
            energy_by_rate={f"{name} @ {rate}": wh for (name, rate), wh in sorted(by_rate.items())},
            billable=not reasons,
            reason="; ".join(reasons) or None,
            flags=flags,
            idle_minutes=int(max(idle_s, 0) // 60),
            fees_in_period=session.stopped_at is not None and period.contains(session.stopped_at),
            signed=session.signed_status,
        )
        entry.note = self._crossing_note(entry, period)
        return entry, by_rate

    def _crossing_note(self, entry: SessionEntry, period: BillingPeriod) -> str:
        """For a session billed over two statements: how much is on this one, and where the rest and fees are."""
        rest = entry.energy_wh - entry.period_energy_wh
        earlier = entry.started_at < period.start
        later = entry.stopped_at is None or entry.stopped_at >= period.end
        if not (earlier or later) or (rest == 0 and not later):
            return ""
        fees = "the session fee" if self.tariff.session_fee > 0 else "any idle fee"
        here = f"{_kwh(entry.energy_wh)} kWh in all; {_kwh(entry.period_energy_wh)} kWh this month"
        if entry.stopped_at is None:
            return f"{here}; still plugged in at the end of the month: the rest and {fees} on a later statement"
        if earlier and not later:
            first = entry.started_at.astimezone(self.tz).strftime("%Y-%m")
            return f"{here}; the other {_kwh(rest)} kWh on the {first} statement; {fees} on this one"
        return f"{here}; the rest ({_kwh(rest)} kWh) and {fees} on the next statement"

    def _session_lines(self, entry: SessionEntry, by_rate: dict[tuple[str, Decimal], int]) -> list[Line]:
        """The session's charges at their exact amounts (rounded when the statement is assembled)."""
        t = self.tariff
        cur = t.currency
        lines = []
        for (name, rate), wh in sorted(by_rate.items()):
            kwh = Decimal(wh) / WH_PER_KWH
            label = "energy" if name == "flat" else f"energy {name}"
            lines.append(
                Line("energy", f"{label} {entry.charger_id}", kwh, "kWh", rate, kwh * rate, entry.key, f"{cur}/kWh")
            )
        if entry.fees_in_period:
            if t.session_fee > 0:
                fee = t.session_fee
                lines.append(Line("session_fee", "session fee", Decimal(1), "session", fee, fee, entry.key, cur))
            idle = max(entry.idle_minutes - t.idle_grace_minutes, 0)
            if idle > 0 and t.idle_fee_per_hour > 0:
                lines.append(
                    Line(
                        "idle_fee",
                        f"idle {entry.idle_minutes} min − {t.idle_grace_minutes} min grace",
                        Decimal(idle),
                        "min",
                        t.idle_fee_per_hour,
                        Decimal(idle) * t.idle_fee_per_hour / 60,
                        entry.key,
                        f"{cur}/h",
                    )
                )
        return lines

    # ---- per period
    def bill(
        self,
        sessions: Iterable[Session],
        month: str,
        adjustments: Sequence[Adjustment] = (),
        upstream_wh: dict[str, Decimal] | None = None,
    ) -> BillingRun:
        """Statements for every unit with a session or adjustment in `month`, and the site summary."""
        period = BillingPeriod.of(month, self.site.timezone)
        priced: list[_Priced] = []
        by_unit_lines: dict[str, list[Line]] = defaultdict(list)
        by_unit_sessions: dict[str, list[SessionEntry]] = defaultdict(list)
        not_billed: list[SessionEntry] = []
        flag_counts: dict[str, int] = defaultdict(int)
        seen: set[str] = set()
        for session in sorted(sessions, key=lambda s: (s.started_at, s.key)):
            if session.key in seen:  # the same transaction twice (a store or caller bug): bill it once
                flag_counts["duplicate_session"] += 1
                continue
            seen.add(session.key)
            if session.started_at >= period.end or session.last_at < period.start:
                continue
            entry, by_rate = self._entry(session, period)
            if entry.period_energy_wh == 0 and not entry.fees_in_period:
                continue
            priced.append(_Priced(entry, session))
            for f in session.flags:
                flag_counts[f.code] += 1
            if any(f["code"] == "shared_tag" for f in entry.flags):
                flag_counts["shared_tag"] += 1
            if entry.unit_id is not None:
                by_unit_sessions[entry.unit_id].append(entry)
            if entry.billable and entry.unit_id is not None:
                by_unit_lines[entry.unit_id].extend(self._session_lines(entry, by_rate))
            else:
                not_billed.append(entry)

        peak = self._demand(priced, period)
        t = self.tariff
        if t.demand_charge_per_kw > 0 and peak.at is not None:
            for unit, kw in sorted(peak.unit_kw.items()):
                by_unit_lines[unit].append(
                    Line(
                        "demand",
                        "demand: share of the site EV peak",
                        kw,
                        "kW",
                        t.demand_charge_per_kw,
                        kw * t.demand_charge_per_kw,
                        rate_unit=f"{t.currency}/kW",
                        detail=self._demand_detail(peak, unit),
                    )
                )
        for adj in adjustments:
            if adj.posted_month != month:
                continue
            by_unit_lines[adj.unit_id].append(
                Line(
                    "adjustment",
                    adj.description + (f" (re {adj.refers_to})" if adj.refers_to else ""),
                    Decimal(1),
                    "each",
                    adj.amount,
                    adj.amount,
                    adj.refers_to,
                    t.currency,
                    taxable=adj.taxable,
                )
            )

        names = self.tenants.unit_names()
        issued, due = self._issue_dates(period)
        billing = self.site.billing
        statements = []
        for unit in sorted(set(by_unit_lines) | set(by_unit_sessions)):
            lines = _foot(by_unit_lines.get(unit, []), t)
            subtotal = sum((ln.amount for ln in lines), Decimal(0))
            taxable = sum((ln.amount for ln in lines if ln.taxable), Decimal(0))
            tax = round_money(taxable * t.tax_pct / 100)
            if tax:
                lines.append(
                    Line("tax", "tax on the taxable subtotal", taxable, t.currency, t.tax_pct, tax, rate_unit="%")
                )
            entries = by_unit_sessions.get(unit, [])
            notes = sorted(
                {str(f["detail"]) for e in entries for f in e.flags if f["severity"] == "warning"}
                - {str(f["detail"]) for e in entries for f in e.flags if f["code"] == "meter_note"}
            )
            statements.append(
                Statement(
                    unit_id=unit,
                    unit_name=names.get(unit, unit),
                    month=month,
                    currency=t.currency,
                    sessions=entries,
                    lines=lines,
                    energy_wh=sum(e.period_energy_wh for e in entries if e.billable),
                    subtotal=subtotal,
                    tax=tax,
                    total=subtotal + tax,
                    notes=notes,
                    period_first=period.start.astimezone(self.tz).date(),
                    period_last=(period.end.astimezone(self.tz) - timedelta(days=1)).date(),
                    issued=issued,
                    due=due,
                    payee=billing.payee or self.site.name,
                    payee_address=billing.payee_address or self.site.address or "",
                    timezone=self.site.timezone,
                )
            )

        not_billable: dict[str, int] = defaultdict(int)
        for e in not_billed:
            not_billable[e.reason or "unknown"] += e.period_energy_wh
        summary = SiteSummary(
            site=self.site.name,
            month=month,
            currency=t.currency,
            timezone=self.site.timezone,
            period_start=period.start,
            period_end=period.end,
            units_billed=sum(1 for s in statements if s.lines),
            sessions=len(priced),
            energy_billed_wh=sum(s.energy_wh for s in statements),
            energy_not_billable_wh=dict(sorted(not_billable.items())),
            total_billed=sum((s.total for s in statements), Decimal(0)),
            tax_billed=sum((s.tax for s in statements), Decimal(0)),
            demand_peak_kw=peak.kw,
            demand_peak_at=peak.at,
            demand_allocated_kw=peak.allocated_kw,
            demand_unallocated_kw=peak.kw - peak.allocated_kw,
            reconciliations=self._reconcile(priced, upstream_wh or {}, period),
            flags=dict(sorted(flag_counts.items())),
            compliance_notes=sorted(
                {str(f["detail"]) for p in priced for f in p.entry.flags if f["code"] == "meter_note"}
            ),
        )
        return BillingRun(summary, statements, not_billed, _jsonable(t.model_dump(mode="json")))

    def _demand(self, priced: list[_Priced], period: BillingPeriod) -> _Peak:
        """Site coincident peak (kW) and when; each billable unit's kW in that interval, and by session."""
        minutes = self.tariff.demand_interval_minutes
        step = timedelta(minutes=minutes)
        per_hour = Decimal(60) / Decimal(minutes)
        count = int((period.end - period.start) / step)
        edges = [period.start + i * step for i in range(count)] + [period.end]
        site = [Decimal(0)] * count
        per_session: list[tuple[_Priced, int, list[Decimal]]] = []
        for p in priced:
            ivs = p.session.intervals
            if not ivs:
                continue
            lo = max(_index(edges, min(iv.start for iv in ivs)), 0)
            hi = min(_index(edges, max(iv.end for iv in ivs)) + 2, len(edges))
            if hi - lo < 2:
                continue
            buckets, _, _ = allocate(ivs, edges[lo:hi])
            for i, wh in enumerate(buckets):
                site[lo + i] += wh
            per_session.append((p, lo, buckets))
        if not any(site):
            return _Peak(Decimal(0), None, None, minutes)
        peak = max(range(count), key=lambda i: (site[i], -i))
        session_wh: dict[str, dict[str, Decimal]] = defaultdict(dict)
        for p, lo, buckets in per_session:
            inside = lo <= peak < lo + len(buckets) and buckets[peak - lo] > 0
            if inside and p.entry.billable and p.entry.unit_id is not None:
                session_wh[p.entry.unit_id][p.entry.key] = buckets[peak - lo]
        result = _Peak(_to_kw(site[peak], per_hour), edges[peak], edges[peak + 1], minutes)
        for unit, by_key in session_wh.items():
            kw = _to_kw(sum(by_key.values(), Decimal(0)), per_hour)
            if kw <= 0:
                continue
            result.unit_kw[unit] = kw
            # the sessions' kW to 0.001, made to add up to the unit's kW (largest remainder)
            keys = sorted(by_key)
            milli = apportion_wh([by_key[k] * per_hour for k in keys], int(kw * 1000))
            result.session_kw[unit] = {k: Decimal(m) / 1000 for k, m in zip(keys, milli, strict=True) if m}
        result.allocated_kw = sum(result.unit_kw.values(), Decimal(0))
        return result

    def _demand_detail(self, peak: _Peak, unit: str) -> str:
        """What a tenant needs to check the demand line: when, whose sessions, the rule, and the share."""
        assert peak.at is not None and peak.until is not None
        start, end = peak.at.astimezone(self.tz), peak.until.astimezone(self.tz)
        kw = peak.unit_kw[unit]
        share = (kw / peak.kw * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) if peak.kw else Decimal(0)
        sessions = ", ".join(f"{key} {v:.3f} kW" for key, v in peak.session_kw.get(unit, {}).items())
        return (
            f"The site's EV peak this month was {peak.kw:.3f} kW, the average of all chargers over the "
            f"{peak.minutes}-minute interval {local_time(start)}–{end:%H:%M %Z} (the month's highest). "
            f"Tariff rule: each unit pays {self.tariff.demand_charge_per_kw} {self.tariff.currency}/kW on its own "
            f"average kW in that interval. Yours: {kw:.3f} kW ({share} % of the peak), from {sessions}."
        )

    def _issue_dates(self, period: BillingPeriod) -> tuple[date, date]:
        """Issued on the tariff's statement day of the next month, due `due_days` later (no wall clock: re-runs
        of a month give the same statements)."""
        end = period.end.astimezone(self.tz).date()
        issued = date(end.year, end.month, self.site.billing.statement_day)
        return issued, issued + timedelta(days=self.site.billing.due_days)

    def _reconcile(
        self, priced: list[_Priced], upstream_wh: dict[str, Decimal], period: BillingPeriod
    ) -> list[Reconciliation]:
        out = []
        for meter_id, meter_wh in sorted(upstream_wh.items()):
            meter = self.registry.meters.get(meter_id)
            if meter is None or meter.role not in (MeterRole.PANEL, MeterRole.SITE):
                continue
            if meter.role is MeterRole.SITE and self.site.building_loads:
                continue  # the site meter also carries the building: nothing to reconcile EV sessions against
            below = _evse_under(self.site, meter.measures)
            entries = [p.entry for p in priced if p.entry.charger_id in below]
            sessions_wh = Decimal(sum(e.period_energy_wh for e in entries))
            worst = max(
                (self.registry.for_evse(c).accuracy.tolerance_pct for c in below), default=meter.accuracy.tolerance_pct
            )
            hours = Decimal(int((period.end - period.start).total_seconds())) / 3600
            standby = sum((self._standby_w(c) * hours for c in below), Decimal(0))
            unbilled = Decimal(sum(e.period_energy_wh for e in entries if not e.billable))
            out.append(
                reconcile(
                    meter_id,
                    meter_wh,
                    meter.accuracy.tolerance_pct,
                    sessions_wh,
                    worst,
                    standby_wh=standby,
                    unbilled_wh=unbilled,
                )
            )
        return out


def _index(edges: Sequence[datetime], at: datetime) -> int:
    from bisect import bisect_right

    return bisect_right(edges, at) - 1


def _max_power_w(site: Site, evse_id: str) -> float:
    evse = next(e for e in site.evse if e.id == evse_id)
    if evse.power_kw:
        return evse.power_kw * 1000
    return evse.max_current_a * topology.evse_watts_per_amp(site, evse)


def _evse_under(site: Site, node: str) -> set[str]:
    """EVSE ids downstream of a node (service, panel, feeder or circuit)."""
    return topology.evse_under(site, node)
