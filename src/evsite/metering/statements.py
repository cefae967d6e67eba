"""Statements as files: printable HTML per unit, CSV for spreadsheets, JSON for accounting systems.

All three are renderings of one `BillingRun`; none computes anything, so they always agree.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from evsite.csvsafe import SafeDictWriter
from evsite.metering.billing import BillingRun, Line, SessionEntry, Statement, local_time
from evsite.site.model import Tariff

LINE_FIELDS = ["month", "unit_id", "kind", "description", "session", "quantity", "unit", "rate", "rate_unit",
               "amount_{cur}", "taxable"]  # fmt: skip
STATEMENT_FIELDS = [
    "month", "unit_id", "unit_name", "period_first", "period_last", "issued", "due", "sessions_billed",
    "energy_billed_kwh", "sessions_not_billed", "energy_not_billed_kwh", "subtotal_{cur}", "tax_{cur}", "total_{cur}",
]  # fmt: skip
SESSION_FIELDS = [
    "month", "session", "charger_id", "connector_id", "id_tag", "unit_id", "meter_id", "started_at", "stopped_at",
    "started_local", "stopped_local", "start_wh", "end_wh", "energy_wh", "period_energy_wh", "billable", "reason",
    "note", "signed", "flags",
]  # fmt: skip
"""CSV headers say their units: `_kwh`, `_wh`, and money columns named after the run's currency (`total_usd`)."""


def _fields(fields: list[str], currency: str) -> list[str]:
    return [f.replace("{cur}", currency.lower()) for f in fields]


