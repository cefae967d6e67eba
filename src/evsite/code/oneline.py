"""One-line diagram of a site as SVG, drawn in plain Python (no drawing library).

Layout: each panel is a vertical bus; its circuits and feeders leave it as horizontal rows, and a
sub-panel's bus is indented under the feeder that supplies it. Height grows with the number of
rows and width only with the depth of the distribution, so 30 EVSE read on one printed page.
Panels with many circuits draw consecutive circuits of identical design as one row ("×50"), which
keeps a 1,000-EVSE site to a few hundred rows. Communication paths run to a backbone on the right
that ends at the site controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from evsite.code.rules.context import SiteIndex, num
from evsite.site.model import Circuit, CommsMedium, Evse, Feeder, Meter, Panel, Site

ROW = 26  # px per row
INDENT = 34  # px per level of distribution depth
CHAR = 6.3  # px per character at the 11 px font, for layout estimates
SMALL_CHAR = 5.2  # the same at 9 px
COLLAPSE_ABOVE = 24  # circuits per panel above which identical circuits are drawn as one row

_COLORS = {"power": "#222", "ems": "#8b1fa9", "comms": "#1f6fb2", "meter": "#0a7d32", "pv": "#b8860b"}


@dataclass
class _Row:
    depth: int
    kind: str  # panel, feeder, circuit, group, source, load
    text: str
    right: str = ""  # EVSE text
    comms: str | None = None  # wired medium name, or None
    wireless: str | None = None  # label for Wi-Fi/cellular/PLC
    meter: str | None = None
    ems: str | None = None
    breaker: str | None = None
    volts: str = ""  # "208 V 1φ" on circuits and feeders


def _t(x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> str:
    extra = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


_FRACTIONS = {"1/2": "½", "3/4": "¾", "1/4": "¼"}


def trade_size_text(size: str) -> str:
    """A trade size as printed on drawings: "1-1/4" → 1¼", "3/4" → ¾"."""
    whole, _, frac = size.partition("-") if "-" in size else ("", "", size)
    frac_text = _FRACTIONS.get(frac, frac)
    return f'{whole}{frac_text}"' if whole else f'{frac_text}"'


def wire_size(size: str) -> str:
    """ "6 AWG" → #6, "3/0 AWG" → #3/0; kcmil sizes stay as written."""
    return "#" + size.removesuffix(" AWG") if size.endswith("AWG") else size


def ungrounded_count(run: Circuit | Feeder) -> int:
    """Ungrounded (line) conductors per parallel set."""
    if isinstance(run, Circuit):
        return len(run.lines)
    return 3 if run.phases == 3 else 2


def conductor_callout(run: Circuit | Feeder) -> str:
    """The run as an electrician writes it: (2) #6 + (1) #10 EGC, Cu THHN, in ¾" EMT.

    Counts are per raceway (parallel sets share it, as the fill check assumes)."""
    c = run.conductors
    sets = c.parallel_sets
    parts = [f"({ungrounded_count(run) * sets}) {wire_size(c.size)}"]
    if c.neutral:
        parts.append(f"({sets}) {wire_size(c.size)} N")
    if c.egc:
        egc_size, _, egc_material = (
            c.egc.rpartition(" ") if c.egc.split()[-1].lower() in ("cu", "al") else (c.egc, "", "")
        )
        same = egc_material.lower() == c.material.value.lower() or not egc_material
        parts.append(f"(1) {wire_size(egc_size)}{'' if same else ' ' + egc_material} EGC")
    raceway = c.raceway.type.value.upper()
    where = (
        "cable"
        if raceway == "CABLE"
        else (f"in {trade_size_text(c.raceway.trade_size) + ' ' if c.raceway.trade_size else ''}{raceway}")
    )
    parallel = f" ({sets} parallel sets)" if sets > 1 else ""
    return f"{' + '.join(parts)}, {c.material.value.capitalize()} {c.insulation}, {where}{parallel}"


