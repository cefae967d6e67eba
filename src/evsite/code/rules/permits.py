"""Permit scope: the power permit, the low-voltage (structured-wiring) permit, inspections, EVSE classes.

Power work (branch circuits, feeders, service changes, EVSE) needs an electrical permit. Communication
wiring run to the chargers (Ethernet, RS-485) is low-voltage work that many AHJs permit separately
(NEC 2023 Article 725 for Class 2 circuits, Articles 800/805 for communications circuits); the site's
jurisdiction setting says whether this AHJ does. The tables here go into the permit application as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.findings import Citation, Finding, Status, nec
from evsite.code.rules.context import ReportTable, SiteIndex
from evsite.code.rules.nec625 import expected_listing
from evsite.site.model import CommsMedium, Evse

WIRED = {CommsMedium.ETHERNET, CommsMedium.RS485}


def _ahj(idx: SiteIndex) -> Citation:
    return Citation("AHJ", f"permit requirements ({idx.site.jurisdiction.ahj or 'local'})", "local")


def wired_comms(idx: SiteIndex) -> list[Evse]:
    return [e for e in idx.site.evse if e.comms.medium in WIRED and e.comms.routing != "none"]


def _interfaces(idx: SiteIndex) -> list[str]:
    site = idx.site
    out = [f"Modbus TCP meter {m.id}" for m in site.meters if m.modbus]
    out += [f"Modbus TCP inverter {i.id}" for i in site.inverters if i.modbus]
    out += [f"Modbus TCP battery {b.id}" for b in site.batteries if b.modbus]
    if site.integrations.bacnet:
        out.append(f"BACnet/IP device {site.integrations.bacnet.device_id} (building automation)")
    if site.integrations.mqtt:
        out.append(f"MQTT broker {site.integrations.mqtt.host}")
    if site.demand_response:
        out.append(f"{site.demand_response.program} VEN ({site.demand_response.ven_name})")
    return out


def check(idx: SiteIndex) -> Iterator[Finding]:
    site = idx.site
    yield Finding(
        "site",
        "Power permit",
        Status.INFO,
        _ahj(idx),
        f"Electrical permit: {len(site.evse)} EVSE, {_count(len(site.circuits), 'branch circuit')}, "
        f"{_count(len(site.feeders), 'feeder')}" + (f", {len(site.ems)} EMS (750.30)" if site.ems else "") + ".",
        {"evse": len(site.evse), "circuits": len(site.circuits), "feeders": len(site.feeders), "ems": len(site.ems)},
    )
    wired = wired_comms(idx)
    setting = site.jurisdiction.low_voltage_permit
    inputs = {"wired_comms_evse": len(wired), "jurisdiction_setting": setting, "interfaces": _interfaces(idx)}
    citation = nec("Articles 725, 800, 805")
    if not wired:
        yield Finding(
            "site",
            "Low-voltage permit",
            Status.INFO,
            citation,
            "No communication wiring is run to the chargers: no low-voltage permit for EVSE comms.",
            inputs,
        )
    elif setting == "required":
        yield Finding(
            "site",
            "Low-voltage permit",
            Status.INFO,
            citation,
            f"Communication wiring runs to {len(wired)} EVSE: a separate low-voltage/structured-wiring permit is "
            "required by this jurisdiction.",
            inputs,
        )
    elif setting == "class-2-exempt":
        yield Finding(
            "site",
            "Low-voltage permit",
            Status.INFO,
            citation,
            f"Communication wiring runs to {len(wired)} EVSE; this jurisdiction exempts Class 2 wiring from a separate "
            "permit (the wiring is still inspected under the power permit).",
            inputs,
        )
    else:
        yield Finding(
            "site",
            "Low-voltage permit",
            Status.WARN,
            citation,
            f"Communication wiring runs to {len(wired)} EVSE but the site says no low-voltage permit is required; "
            "confirm with the AHJ.",
            inputs,
            fix="Confirm the AHJ's low-voltage permit rule and update jurisdiction.",
        )


def tables(idx: SiteIndex) -> list[ReportTable]:
    return [scope_table(idx), inspection_table(idx), classification_table(idx)]


def _lv_needed(idx: SiteIndex) -> bool:
    return bool(wired_comms(idx)) and idx.site.jurisdiction.low_voltage_permit != "not-required"


def scope_table(idx: SiteIndex) -> ReportTable:
    site = idx.site
    rows = [
        (
            "Electrical (power)",
            "yes",
            f"{_count(len(site.circuits), 'branch circuit')}, {_count(len(site.feeders), 'feeder')}, "
            f"{len(site.evse)} EVSE" + (", EMS " + ", ".join(e.id for e in site.ems) if site.ems else ""),
            "NEC 2023 Articles 210, 215, 220, 240, 250, 310, 625, 750",
        ),
        (
            "Low-voltage / structured wiring",
            "yes" if _lv_needed(idx) else "no",
            f"comms cabling to {len(wired_comms(idx))} EVSE ({site.jurisdiction.low_voltage_permit})",
            "NEC 2023 Articles 725, 800, 805; AHJ rule",
        ),
        (
            "Building-automation interface",
            "yes" if _interfaces(idx) else "no",
            "; ".join(_interfaces(idx)) or "—",
            "AHJ rule",
        ),
    ]
    return ReportTable("Permit scope", ("Permit", "Required", "Scope", "Basis"), tuple(rows))


def inspection_table(idx: SiteIndex) -> ReportTable:
    rows: list[tuple[str, ...]] = [
        ("Power", "1", "Underground / slab (if any)", "trench depth, raceway, warning tape before backfill"),
        ("Power", "2", "Rough-in", "raceways, boxes, supports, EGC continuity, conductor sizes and fill before cover"),
    ]
    if idx.site.feeders:
        rows.append(("Power", "3", "Feeders and panels", "feeder OCPD and conductors, panel labelling, working space"))
    rows.append(
        (
            "Power",
            str(len(rows) + 1),
            "Final",
            "EVSE listed and installed per instructions, OCPD ratings, GFCI test, disconnects lockable, "
            "EMS marking and setpoint verified (750.30(C)), load-management demonstration",
        )
    )
    if _lv_needed(idx):
        rows += [
            ("Low-voltage", "1", "Rough-in", "comms pathway separated from power, cable type and listing, supports"),
            ("Low-voltage", "2", "Final", "terminations, labelling, cable test results, controller link to each EVSE"),
        ]
    return ReportTable("Inspection sequence", ("Permit", "Step", "Inspection", "What is checked"), tuple(rows))


def classification_table(idx: SiteIndex) -> ReportTable:
    rows = []
    lv_needed = _lv_needed(idx)
    for evse in idx.site.evse:
        ems = [e.id for e in idx.ems_by_node.get(evse.circuit, [])]
        circuit = idx.circuits.get(evse.circuit)
        if circuit is not None:
            ems += [e.id for f in idx.upstream_feeders(circuit.panel) for e in idx.ems_by_node.get(f.id, [])]
            ems += [e.id for e in idx.ems_by_node.get(circuit.panel, [])]
        ems += [e.id for e in idx.ems_by_node.get("service", [])]
        wired = evse.comms.medium in WIRED and evse.comms.routing != "none"
        listed = [str(s) for s in evse.listing] or [f"no listing given ({expected_listing(evse)} expected)"]
        standards = ["NEC 625", *listed]
        if evse.smart:
            standards += ["SAE J2953", "IEEE 519"]
        rows.append(
            (
                evse.id,
                "smart" if evse.smart else "conventional",
                _modulation(evse),
                f"{evse.comms.medium.value}" + (" cable" if wired else ""),
                ", ".join(dict.fromkeys(ems)) or "none",
                "power + low-voltage" if wired and lv_needed else "power",
                ", ".join(dict.fromkeys(standards)),
            )
        )
    return ReportTable(
        "EVSE classification (conventional vs smart)",
        ("EVSE", "Class", "Output modulation", "Comms wiring", "Load management", "Permits", "Standards"),
        tuple(rows),
    )


def _modulation(evse: Evse) -> str:
    """How a current limit reaches the car: the J1772 pilot for AC, the charger's own DC output for DC."""
    if not evse.smart:
        return "no (fixed output)" if evse.dc else "no (fixed pilot)"
    if evse.dc:
        return "yes (OCPP limit → DC output power, CCS/CHAdeMO)"
    return "yes (OCPP current limit → J1772 pilot)"


def _count(n: int, noun: str) -> str:
    """`1 feeder`, `2 feeders`, `0 feeders`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