def to_json(run: BillingRun) -> str:
    """The whole run (summary, statements, sessions not billed, tariff) as JSON; money and kWh as strings."""
    return json.dumps(run.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _csv(rows: Iterable[dict[str, Any]], fields: list[str]) -> str:
    buffer = io.StringIO()
    writer = SafeDictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def lines_csv(run: BillingRun) -> str:
    cur = run.summary.currency.lower()
    return _csv(
        (
            {
                "month": s.month,
                "unit_id": s.unit_id,
                "kind": ln.kind,
                "description": ln.description,
                "session": ln.session or "",
                "quantity": ln.quantity,
                "unit": ln.unit,
                "rate": ln.rate,
                "rate_unit": ln.rate_unit,
                f"amount_{cur}": ln.amount,
                "taxable": ln.taxable,
            }
            for s in run.statements
            for ln in s.lines
        ),
        _fields(LINE_FIELDS, cur),
    )


def statements_csv(run: BillingRun) -> str:
    """One row per statement; session counts and energy both split into billed and not billed."""
    cur = run.summary.currency.lower()
    rows = []
    for s in run.statements:
        billed = [e for e in s.sessions if e.billable]
        held = [e for e in s.sessions if not e.billable]
        rows.append(
            {
                "month": s.month,
                "unit_id": s.unit_id,
                "unit_name": s.unit_name,
                "period_first": s.period_first,
                "period_last": s.period_last,
                "issued": s.issued,
                "due": s.due,
                "sessions_billed": len(billed),
                "energy_billed_kwh": _kwh(sum(e.period_energy_wh for e in billed)),
                "sessions_not_billed": len(held),
                "energy_not_billed_kwh": _kwh(sum(e.period_energy_wh for e in held)),
                f"subtotal_{cur}": s.subtotal,
                f"tax_{cur}": s.tax,
                f"total_{cur}": s.total,
            }
        )
    return _csv(rows, _fields(STATEMENT_FIELDS, cur))


def sessions_csv(run: BillingRun) -> str:
    entries = [e for s in run.statements for e in s.sessions]
    entries += [e for e in run.not_billed if e.unit_id is None]
    tz = ZoneInfo(run.summary.timezone)
    return _csv((_session_row(run.summary.month, e, tz) for e in entries), SESSION_FIELDS)


def _session_row(month: str, e: SessionEntry, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "month": month,
        "session": e.key,
        "charger_id": e.charger_id,
        "connector_id": e.connector_id,
        "id_tag": e.id_tag or "",
        "unit_id": e.unit_id or "",
        "meter_id": e.meter_id,
        "started_at": e.started_at.isoformat(),
        "stopped_at": e.stopped_at.isoformat() if e.stopped_at else "",
        "started_local": local_time(e.started_at.astimezone(tz)),
        "stopped_local": local_time(e.stopped_at.astimezone(tz)) if e.stopped_at else "",
        "start_wh": e.start_wh,
        "end_wh": e.end_wh,
        "energy_wh": e.energy_wh,
        "period_energy_wh": e.period_energy_wh,
        "billable": e.billable,
        "reason": e.reason or "",
        "note": e.note,
        "signed": e.signed,
        "flags": "; ".join(f"{f['code']}: {f['detail']}" for f in e.flags),
    }


def _kwh(wh: int) -> str:
    return f"{Decimal(wh) / 1000:.3f}"


# --------------------------------------------------------------------------- HTML

_STYLE = """
body { font: 10.5pt/1.4 system-ui, sans-serif; margin: 2em; color: #111; max-width: 60em; }
h1 { font-size: 16pt; margin: 0 0 .1em; } h2 { font-size: 11.5pt; margin: 1.3em 0 .3em; }
table { border-collapse: collapse; width: 100%; margin: .3em 0 .8em; }
th, td { border-bottom: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
th { font-weight: 600; background: #f3f3f3; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } td.n, td.t { white-space: nowrap; }
.muted { color: #555; font-size: 9pt; } .detail td { border-bottom: 1px solid #ccc; padding-top: 0; }
.sub td { font-weight: 600; } .total td { font-weight: 700; border-top: 2px solid #111; font-size: 11.5pt; }
.head { display: flex; justify-content: space-between; gap: 2em; }
.head table { width: auto; } .head td { border: none; padding: .05em .5em; }
.due { border: 2px solid #111; padding: .4em .8em; margin: .8em 0; font-size: 12pt; }
.flag { color: #8a4b00; } .held { color: #a00; } .ok { color: #1a6b1a; }
section.statement { page-break-after: always; break-after: page; }
@media print { body { margin: 0; } }
"""

_KIND_LABELS = {
    "energy": "Energy",
    "session_fee": "Session fees",
    "idle_fee": "Idle fees",
    "demand": "Demand charge",
    "adjustment": "Adjustments",
}


def _money(value: Decimal, currency: str) -> str:
    """Money as printed: cents (statements are assembled in cents, so nothing is rounded here)."""
    return f"{value:,.2f} {escape(currency)}"


def _quantity(ln: Line) -> str:
    places = {"kWh": 3, "kW": 3}.get(ln.unit, 0 if ln.unit in ("min", "session", "each") else 2)
    return f"{ln.quantity:,.{places}f} {escape(ln.unit)}"


def _rate(ln: Line) -> str:
    return f"{ln.rate} %" if ln.rate_unit == "%" else f"{ln.rate} {escape(ln.rate_unit)}"


def _zone_names(st: Statement, tz: ZoneInfo) -> str:
    """The zone abbreviations in force during the period (e.g. "PDT, PST" in November)."""
    if st.period_first is None or st.period_last is None:
        return ""
    days = (st.period_last - st.period_first).days + 1
    moments = [(st.period_first + timedelta(days=d), clock) for d in range(days) for clock in (time(0), time(12))]
    names = [datetime.combine(day, clock, tz).tzname() for day, clock in moments]
    return ", ".join(dict.fromkeys(n for n in names if n))


def _local(at: Any, tz: ZoneInfo) -> str:
    return escape(local_time(at.astimezone(tz))) if at is not None else "still plugged in"


def _schedule(tariff: Tariff) -> str:
    """The tariff in force, as the tenant needs it to check the energy lines."""
    cur = escape(tariff.currency)
    if tariff.kind == "flat":
        rate = tariff.energy_rate_per_kwh
        rows = f"<tr><td>all hours</td><td>every day</td><td>all</td><td class=n>{rate} {cur}/kWh</td></tr>"
    else:
        rows = "".join(
            f"<tr><td>{escape(p.name)}</td><td class=t>{p.start:%H:%M}–{p.end:%H:%M}</td>"
            f"<td>{'every day' if len(p.days) == 7 else escape(', '.join(p.days))}</td>"
            f"<td>{'all' if len(p.months) == 12 else escape(', '.join(map(str, p.months)))}</td>"
            f"<td class=n>{p.rate_per_kwh} {cur}/kWh</td></tr>"
            for p in tariff.tou_periods
        )
    if tariff.kind == "flat":
        head = "<tr><th>Hours</th><th>Days</th><th>Months</th><th class=n>Rate</th></tr>"
    else:
        head = "<tr><th>Period</th><th>Local time</th><th>Days</th><th>Months</th><th class=n>Rate</th></tr>"
    extras = []
    if tariff.holidays and tariff.holiday_period:
        extras.append(f"holidays ({', '.join(map(str, tariff.holidays))}): {escape(tariff.holiday_period)} all day")
    if tariff.session_fee:
        extras.append(f"session fee {tariff.session_fee} {cur}")
    if tariff.idle_fee_per_hour:
        extras.append(
            f"idle fee {tariff.idle_fee_per_hour} {cur}/h after {tariff.idle_grace_minutes} min grace, per whole minute"
        )
    if tariff.demand_charge_per_kw:
        extras.append(
            f"demand {tariff.demand_charge_per_kw} {cur}/kW over {tariff.demand_interval_minutes}-minute intervals"
        )
    if tariff.tax_pct:
        extras.append(f"tax {tariff.tax_pct} % of the taxable subtotal")
    return f"<table>{head}{rows}</table><p class=muted>{escape('; '.join(extras))}.</p>"


def _how(tariff: Tariff) -> str:
    rounding = (
        "each line is rounded to the cent"
        if tariff.rounding == "line-item"
        else "the subtotal is rounded to the cent once and its cents are shared among the lines"
    )
    items = [
        "Energy is the difference between the charger meter's register readings at the start and end of each "
        "session. Energy delivered between two readings is divided between tariff periods (and months) in "
        "proportion to time, in whole Wh.",
        "Periods follow the local clock: a period runs from its start time up to, not including, its end time. "
        "When the clocks go back, the repeated hour is priced by its clock time both times; when they go "
        "forward, the skipped hour is simply absent.",
        "A session that runs past the end of the month is billed once: the energy of each month on that month's "
        "statement, and its fees on the statement of the month it ended.",
    ]
    if tariff.demand_charge_per_kw:
        items.append(
            "The demand charge shares the site's highest EV load of the month: each unit pays for its own "
            "average kW in that one interval (the line shows which interval and which sessions)."
        )
    items.append(f"Money: {rounding}; tax is charged on the taxable subtotal; the total is subtotal plus tax.")
    return "<ul class=muted>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def statement_html(st: Statement, site_name: str, timezone: str = "UTC", tariff: Tariff | None = None) -> str:
    """One unit's statement as a printable HTML section, times in the site's zone with its abbreviation."""
    tz = ZoneInfo(timezone)
    cur = st.currency
    charged = [ln for ln in st.lines if ln.kind != "tax"]
    rows = ""
    for ln in charged:
        each = ln.kind == "adjustment"  # a credit or charge as entered: no quantity × rate to show
        rows += (
            f"<tr><td>{escape(ln.description)}</td><td class=muted>{escape(ln.session or '')}</td>"
            f"<td class=n>{'' if each else _quantity(ln)}</td><td class=n>{'' if each else '× ' + _rate(ln)}</td>"
            f"<td class=n>{_money(ln.amount, cur)}</td></tr>"
        )
        if ln.detail:
            rows += f"<tr class=detail><td colspan=5 class=muted>{escape(ln.detail)}</td></tr>"
    taxes = [ln for ln in st.lines if ln.kind == "tax"]
    tax_rows = "".join(
        f"<tr><td colspan=2>Tax</td><td class=n>{_money(ln.quantity, cur)}</td><td class=n>× {_rate(ln)}</td>"
        f"<td class=n>{_money(ln.amount, cur)}</td></tr>"
        for ln in taxes
    )
    by_kind: dict[str, Decimal] = {}
    for ln in charged:
        by_kind[ln.kind] = by_kind.get(ln.kind, Decimal(0)) + ln.amount
    billed = [e for e in st.sessions if e.billable]
    overview = "".join(
        f"<tr><td>{_KIND_LABELS.get(kind, kind)}"
        + (f" ({len(billed)} sessions, {Decimal(st.energy_wh) / 1000:,.3f} kWh)" if kind == "energy" else "")
        + f"</td><td class=n>{_money(amount, cur)}</td></tr>"
        for kind, amount in by_kind.items()
    )
    sessions = ""
    for e in st.sessions:
        status = "billed" if e.billable else "not billed: " + escape(e.reason or "")
        sessions += (
            f"<tr><td class=t>{escape(e.key)}</td><td class=t>{_local(e.started_at, tz)}</td>"
            f"<td class=t>{_local(e.stopped_at, tz)}</td>"
            f"<td class=n>{e.start_wh:,}</td><td class=n>{e.end_wh:,}</td>"
            f"<td class=n>{Decimal(e.period_energy_wh) / 1000:,.3f}</td>"
            f"<td class={'ok' if e.billable else 'held'}>{status}</td></tr>"
        )
        if e.note:
            sessions += f"<tr class=detail><td></td><td colspan=6 class=muted>{escape(e.note)}</td></tr>"
    notes = "".join(f"<li class=flag>{escape(n)}</li>" for n in st.notes)
    name = f" — {escape(st.unit_name)}" if st.unit_name != st.unit_id else ""
    payee = escape(st.payee) + (f"<br>{escape(st.payee_address)}" if st.payee_address else "")
    return (
        "<section class=statement><div class=head><div>"
        f"<h1>EV charging statement</h1><div>{escape(site_name)}</div></div><table>"
        f"<tr><td>Account</td><td><b>{escape(st.unit_id)}</b>{name}</td></tr>"
        f"<tr><td>Billing period</td><td>{st.period_first} to {st.period_last}</td></tr>"
        f"<tr><td>Times</td><td>local, {escape(timezone)} ({escape(_zone_names(st, tz))})</td></tr>"
        f"<tr><td>Issued</td><td>{st.issued}</td></tr><tr><td>Due</td><td>{st.due}</td></tr>"
        f"<tr><td>Pay to</td><td>{payee}</td></tr></table></div>"
        f"<div class=due>Amount due: <b>{_money(st.total, cur)}</b> by {st.due}</div>"
        f"<h2>Summary</h2><table>{overview}"
        f"<tr class=sub><td>Subtotal</td><td class=n>{_money(st.subtotal, cur)}</td></tr>"
        f"<tr><td>Tax</td><td class=n>{_money(st.tax, cur)}</td></tr>"
        f"<tr class=total><td>Total</td><td class=n>{_money(st.total, cur)}</td></tr></table>"
        "<h2>Charges</h2><table><tr><th>Item</th><th>Session</th><th class=n>Quantity</th><th class=n>Rate</th>"
        f"<th class=n>Amount</th></tr>{rows}"
        f"<tr class=sub><td colspan=4>Subtotal</td><td class=n>{_money(st.subtotal, cur)}</td></tr>{tax_rows}"
        f"<tr class=total><td colspan=4>Total</td><td class=n>{_money(st.total, cur)}</td></tr></table>"
        "<h2>Sessions</h2><table><tr><th>Session</th><th>Start</th><th>Stop</th>"
        "<th class=n>Start register (Wh)</th><th class=n>End register (Wh)</th><th class=n>kWh this month</th>"
        f"<th></th></tr>{sessions}</table>"
        + (
            f"<h2>Tariff in force</h2>{_schedule(tariff)}<h2>How this bill is computed</h2>{_how(tariff)}"
            if tariff
            else ""
        )
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + "</section>"
    )


def statements_html(run: BillingRun) -> str:
    tariff = Tariff.model_validate(run.tariff)
    body = "".join(statement_html(s, run.summary.site, run.summary.timezone, tariff) for s in run.statements)
    return _page(f"Statements {run.summary.month}", body)


def _kwh_cell(wh: Decimal | int) -> str:
    return f"<td class=n>{Decimal(wh) / 1000:,.3f}</td>"


def summary_html(run: BillingRun) -> str:
    """The operator's page: totals, energy not billed, reconciliation with its parts, compliance notes."""
    s = run.summary
    tz = ZoneInfo(s.timezone)
    units = ""
    for st in run.statements:
        billed = [e for e in st.sessions if e.billable]
        held = [e for e in st.sessions if not e.billable]
        units += (
            f"<tr><td>{escape(st.unit_id)}</td><td class=n>{len(billed)}</td>"
            f"{_kwh_cell(sum(e.period_energy_wh for e in billed))}<td class=n>{len(held)}</td>"
            f"{_kwh_cell(sum(e.period_energy_wh for e in held))}<td class=n>{_money(st.total, st.currency)}</td></tr>"
        )
    unbilled = (
        "".join(f"<tr><td>{escape(reason)}</td>{_kwh_cell(wh)}</tr>" for reason, wh in s.energy_not_billable_wh.items())
        or "<tr><td>none</td><td></td></tr>"
    )
    recon = "".join(
        f"<tr><td>{escape(r.meter_id)}</td>{_kwh_cell(r.meter_wh)}{_kwh_cell(r.billed_wh)}{_kwh_cell(r.unbilled_wh)}"
        f"{_kwh_cell(r.difference_wh)}{_kwh_cell(r.losses_wh)}{_kwh_cell(r.standby_wh)}"
        f"<td class=n>± {Decimal(r.accuracy_wh) / 1000:,.3f}</td>"
        f"<td class={'ok' if r.ok else 'held'}>{'within' if r.ok else 'FLAGGED'}</td></tr>"
        f"<tr class=detail><td></td><td colspan=8 class=muted>{escape('; '.join(r.arithmetic))}</td></tr>"
        for r in s.reconciliations
    )
    flags = ", ".join(f"{escape(k)} × {v}" for k, v in s.flags.items()) or "none"
    peak = f"{s.demand_peak_kw} kW at {_local(s.demand_peak_at, tz)}" if s.demand_peak_at else "none"
    compliance = "".join(f"<li class=flag>{escape(n)}</li>" for n in s.compliance_notes)
    body = (
        f"<h1>{escape(s.site)} — billing summary {escape(s.month)}</h1>"
        f"<p class=muted>Period {_local(s.period_start, tz)} to {_local(s.period_end, tz)} ({escape(s.timezone)})</p>"
        f"<table><tr><td>Sessions</td><td class=n>{s.sessions}</td></tr>"
        f"<tr><td>Units billed</td><td class=n>{s.units_billed}</td></tr>"
        f"<tr><td>Energy billed</td><td class=n>{Decimal(s.energy_billed_wh) / 1000:,.3f} kWh</td></tr>"
        f"<tr><td>Total billed (incl. tax {_money(s.tax_billed, s.currency)})</td>"
        f"<td class=n>{_money(s.total_billed, s.currency)}</td></tr>"
        f"<tr><td>Site EV coincident peak</td><td class=n>{peak}</td></tr>"
        f"<tr><td>Demand allocated / unallocated</td><td class=n>{s.demand_allocated_kw} / "
        f"{s.demand_unallocated_kw} kW</td></tr><tr><td>Flags</td><td class=n>{flags}</td></tr></table>"
        "<h2>Energy not billed</h2><table><tr><th>Reason</th><th class=n>kWh</th></tr>"
        f"{unbilled}</table>"
        "<h2>Reconciliation with panel meters (kWh)</h2><table><tr><th>Meter</th><th class=n>Meter</th>"
        "<th class=n>Billed</th><th class=n>Not billed</th><th class=n>Difference</th><th class=n>Losses allowed</th>"
        f"<th class=n>Standby</th><th class=n>Accuracy</th><th>Result</th></tr>{recon}</table>"
        "<p class=muted>Difference = meter − (billed + not billed); it passes when −accuracy ≤ difference ≤ "
        "accuracy + losses + standby. Standby is each charger's `standby_w` × the hours of the month.</p>"
        "<h2>Units</h2><table><tr><th>Unit</th><th class=n>Sessions billed</th><th class=n>kWh billed</th>"
        "<th class=n>Sessions not billed</th><th class=n>kWh not billed</th>"
        f"<th class=n>Total</th></tr>{units}</table>"
        + (f"<h2>Compliance notes (operator)</h2><ul>{compliance}</ul>" if compliance else "")
    )
    return _page(f"Billing summary {s.month}", body)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style><body>{body}</body></html>\n"
    )


def write_all(run: BillingRun, out_dir: Path) -> list[Path]:
    """Every rendering of a run into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    month = run.summary.month
    files = {
        f"billing-{month}.json": to_json(run),
        f"statements-{month}.html": statements_html(run),
        f"summary-{month}.html": summary_html(run),
        f"statements-{month}.csv": statements_csv(run),
        f"lines-{month}.csv": lines_csv(run),
        f"sessions-{month}.csv": sessions_csv(run),
    }
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