def _run_text(c: Circuit | Feeder) -> str:
    return f"{conductor_callout(c)}, {num(c.conductors.length_ft, 0)} ft"


def _evse_text(evse: list[Evse]) -> str:
    if not evse:
        return "(no EVSE)"
    parts = []
    for e in evse:
        kind = "DC" if e.dc else f"{e.phases}φ"
        bidi = " V2X" if e.bidirectional else ""
        parts.append(f"{e.id} {num(e.rated_current_a)} A {kind}{bidi}")
    return "; ".join(parts)


def _meter_text(meters: list[Meter]) -> str | None:
    return ", ".join(f"{m.id} ({m.accuracy.value})" for m in meters) or None


def _circuit_key(idx: SiteIndex, c: Circuit) -> tuple[object, ...]:
    run = c.conductors
    evse = idx.evse_on(c.id)
    return (
        c.ocpd_a,
        len(c.lines),
        run.size,
        run.material,
        run.insulation,
        run.raceway.type,
        run.raceway.trade_size,
        run.egc,
        tuple((e.make, e.model, e.rated_current_a, e.comms.medium, e.meter_accuracy) for e in evse),
        bool(idx.ems_by_node.get(c.id)),
        bool(idx.meters_by_node.get(c.id)),
    )


def _comms(evse: list[Evse]) -> tuple[str | None, str | None]:
    media = {e.comms.medium for e in evse}
    wired = [m.value for m in media if m in (CommsMedium.ETHERNET, CommsMedium.RS485)]
    wireless = [m.value for m in media if m in (CommsMedium.WIFI, CommsMedium.CELLULAR, CommsMedium.PLC)]
    return ("/".join(sorted(wired)) or None), ("/".join(sorted(wireless)) or None)


def _ems_text(idx: SiteIndex, node: str) -> str | None:
    found = idx.ems_by_node.get(node, [])
    return ", ".join(f"{e.id} ≤ {num(e.setpoint_a)} A" for e in found) or None


def _circuit_row(idx: SiteIndex, c: Circuit, depth: int) -> _Row:
    evse = idx.evse_on(c.id)
    wired, wireless = _comms(evse)
    meters = idx.meters_by_node.get(c.id, []) + [m for e in evse for m in idx.meters_by_node.get(e.id, [])]
    revenue = [e for e in evse if e.meter_accuracy.revenue_grade]
    meter = _meter_text(meters) or (f"built-in {revenue[0].meter_accuracy.value}" if revenue else None)
    return _Row(
        depth,
        "circuit",
        f"{c.id}: {_run_text(c)}",
        _evse_text(evse),
        wired,
        wireless,
        meter,
        _ems_text(idx, c.id),
        f"{num(c.ocpd_a)} A {len(c.lines)}P",
        f"{num(idx.circuit_voltage(c).volts)} V {3 if len(c.lines) == 3 else 1}φ",
    )


def _group_row(idx: SiteIndex, group: list[Circuit], depth: int) -> _Row:
    first, last = group[0], group[-1]
    row = _circuit_row(idx, first, depth)
    lengths = [c.conductors.length_ft for c in group]
    evse = [e for c in group for e in idx.evse_on(c.id)]
    sample = idx.evse_on(first.id)
    what = (
        f"{num(sample[0].rated_current_a)} A {sample[0].make or ''} {sample[0].model or ''}".strip() if sample else ""
    )
    length = (
        f"{num(min(lengths), 0)}–{num(max(lengths), 0)} ft" if len(set(lengths)) > 1 else f"{num(lengths[0], 0)} ft"
    )
    row.kind = "group"
    row.text = f"{first.id} … {last.id} (×{len(group)}): {conductor_callout(first)}, {length}"
    row.right = f"{len(evse)} × EVSE {what}"
    row.breaker = f"{len(group)} × {num(first.ocpd_a)} A {len(first.lines)}P"
    return row


