"""The permit package: what a plan reviewer reads, built from a check Report as plain data.

A package is a set of numbered sheets (cover, one-line, panel schedules, load worksheet, schedules,
items needing action) with the full arithmetic in an appendix. This module decides the content; the
PDF (`evsite.code.pdf`) and HTML (`render_package_html`) renderers only lay it out, so both carry the
same facts. No rule runs here: every number comes from the Report's findings or from the SiteIndex
the rules use (line currents, design currents), never from a second calculation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from html import escape

from evsite import __version__
from evsite.code.check import Report, element_kind
from evsite.code.findings import Finding, Status
from evsite.code.oneline import _Row, conductor_callout, layout_rows, render_svg, ungrounded_count
from evsite.code.rules.context import SERVICE, ReportTable, SiteIndex, num
from evsite.site.model import Circuit, Feeder, Panel

LOAD_TOPICS = (
    "EVSE load (220.57)",
    "Existing load (220.87)",
    "Dwelling load (220.82)",
    "Service upgrade avoided",
    "EV load on the service",
    "EMS setpoint",
)
"""Service-level findings that make up the load-calculation worksheet, in worksheet order."""

ONELINE_ROWS_FIRST_SHEET = 30  # rows of the one-line on E-1.0 (below the source and service)
ONELINE_ROWS_PER_SHEET = 36  # rows on each further sheet, at 15 pt a row on ANSI B
APPENDIX_LIST_ALL = 12  # elements listed in full under one appendix entry; more are shown as a range


def oneline_chunks(rows: list[_Row]) -> list[list[_Row]]:
    """The one-line rows split into sheets that print legibly (E-1.0, E-1.1, …)."""
    chunks = [rows[:ONELINE_ROWS_FIRST_SHEET]]
    rest = rows[ONELINE_ROWS_FIRST_SHEET:]
    chunks += [rest[i : i + ONELINE_ROWS_PER_SHEET] for i in range(0, len(rest), ONELINE_ROWS_PER_SHEET)]
    return chunks


@dataclass(frozen=True)
class Sheet:
    number: str  # "E-1.0"
    title: str


@dataclass(frozen=True)
class PanelSchedule:
    panel: Panel
    phases: tuple[str, ...]
    table: ReportTable  # one row per circuit
    totals: ReportTable  # per line: connected, continuous, EMS-limited, against bus and main


@dataclass(frozen=True)
class AppendixEntry:
    elements: tuple[str, ...]
    finding: Finding


@dataclass
class Package:
    """Everything the package shows, in sheet order."""

    report: Report
    idx: SiteIndex
    project: str
    cover: list[tuple[str, str]]
    scope: list[str]
    notes: list[str]
    revisions: ReportTable
    sheets: list[Sheet] = field(default_factory=list)
    actions: ReportTable | None = None
    panel_schedules: list[PanelSchedule] = field(default_factory=list)
    load_worksheet: ReportTable | None = None
    equipment: ReportTable | None = None
    conductors: ReportTable | None = None
    appendix: list[tuple[str, list[AppendixEntry]]] = field(default_factory=list)

    @property
    def title_block(self) -> list[str]:
        """Lines of the title block printed on every sheet."""
        permit = self.report.site.permit
        who = " · ".join(x for x in (permit.firm, permit.preparer, permit.license and f"Lic. {permit.license}") if x)
        return [self.project, self.report.site.address or "", who or "Preparer: not stated in the site file"]


def build_package(report: Report, idx: SiteIndex | None = None) -> Package:
    """The package content for a checked site."""
    site = report.site
    idx = idx or SiteIndex.build(site)
    permit, jurisdiction = site.permit, site.jurisdiction
    project = permit.project or site.name
    counts = report.counts()
    cover = [
        ("Project", project),
        ("Address", site.address or "not stated"),
        ("Authority having jurisdiction", jurisdiction.ahj or "not stated"),
        ("Adopted code", jurisdiction.adopted_code or f"NFPA 70 (NEC) {jurisdiction.nec_edition} as checked"),
        ("Checked against", f"{report.edition}, IEEE 519-2022 (evsite {__version__})"),
        ("Service", f"{site.service.system.value}, {num(site.service.rating_a)} A"),
        ("EV charging", _ev_summary(idx)),
        ("Design check", f"{'FAIL' if report.failed else 'PASS'}: " + ", ".join(f"{n} {s}" for s, n in counts.items())),
        ("Prepared by", ", ".join(x for x in (permit.preparer, permit.firm) if x) or "not stated"),
        ("License number", permit.license or "not stated"),
        ("Date", max((r.date for r in permit.revisions), default=date.today()).isoformat()),
    ]
    revisions = ReportTable(
        "Revisions",
        ("Rev", "Date", "Description"),
        tuple((r.rev, r.date.isoformat(), r.description) for r in permit.revisions)
        or (("0", date.today().isoformat(), "Issued for permit"),),
    )
    pkg = Package(report, idx, project, cover, _scope(idx), list(jurisdiction.notes), revisions=revisions)
    pkg.actions = _actions(report)
    pkg.panel_schedules = [s for p in site.panels if (s := _panel_schedule(idx, p)) is not None]
    pkg.load_worksheet = _load_worksheet(report)
    pkg.equipment = _equipment(idx)
    pkg.conductors = _conductor_schedule(report, idx)
    pkg.appendix = _appendix(report)
    n = len(oneline_chunks(layout_rows(idx)))
    pkg.sheets = [
        Sheet("E-0.0", "Cover sheet, sheet index, code basis"),
        Sheet("E-0.1", "Items needing action"),
        *[Sheet(f"E-1.{i}", "One-line diagram" + (f" ({i + 1} of {n})" if n > 1 else "")) for i in range(n)],
        *[Sheet(f"E-2.{i}", f"EV panel schedule {s.panel.id}") for i, s in enumerate(pkg.panel_schedules)],
        Sheet("E-3.0", "Load calculation worksheet"),
        Sheet("E-4.0", "Equipment schedule"),
        Sheet("E-4.1", "Conductor and raceway schedule"),
        Sheet("E-5.0", "Permit scope, inspections, EVSE classification"),
        Sheet("A-1", "Appendix: calculations and every finding"),
    ]
    return pkg


def _ev_summary(idx: SiteIndex) -> str:
    site = idx.site
    managed = max(idx.line_currents(SERVICE, managed=True).values(), default=0.0)
    unmanaged = max(idx.line_currents(SERVICE, managed=False).values(), default=0.0)
    text = f"{len(site.evse)} EVSE, {num(unmanaged)} A per line connected"
    if site.ems and managed < unmanaged - 1e-9:
        text += f", {num(managed)} A under energy management"
    return text


def _scope(idx: SiteIndex) -> list[str]:
    site = idx.site
    if site.permit.scope:
        return [site.permit.scope]
    models: dict[str, int] = {}
    for e in site.evse:
        kind = "DC charger" if e.dc else "AC EVSE"
        key = f"{kind} {e.make or ''} {e.model or ''}".strip() + f", {num(e.rated_current_a)} A"
        models[key] = models.get(key, 0) + 1
    lines = [f"Install {n} × {k}." for k, n in models.items()]
    if site.feeders:
        lines.append(f"Install {len(site.feeders)} feeder(s) and {len(site.circuits)} branch circuit(s).")
    elif site.circuits:
        lines.append(f"Install {len(site.circuits)} branch circuit(s).")
    for ems in site.ems:
        lines.append(
            f"Energy management system {ems.id} limits {', '.join(ems.manages)} to {num(ems.setpoint_a)} A "
            "(NEC 625.42(A), 750.30)."
        )
    if any(e.comms.routing != "none" for e in site.evse):
        lines.append("Communication cabling from the site controller to the chargers.")
    return lines


def _actions(report: Report) -> ReportTable:
    """Failures first, then warnings: what the applicant must correct or the reviewer must look at.

    The same result on many elements (one design repeated) is one row naming them all."""
    groups: dict[tuple[object, ...], list[Finding]] = {}
    for status in (Status.FAIL, Status.WARN):
        for f in report.by_status(status):
            groups.setdefault((f.status, f.topic, f.rule, f.message, f.fix), []).append(f)
    rows = [
        (str(n), fs[0].status.value.upper(), elements_text(tuple(f.element for f in fs)), fs[0].topic,
         str(fs[0].rule), fs[0].message, fs[0].fix or "")
        for n, fs in enumerate(groups.values(), 1)
    ]  # fmt: skip
    return ReportTable(
        "Items needing action",
        ("#", "Status", "Element", "Check", "Citation", "Finding", "Required action"),
        tuple(rows),
        None if rows else "No item fails or needs review.",
    )


# --------------------------------------------------------------------------- panel schedules


def _positions(circuits: list[Circuit], lines: tuple[str, ...]) -> tuple[dict[str, list[int]], bool]:
    """Pole positions per circuit: as given, else the first free rows whose bus phases match its lines.

    Row r of a panel (positions 2r-1 and 2r) sits on phase lines[(r-1) % len(lines)], so a breaker on
    L2-L3 goes where the bus is L2 then L3; the odd side is filled before the even side."""
    taken: set[int] = set()
    out: dict[str, list[int]] = {}
    for c in circuits:
        if c.position:
            out[c.id] = [c.position + 2 * k for k in range(len(c.lines))]
            taken.update(out[c.id])
    rows = max(21, math.ceil(sum(len(c.lines) for c in circuits) / 2) + 2 * len(lines))
    for c in circuits:
        if c.id in out:
            continue
        want, poles = {str(x) for x in c.lines}, len(c.lines)
        for side in (1, 0):  # odd positions, then even
            spots = [
                [2 * r - side for r in range(first, first + poles)]
                for first in range(1, rows - poles + 2)
                if {lines[(r - 1) % len(lines)] for r in range(first, first + poles)} == want
            ]
            free = next((p for p in spots if not taken.intersection(p)), None)
            if free:
                out[c.id] = free
                taken.update(free)
                break
        else:
            out[c.id] = []
    return out, any(not c.position for c in circuits)


def _line_va(idx: SiteIndex, circuit: Circuit, amps: float) -> dict[str, float]:
    """VA a circuit puts on each line it connects to (nameplate current × its voltage, shared by its poles)."""
    n = len(circuit.lines)
    if n == 1:
        total = amps * idx.v_ln
    elif n == 2:
        total = amps * idx.v_ll
    else:
        total = math.sqrt(3) * amps * idx.v_ll
    return {str(line): total / n for line in circuit.lines}


def _panel_schedule(idx: SiteIndex, panel: Panel) -> PanelSchedule | None:
    circuits = [c for c in idx.circuits_by_panel.get(panel.id, []) if idx.evse_on(c.id)]
    if not circuits:
        return None
    lines = tuple(idx.lines)
    positions, assigned = _positions(circuits, lines)
    rows = []
    totals = dict.fromkeys(lines, 0.0)
    for c in circuits:
        evse = idx.evse_on(c.id)
        va = _line_va(idx, c, idx.circuit_unmanaged_a(c))
        for line, value in va.items():
            totals[line] += value
        rows.append(
            (
                ",".join(str(p) for p in positions[c.id]),
                c.id,
                ", ".join(f"{e.id} {num(e.rated_current_a)} A" for e in evse),
                str(len(c.lines)),
                f"{num(c.ocpd_a)} A",
                *(num(va[line], 0) if line in va else "" for line in lines),
            )
        )
    rows.append(
        (
            "",
            "Total",
            f"{len(circuits)} EV circuit{'s' if len(circuits) > 1 else ''}",
            "",
            "",
            *(num(totals[line], 0) for line in lines),
        )
    )
    table = ReportTable(
        f"Panel {panel.id}{' — ' + panel.name if panel.name else ''}",
        ("Poles at", "Circuit", "Load", "Poles", "Breaker", *(f"{line} VA" for line in lines)),
        tuple(rows),
        "Positions not given in the site file are assigned to the first free spaces on matching bus phases."
        if assigned
        else None,
    )
    connected = idx.line_currents(panel.id, managed=False)
    managed = idx.line_currents(panel.id, managed=True)
    # An EMS upstream (on the feeder or the service) caps what this panel can draw as well.
    upstream = [e for f in idx.upstream_feeders(panel.id) if (e := idx.ems_limit(f.id))]
    if service_ems := idx.ems_limit(SERVICE):
        upstream.append(service_ems)
    if upstream:
        cap = min(e.setpoint_a for e in upstream)
        managed = {line: min(value, cap) for line, value in managed.items()}
    limit = panel.main_ocpd_a or panel.bus_rating_a
    summary: list[tuple[str, ...]] = [
        ("EV load connected (A per line)", *(num(connected[line]) for line in lines)),
        ("× 125 % continuous (625.41)", *(num(connected[line] * 1.25) for line in lines)),
    ]
    if any(managed[line] < connected[line] - 1e-9 for line in lines):
        summary += [
            ("Under EMS (625.42(A), 220.70) (A)", *(num(managed[line]) for line in lines)),
            ("EMS load × 125 %", *(num(managed[line] * 1.25) for line in lines)),
        ]
    worst = max(managed.values(), default=0.0) * 1.25
    summary.append(
        (
            f"Against {'main ' + num(panel.main_ocpd_a) + ' A' if panel.main_ocpd_a else 'bus'} / "
            f"bus {num(panel.bus_rating_a)} A",
            *(("OK" if worst <= limit + 1e-9 else "OVER") for _ in lines),
        )
    )
    totals_table = ReportTable(
        f"Panel {panel.id} totals",
        ("", *lines),
        tuple(summary),
        "EV circuits only; other loads on this panel are not in the site file and belong to the existing-load figure.",
    )
    return PanelSchedule(panel, lines, table, totals_table)


# --------------------------------------------------------------------------- worksheet and schedules


def _load_worksheet(report: Report) -> ReportTable:
    """The service-level load findings as one table, one row per arithmetic step, then the verdict."""
    rows: list[tuple[str, ...]] = []
    for topic in LOAD_TOPICS:
        for f in report.findings:
            site_wide = element_kind(f.element) in ("service", "site")
            if f.topic != topic or not (site_wide or topic == "EMS setpoint"):  # the EMS reduction on any node
                continue
            label = f"{topic} — {f.element}" if topic == "EMS setpoint" else topic
            for i, step in enumerate(f.arithmetic or [f.message]):
                first = i == 0
                rows.append(
                    (
                        label if first else "",
                        str(f.rule) if first else "",
                        step,
                        f.status.value.upper() if first else "",
                    )
                )
    failed = [f for f in report.findings if f.topic in LOAD_TOPICS and f.status is Status.FAIL]
    verdict = (
        f"{len(failed)} load item(s) exceed their limit: see the items needing action"
        if failed
        else f"The design load fits the {num(report.site.service.rating_a)} A service and every EMS-managed node"
    )
    rows.append(("Result against the service", "", verdict, "FAIL" if failed else "PASS"))
    return ReportTable(
        "Load calculation worksheet",
        ("Item", "Citation", "Calculation", "Result"),
        tuple(rows),
        "EV charging is continuous (625.41); with an EMS its setpoint is the load (625.42(A), 220.70).",
    )


def _equipment(idx: SiteIndex) -> ReportTable:
    site = idx.site
    groups: dict[tuple[object, ...], list[str]] = {}
    for e in site.evse:
        key = (
            "DC charger" if e.dc else "AC EVSE",
            e.make or "not stated",
            e.model or "not stated",
            ", ".join(str(s) for s in e.listing) or "NOT STATED",
            f"{num(e.rated_current_a)} A{' ' + num(e.power_kw) + ' kW' if e.power_kw else ''}, {e.phases}φ",
        )
        groups.setdefault(key, []).append(e.id)
    rows = [(_ids(ids), *(str(k) for k in key), str(len(ids))) for key, ids in groups.items()]
    for ems in site.ems:
        fallback = (
            "fail-safe profiles from evsite"
            if ems.kind == "evsite"
            else f"fallback {num(ems.fallback_a)} A per charger"
            if ems.fallback_a is not None
            else "fallback not stated (rating assumed)"
        )
        label = f"; label: “{ems.label}”" if ems.label else ""
        rows.append(
            (
                ems.id,
                f"Energy management system ({ems.kind})",
                ems.product or "not stated",
                "",
                str(ems.listing) if ems.listing and ems.listed else "NOT LISTED",
                f"{num(ems.setpoint_a)} A on {', '.join(ems.manages)}; {fallback}{label}",
                "1",
            )
        )
    for p in site.panels:
        main = f", main {num(p.main_ocpd_a)} A" if p.main_ocpd_a else ", main lugs"
        rows.append((p.id, p.kind.capitalize(), "", p.name or "", "", f"{num(p.bus_rating_a)} A bus{main}", "1"))
    meters: dict[str, list[str]] = {}
    for m in site.meters:
        meters.setdefault(m.accuracy.value, []).append(m.id)
    for accuracy, ids in meters.items():
        rows.append((_ids(ids), "Meter", "", "", accuracy, "", str(len(ids))))
    return ReportTable(
        "Equipment schedule",
        ("Tag", "Item", "Make", "Model", "Listing / standard", "Nameplate", "Qty"),
        tuple(rows),
    )


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 3 else f"{ids[0]} … {ids[-1]} ({len(ids)})"


def _conductor_schedule(report: Report, idx: SiteIndex) -> ReportTable:
    by_element: dict[tuple[str, str], Finding] = {
        (f.element, f.topic): f for f in report.findings if f.topic in ("Raceway fill", "Voltage drop")
    }
    rows = []
    runs: list[tuple[str, Feeder | Circuit, str, str]] = [
        (f"feeder {f.id}", f, f.from_panel, ", ".join(p.id for p in idx.panels_by_feeder.get(f.id, [])) or "—")
        for f in idx.site.feeders
    ] + [(f"circuit {c.id}", c, c.panel, ", ".join(e.id for e in idx.evse_on(c.id)) or "—") for c in idx.site.circuits]
    for element, run, source, load in runs:
        fill = by_element.get((element, "Raceway fill"))
        drop = by_element.get((element, "Voltage drop"))
        volts = idx.v_ln if ungrounded_count(run) == 1 else idx.v_ll
        phases = "3φ" if ungrounded_count(run) == 3 else "1φ"
        rows.append(
            (
                run.id,
                source,
                load,
                f"{num(run.ocpd_a)} A",
                f"{num(volts)} V {phases}",
                conductor_callout(run),
                f"{num(run.conductors.length_ft, 0)} ft",
                f"{num(fill.inputs['fill_pct'])} %" if fill and "fill_pct" in fill.inputs else "—",
                f"{num(drop.inputs['voltage_drop_pct'])} %" if drop and "voltage_drop_pct" in drop.inputs else "—",
            )
        )
    return ReportTable(
        "Conductor and raceway schedule",
        ("Run", "From", "To", "OCPD", "Volts", "Conductors and raceway", "Length", "Fill", "V drop"),
        tuple(rows),
    )


def _appendix(report: Report) -> list[tuple[str, list[AppendixEntry]]]:
    """Every finding with its arithmetic, identical findings on several elements listed once."""
    out: list[tuple[str, list[AppendixEntry]]] = []
    by_kind: dict[str, dict[tuple[object, ...], list[Finding]]] = {}
    for element, found in report.groups().items():
        kind = element_kind(element)
        bucket = by_kind.setdefault(kind, {})
        for f in found:
            key = (f.topic, f.status, f.rule, f.message, tuple(f.arithmetic), f.fix)
            bucket.setdefault(key, []).append(f)
    for kind, bucket in by_kind.items():
        entries = [AppendixEntry(tuple(x.element for x in fs), fs[0]) for fs in bucket.values()]
        out.append((kind, entries))
    return out


def elements_text(elements: tuple[str, ...]) -> str:
    if len(elements) <= APPENDIX_LIST_ALL:
        return ", ".join(elements)
    return f"{elements[0]} … {elements[-1]} ({len(elements)} elements with the same result)"


# --------------------------------------------------------------------------- HTML


def render_package_html(pkg: Package) -> str:
    """The package as one printable XHTML file, sheet by sheet (screens; the PDF is for submittal)."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
        f"<title>{escape(pkg.project)}: permit package</title>",
        "<style>body{font-family:Helvetica,Arial,sans-serif;font-size:10pt;margin:1.5em}"
        "section{page-break-before:always;border-top:2px solid #222;margin-top:2em}"
        "section:first-of-type{page-break-before:auto}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #999;padding:2px 6px;"
        "vertical-align:top;text-align:left}th{background:#eee}.fail{color:#b00;font-weight:bold}"
        ".warn{color:#a60}.sheet{float:right;font-weight:bold}svg{max-width:100%;height:auto}</style>",
        "</head><body>",
    ]

    def sheet(number: str, title: str) -> None:
        out.append(f'<section id="{escape(number)}"><span class="sheet">{escape(number)}</span>')
        out.append(f"<h2>{escape(title)}</h2>")

    sheet("E-0.0", f"{pkg.project}: permit package")
    out.append(_html_kv(pkg.cover))
    out.append("<h3>Scope of work</h3><ul>" + "".join(f"<li>{escape(s)}</li>" for s in pkg.scope) + "</ul>")
    if pkg.notes:
        out.append("<h3>Jurisdiction notes</h3><ul>" + "".join(f"<li>{escape(n)}</li>" for n in pkg.notes) + "</ul>")
    out.append(_html_table(pkg.revisions))
    out.append(
        _html_table(ReportTable("Sheet index", ("Sheet", "Title"), tuple((s.number, s.title) for s in pkg.sheets)))
    )
    out.append("<h3>Seal and signature</h3><p>Signed: ____________________ Date: ________</p></section>")
    assert pkg.actions is not None and pkg.load_worksheet and pkg.equipment and pkg.conductors
    sheet("E-0.1", "Items needing action")
    out.append(_html_table(pkg.actions) + "</section>")
    sheet("E-1.0", "One-line diagram")
    out.append(render_svg(pkg.report.site, pkg.idx) + "</section>")
    for i, s in enumerate(pkg.panel_schedules):
        sheet(f"E-2.{i}", f"EV panel schedule {s.panel.id}")
        out.append(_html_table(s.table) + _html_table(s.totals) + "</section>")
    sheet("E-3.0", "Load calculation worksheet")
    out.append(_html_table(pkg.load_worksheet) + "</section>")
    sheet("E-4.0", "Equipment schedule")
    out.append(_html_table(pkg.equipment) + "</section>")
    sheet("E-4.1", "Conductor and raceway schedule")
    out.append(_html_table(pkg.conductors) + "</section>")
    sheet("E-5.0", "Permit scope, inspections, EVSE classification")
    out.append("".join(_html_table(t) for t in pkg.report.tables) + "</section>")
    sheet("A-1", "Appendix: calculations and every finding")
    for kind, entries in pkg.appendix:
        out.append(f"<h3>{escape(kind.capitalize())}</h3>")
        for entry in entries:
            f = entry.finding
            cls = f' class="{f.status.value}"' if f.status in (Status.FAIL, Status.WARN) else ""
            out.append(
                f"<p><b>{escape(elements_text(entry.elements))}</b> — {escape(f.topic)} "
                f"<span{cls}>{f.status.value.upper()}</span> ({escape(str(f.rule))}): {escape(f.message)}</p>"
            )
            if f.arithmetic:
                out.append("<ol>" + "".join(f"<li>{escape(s)}</li>" for s in f.arithmetic) + "</ol>")
            if f.fix:
                out.append(f"<p>Fix: {escape(f.fix)}</p>")
    out.append("</section></body></html>\n")
    return "\n".join(out)


def _html_kv(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>"


def _html_table(t: ReportTable) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r) + "</tr>" for r in t.rows)
    note = f"<p>{escape(t.note)}</p>" if t.note else ""
    return f"<h3>{escape(t.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"
