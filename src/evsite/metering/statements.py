"""Statements as files: printable HTML per unit, CSV for spreadsheets, JSON for accounting systems.

All three are renderings of one `BillingRun`; none computes anything, so they always agree.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from evsite.csvsafe import SafeDictWriter
from evsite.metering.billing import BillingRun, SessionEntry, Statement

LINE_FIELDS = ["month", "unit_id", "kind", "description", "session", "quantity", "unit", "rate", "amount"]
STATEMENT_FIELDS = ["month", "unit_id", "unit_name", "sessions", "energy_kwh", "subtotal", "tax", "total", "currency"]
SESSION_FIELDS = [
    "month", "session", "charger_id", "connector_id", "id_tag", "unit_id", "meter_id", "started_at", "stopped_at",
    "start_wh", "end_wh", "energy_wh", "period_energy_wh", "billable", "reason", "signed", "flags",
]  # fmt: skip


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
                "amount": ln.amount,
            }
            for s in run.statements
            for ln in s.lines
        ),
        LINE_FIELDS,
    )


def statements_csv(run: BillingRun) -> str:
    return _csv(
        (
            {
                "month": s.month,
                "unit_id": s.unit_id,
                "unit_name": s.unit_name,
                "sessions": len(s.sessions),
                "energy_kwh": Decimal(s.energy_wh) / 1000,
                "subtotal": s.subtotal,
                "tax": s.tax,
                "total": s.total,
                "currency": s.currency,
            }
            for s in run.statements
        ),
        STATEMENT_FIELDS,
    )


def sessions_csv(run: BillingRun) -> str:
    entries = [e for s in run.statements for e in s.sessions]
    entries += [e for e in run.not_billed if e.unit_id is None]
    return _csv((_session_row(run.summary.month, e) for e in entries), SESSION_FIELDS)


def _session_row(month: str, e: SessionEntry) -> dict[str, Any]:
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
        "start_wh": e.start_wh,
        "end_wh": e.end_wh,
        "energy_wh": e.energy_wh,
        "period_energy_wh": e.period_energy_wh,
        "billable": e.billable,
        "reason": e.reason or "",
        "signed": e.signed,
        "flags": "; ".join(f"{f['code']}: {f['detail']}" for f in e.flags),
    }


# --------------------------------------------------------------------------- HTML

_STYLE = """
body { font: 11pt/1.35 system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 16pt; margin: 0 0 .2em; } h2 { font-size: 12pt; margin: 1.2em 0 .3em; }
table { border-collapse: collapse; width: 100%; margin: .3em 0 1em; }
th, td { border-bottom: 1px solid #ccc; padding: .2em .4em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #555; font-size: 9.5pt; } .total td { font-weight: 600; border-top: 2px solid #111; }
.flag { color: #8a4b00; } .held { color: #a00; } .ok { color: #1a6b1a; }
section.statement { page-break-after: always; break-after: page; }
@media print { body { margin: 0; } }
"""


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {escape(currency)}" if value == value.quantize(Decimal("0.01")) else f"{value} {currency}"


def statement_html(st: Statement, site_name: str, timezone: str = "UTC") -> str:
    """One unit's statement as an HTML section (printable, one page per unit), times in the site's zone."""
    tz = ZoneInfo(timezone)
    rows = "".join(
        f"<tr><td>{escape(ln.description)}</td><td class=muted>{escape(ln.session or '')}</td>"
        f"<td class=n>{ln.quantity} {escape(ln.unit)}</td><td class=n>{ln.rate}</td>"
        f"<td class=n>{_money(ln.amount, st.currency)}</td></tr>"
        for ln in st.lines
    )
    sessions = "".join(
        f"<tr><td>{escape(e.key)}</td><td>{e.started_at.astimezone(tz):%Y-%m-%d %H:%M}</td>"
        f"<td>{f'{e.stopped_at.astimezone(tz):%Y-%m-%d %H:%M}' if e.stopped_at else 'open'}</td>"
        f"<td class=n>{e.start_wh}</td><td class=n>{e.end_wh}</td><td class=n>{e.period_energy_wh:,}</td>"
        f"<td class={'ok' if e.billable else 'held'}>"
        f"{'billed' if e.billable else 'not billed: ' + escape(e.reason or '')}</td></tr>"
        for e in st.sessions
    )
    notes = "".join(f"<li class=flag>{escape(n)}</li>" for n in st.notes)
    return (
        f"<section class=statement><h1>{escape(site_name)} — EV charging statement {escape(st.month)}</h1>"
        f"<p>Unit <b>{escape(st.unit_id)}</b> {escape(st.unit_name) if st.unit_name != st.unit_id else ''}</p>"
        "<h2>Charges</h2><table><tr><th>Item</th><th>Session</th><th class=n>Quantity</th><th class=n>Rate</th>"
        f"<th class=n>Amount</th></tr>{rows}"
        f"<tr class=total><td colspan=4>Total ({_money(st.tax, st.currency)} tax)</td>"
        f"<td class=n>{_money(st.total, st.currency)}</td></tr></table>"
        f"<h2>Sessions (register readings in Wh; times {escape(timezone)})</h2>"
        "<table><tr><th>Session</th><th>Start</th><th>Stop</th>"
        "<th class=n>Start register</th><th class=n>End register</th><th class=n>Wh this month</th><th></th></tr>"
        f"{sessions}</table>{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}</section>"
    )


def statements_html(run: BillingRun) -> str:
    body = "".join(statement_html(s, run.summary.site, run.summary.timezone) for s in run.statements)
    return _page(f"Statements {run.summary.month}", body)


def summary_html(run: BillingRun) -> str:
    s = run.summary
    units = "".join(
        f"<tr><td>{escape(st.unit_id)}</td><td class=n>{len(st.sessions)}</td>"
        f"<td class=n>{Decimal(st.energy_wh) / 1000:,.3f}</td><td class=n>{_money(st.total, st.currency)}</td></tr>"
        for st in run.statements
    )
    unbilled = "".join(
        f"<tr><td>{escape(reason)}</td><td class=n>{Decimal(wh) / 1000:,.3f}</td></tr>"
        for reason, wh in s.energy_not_billable_wh.items()
    )
    recon = "".join(
        f"<tr><td>{escape(r.meter_id)}</td><td class=n>{r.meter_wh}</td><td class=n>{r.sessions_wh}</td>"
        f"<td class=n>{r.difference_wh}</td><td class={'ok' if r.ok else 'held'}>{escape(r.arithmetic[-1])}</td></tr>"
        for r in s.reconciliations
    )
    flags = ", ".join(f"{escape(k)} × {v}" for k, v in s.flags.items()) or "none"
    tz = ZoneInfo(s.timezone)
    peak = (
        f"{s.demand_peak_kw} kW at {s.demand_peak_at.astimezone(tz):%Y-%m-%d %H:%M} {s.timezone}"
        if s.demand_peak_at
        else "none"
    )
    body = (
        f"<h1>{escape(s.site)} — billing summary {escape(s.month)}</h1>"
        f"<p class=muted>Period {s.period_start.isoformat()} to {s.period_end.isoformat()} (UTC)</p>"
        f"<table><tr><td>Sessions</td><td class=n>{s.sessions}</td></tr>"
        f"<tr><td>Units billed</td><td class=n>{s.units_billed}</td></tr>"
        f"<tr><td>Energy billed</td><td class=n>{Decimal(s.energy_billed_wh) / 1000:,.3f} kWh</td></tr>"
        f"<tr><td>Total billed (incl. tax {_money(s.tax_billed, s.currency)})</td>"
        f"<td class=n>{_money(s.total_billed, s.currency)}</td></tr>"
        f"<tr><td>Site EV coincident peak</td><td class=n>{peak}</td></tr>"
        f"<tr><td>Demand allocated / unallocated</td><td class=n>{s.demand_allocated_kw} / "
        f"{s.demand_unallocated_kw} kW</td></tr><tr><td>Flags</td><td class=n>{flags}</td></tr></table>"
        "<h2>Energy not billed (kWh)</h2><table><tr><th>Reason</th><th class=n>kWh</th></tr>"
        f"{unbilled}</table>"
        "<h2>Reconciliation with panel meters (Wh)</h2><table><tr><th>Meter</th><th class=n>Meter</th>"
        f"<th class=n>Sessions</th><th class=n>Difference</th><th>Result</th></tr>{recon}</table>"
        "<h2>Units</h2><table><tr><th>Unit</th><th class=n>Sessions</th><th class=n>kWh</th>"
        f"<th class=n>Total</th></tr>{units}</table>"
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