def _panel_rows(idx: SiteIndex, panel: Panel, depth: int, rows: list[_Row]) -> None:
    main = f", main {num(panel.main_ocpd_a)} A" if panel.main_ocpd_a else ""
    if panel.interrupting_rating_a:
        main += f", {num(panel.interrupting_rating_a / 1000)} kA AIC"
    level = f" [{panel.level}]" if panel.level else ""
    rows.append(
        _Row(
            depth,
            "panel",
            f"{panel.id} {panel.name or panel.kind}{level}: {num(panel.bus_rating_a)} A bus{main}",
            meter=_meter_text(idx.meters_by_node.get(panel.id, [])),
            ems=_ems_text(idx, panel.id),
        )
    )
    child = depth + 1
    for inverter in idx.site.inverters:
        if inverter.panel == panel.id:
            rows.append(
                _Row(
                    child,
                    "source",
                    f"{inverter.id}: PV inverter {num(inverter.ac_rating_kw)} kW {inverter.phases}φ",
                    comms="modbus" if inverter.modbus else None,
                )
            )
    for battery in idx.site.batteries:
        if battery.panel == panel.id:
            rows.append(
                _Row(
                    child,
                    "source",
                    f"{battery.id}: battery {num(battery.power_kw)} kW / {num(battery.capacity_kwh)} kWh",
                    comms="modbus" if battery.modbus else None,
                )
            )
    for load in idx.site.building_loads:
        if load.panel == panel.id:
            rows.append(_Row(child, "load", f"{load.id}: building load {num(load.peak_kw)} kW peak"))
    for feeder in idx.feeders_by_source.get(panel.id, []):
        _feeder_rows(idx, feeder, child, rows)
    circuits = idx.circuits_by_panel.get(panel.id, [])
    if len(circuits) <= COLLAPSE_ABOVE:
        rows.extend(_circuit_row(idx, c, child) for c in circuits)
        return
    group: list[Circuit] = []
    for c in circuits:
        if group and _circuit_key(idx, c) != _circuit_key(idx, group[0]):
            rows.append(_group_row(idx, group, child) if len(group) > 1 else _circuit_row(idx, group[0], child))
            group = []
        group.append(c)
    if group:
        rows.append(_group_row(idx, group, child) if len(group) > 1 else _circuit_row(idx, group[0], child))


def _feeder_rows(idx: SiteIndex, feeder: Feeder, depth: int, rows: list[_Row]) -> None:
    rows.append(
        _Row(
            depth,
            "feeder",
            f"{feeder.id}: feeder {_run_text(feeder)}",
            meter=_meter_text(idx.meters_by_node.get(feeder.id, [])),
            ems=_ems_text(idx, feeder.id),
            breaker=f"{num(feeder.ocpd_a)} A {feeder.phases}P",
            volts=f"{num(idx.feeder_voltage(feeder).volts)} V {idx.feeder_voltage(feeder).phases}φ",
        )
    )
    for panel in idx.panels_by_feeder.get(feeder.id, []):
        _panel_rows(idx, panel, depth + 1, rows)


def layout_rows(idx: SiteIndex) -> list[_Row]:
    rows: list[_Row] = []
    for panel in idx.panels_by_feeder.get("service", []):
        _panel_rows(idx, panel, 0, rows)
    for feeder in idx.feeders_by_source.get("service", []):
        _feeder_rows(idx, feeder, 0, rows)
    return rows


def render_svg(site: Site, idx: SiteIndex | None = None) -> str:
    """The site's one-line diagram as a standalone SVG document (UTF-8 text)."""
    idx = idx or SiteIndex.build(site)
    rows = layout_rows(idx)
    depth = max((r.depth for r in rows), default=0)
    left = 30
    text_x = _bus_x(left, depth + 1) + 110
    text_w = max((len(r.text) for r in rows if r.kind in ("circuit", "group", "feeder")), default=30) * CHAR
    evse_x = text_x + min(text_w, 460) + 20
    evse_w = max(180.0, min(360.0, max((len(r.right) for r in rows), default=20) * CHAR + 16))
    backbone_x = evse_x + evse_w + 300
    top = 150
    height = top + len(rows) * ROW + 90
    width = backbone_x + 240
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="oneline" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        "<style>text{fill:#222}.h{font-weight:bold;font-size:13px}.ems{fill:#8b1fa9}.c{fill:#1f6fb2}"
        ".m{fill:#0a7d32}.small{font-size:9px}</style>",
        f"<title>{escape(site.name)}: one-line diagram</title>",
    ]
    out += _service_header(idx, left)
    segments: list[tuple[float, float, float]] = []  # vertical bus lines (x, top, bottom)
    open_bus: dict[int, list[float]] = {0: [_bus_x(left, 0), 118.0, 118.0]}
    y = top
    for row in rows:
        attach = _bus_x(left, row.depth)
        mid = y + ROW / 2
        open_bus.setdefault(row.depth, [attach, mid, mid])[2] = mid
        if row.kind == "panel":
            own = _bus_x(left, row.depth + 1)
            if row.depth + 1 in open_bus:
                x0, y0, y1 = open_bus.pop(row.depth + 1)
                segments.append((x0, y0, y1))
            open_bus[row.depth + 1] = [own, mid, mid]
            out.append(f'<line x1="{attach:.0f}" y1="{mid:.0f}" x2="{own:.0f}" y2="{mid:.0f}" stroke="#222"/>')
            out.append(f'<rect x="{own - 5:.0f}" y="{mid - 6:.0f}" width="10" height="12" fill="#222"/>')
            out.append(_t(own + 12, mid + 4, row.text, "h"))
        else:
            out.append(f'<line x1="{attach:.0f}" y1="{mid:.0f}" x2="{text_x - 8:.0f}" y2="{mid:.0f}" stroke="#222"/>')
            if row.breaker:
                bx = attach + 12
                out.append(f'<rect x="{bx:.0f}" y="{mid - 5:.0f}" width="10" height="10" fill="#fff" stroke="#222"/>')
                out.append(_t(bx + 14, mid - 3, row.breaker, "small"))
            out.append(_t(text_x, mid + 4, row.text, "h" if row.kind == "feeder" else ""))
            if row.kind in ("circuit", "group"):
                out.append(
                    f'<rect x="{evse_x:.0f}" y="{mid - 9:.0f}" width="{evse_w:.0f}" height="18" rx="3" '
                    'fill="#eef6ee" stroke="#222"/>'
                )
                out.append(_t(evse_x + 6, mid + 4, row.right))
            if row.kind == "source":
                out.append(_t(text_x - 14, mid + 4, "~", "h"))
        extra_x = evse_x + evse_w + 8
        label_end = evse_x + (evse_w if row.kind in ("circuit", "group") else 0)
        if row.meter:
            out.append(f'<circle cx="{extra_x + 7:.0f}" cy="{mid:.0f}" r="7" fill="#fff" stroke="#0a7d32"/>')
            out.append(_t(extra_x + 7, mid + 4, "M", "m small", "middle"))
            out.append(_t(extra_x + 18, mid + 4, row.meter, "m small"))
            label_end = extra_x + 22 + len(row.meter) * SMALL_CHAR
        if row.ems:
            ems_x = label_end + 6 if row.meter else extra_x
            label = row.ems if "EMS" in row.ems.upper() else f"EMS {row.ems}"
            out.append(_t(ems_x, mid + 4, label, "ems small"))
            label_end = ems_x + (len(row.ems) + 5) * SMALL_CHAR
        if row.comms:
            start = min(label_end + 4, backbone_x - 40)
            out.append(
                f'<line x1="{start:.0f}" y1="{mid + 3:.0f}" x2="{backbone_x:.0f}" y2="{mid + 3:.0f}" '
                'stroke="#1f6fb2" stroke-dasharray="4 3"/>'
            )
            out.append(_t(backbone_x - 6, mid, row.comms, "c small", "end"))
        elif row.wireless:
            out.append(_t(extra_x + 200, mid + 4, f"((·)) {row.wireless}", "c small"))
        y += ROW
    segments += [(x0, y0, y1) for x0, y0, y1 in open_bus.values()]
    for x_bus, y_top, y_bottom in segments:
        if y_bottom > y_top:
            out.append(
                f'<line x1="{x_bus:.0f}" y1="{y_top:.0f}" x2="{x_bus:.0f}" y2="{y_bottom:.0f}" stroke="#222" '
                'stroke-width="2"/>'
            )
    out += _backbone(idx, backbone_x, top, y)
    out.append(
        _t(
            left,
            height - 20,
            "□ OCPD   ○M meter   ▭ EVSE   - - comms (wired)   ((·)) wireless/PLC   "
            "EMS: energy management limit (625.42(A))   ~ source",
            "small",
        )
    )
    out.append("</svg>")
    return "\n".join(out)


def _bus_x(left: float, level: int) -> float:
    """x of the vertical bus that rows at distribution depth `level` attach to (0: the service)."""
    return left + 10 + level * INDENT


def _service_header(idx: SiteIndex, left: float) -> list[str]:
    service = idx.site.service
    out = [
        f'<circle cx="{left + 10}" cy="30" r="10" fill="none" stroke="#222"/>',
        f'<circle cx="{left + 10}" cy="44" r="10" fill="none" stroke="#222"/>',
    ]
    source = f"Utility {service.system.value}"
    if service.transformer:
        source += f", transformer {num(service.transformer.kva)} kVA, {num(service.transformer.impedance_pct)} %Z"
    if service.available_fault_current_a:
        source += f", {num(service.available_fault_current_a)} A available fault current"
    out.append(_t(left + 28, 34, source, "h"))
    alloc = f" (EV allocation {num(service.allocation_a)} A)" if service.allocation_a else ""
    out.append(f'<line x1="{left + 10}" y1="54" x2="{left + 10}" y2="118" stroke="#222" stroke-width="2"/>')
    out.append(f'<rect x="{left + 4}" y="80" width="12" height="12" fill="#fff" stroke="#222"/>')
    out.append(_t(left + 28, 90, f"Service {num(service.rating_a)} A{alloc}"))
    meters = idx.meters_by_node.get("service", [])
    if meters:
        out.append(f'<circle cx="{left + 10}" cy="66" r="7" fill="#fff" stroke="#0a7d32"/>')
        out.append(_t(left + 10, 70, "M", "m small", "middle"))
        out.append(_t(left + 28, 70, _meter_text(meters) or "", "m small"))
    ems = _ems_text(idx, "service")
    if ems:
        out.append(_t(left + 28, 108, f"EMS {ems} (625.42(A), 220.70)", "ems"))
    return out


def _backbone(idx: SiteIndex, x: float, top: float, bottom: float) -> list[str]:
    site = idx.site
    out = [
        f'<rect x="{x - 10:.0f}" y="{top - 70:.0f}" width="220" height="40" rx="4" fill="#eef3fb" stroke="#1f6fb2"/>',
        _t(x, top - 54, "evsite controller (EMS)", "c h"),
        _t(x, top - 40, f"OCPP {', '.join(sorted({e.ocpp.version for e in site.evse})) or '—'}", "c small"),
        f'<line x1="{x:.0f}" y1="{top - 30:.0f}" x2="{x:.0f}" y2="{bottom:.0f}" stroke="#1f6fb2" stroke-width="2" '
        'stroke-dasharray="6 3"/>',
    ]
    if site.demand_response:
        out.append(_t(x + 120, top - 100, f"{site.demand_response.program} VTN ↔ VEN", "c small"))
        out.append(
            f'<line x1="{x + 100:.0f}" y1="{top - 96:.0f}" x2="{x + 100:.0f}" y2="{top - 70:.0f}" '
            'stroke="#1f6fb2" stroke-dasharray="4 3"/>'
        )
    modbus = [m.id for m in site.meters if m.modbus]
    if modbus:
        out.append(
            _t(x + 8, top - 14, "Modbus TCP: " + ", ".join(modbus[:6]) + (" …" if len(modbus) > 6 else ""), "c small")
        )
    return out
