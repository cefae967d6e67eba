"""Metering classification: sites that bill sessions need revenue-grade meters.

Where sessions are billed to tenants or fleets, the meter that measures each session must be
revenue grade (ANSI C12.1 code, C12.20 accuracy classes 0.5/0.2). Where energy is sold to the
public by the kWh, NIST Handbook 44 §3.40 (EVSE) applies as adopted by the state weights and
measures authority, which expects a type-approved (NTEP) device. A billing site that relies on
the informational meters built into most chargers fails.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.findings import Citation, Finding, Status
from evsite.code.rules.context import SiteIndex, num
from evsite.site.model import Evse, Meter, MeterAccuracy

C12 = Citation("ANSI C12.20", "accuracy classes 0.5/0.2 (with ANSI C12.1-2014)", "2015")
HB44 = Citation("NIST Handbook 44", "§3.40 Electric Vehicle Fueling Systems", "2024")


def check(idx: SiteIndex) -> Iterator[Finding]:
    billing = idx.site.billing
    for meter in idx.site.meters:
        chain = _ct_chain(meter, billing.enabled)
        if chain is not None:
            yield chain
    if not billing.enabled:
        yield Finding(
            "site",
            "Metering for billing",
            Status.INFO,
            C12,
            "Billing is not enabled: EVSE meters are informational (energy reports, load management).",
            {"billing_enabled": False},
        )
        return
    informational: list[str] = []
    for evse in idx.site.evse:
        finding = _evse_meter(idx, evse, billing.sells_by_kwh)
        if finding.status is Status.FAIL:
            informational.append(evse.id)
        yield finding
    inputs = {
        "billing_enabled": True,
        "sells_by_kwh": billing.sells_by_kwh,
        "evse": len(idx.site.evse),
        "informational_only": informational,
    }
    if informational:
        yield Finding(
            "site",
            "Metering for billing",
            Status.FAIL,
            HB44 if billing.sells_by_kwh else C12,
            f"Billing is enabled but {len(informational)} of {len(idx.site.evse)} EVSE have only informational "
            "meters: billed energy needs revenue-grade metering (ANSI C12.1/C12.20"
            + (", NIST HB 44 §3.40 for sale by the kWh)." if billing.sells_by_kwh else ")."),
            inputs,
            [f"informational only: {', '.join(informational[:12])}" + (" …" if len(informational) > 12 else "")],
            fix="Install revenue-grade (ANSI C12.20 class 0.5 or better) meters on these EVSE — built-in or "
            "external submeters per EVSE — and, for sale by the kWh, NTEP type-approved devices.",
        )
    else:
        yield Finding(
            "site",
            "Metering for billing",
            Status.PASS,
            HB44 if billing.sells_by_kwh else C12,
            "Every billed EVSE is measured by a revenue-grade meter.",
            inputs,
        )


CT_CLASS = Citation("IEEE C57.13", "metering accuracy classes (0.15: C57.13.6)", "2016")
# CT ratio error bound, % : (from rated current up to the rating factor, in the lower range it covers).
# 0.3 class: 0.3 % at rated current, 0.6 % from 10 %; 0.15 class: 0.15 %, 0.3 % from 5 % (C57.13.6).
CT_ERROR_PCT: dict[str, tuple[float, float, str]] = {
    "0.15": (0.15, 0.3, "5 %"),
    "0.3": (0.3, 0.6, "10 %"),
    "0.6": (0.6, 1.2, "10 %"),
    "1.2": (1.2, 2.4, "10 %"),
}


def _ct_chain(meter: Meter, billing: bool) -> Finding | None:
    """A CT-connected revenue meter: the meter plus its CTs must meet the meter's class.

    ANSI C12.20 classes a meter and its CTs tested together; a meter tested alone plus separately
    classed CTs can be worse than the sum of the two, so without a system test the chain is taken at
    its worst case (meter error + CT error in the CT's lower current range) and compared with the class."""
    if not meter.accuracy.revenue_grade or (meter.ct_ratio is None and meter.ct_accuracy_class is None):
        return None
    element, cls = f"meter {meter.id}", meter.accuracy.tolerance_pct
    bad = Status.FAIL if billing else Status.WARN
    inputs = {"meter_class_pct": cls, "ct_class": meter.ct_accuracy_class, "system_tested": meter.ct_system_tested}
    if meter.ct_system_tested:
        return Finding(
            element, "Metering chain accuracy", Status.PASS, C12,
            f"Meter and CTs are certified together to ANSI C12.20 class {num(cls)}.", inputs,
        )  # fmt: skip
    if meter.ct_accuracy_class is None:
        return Finding(
            element, "Metering chain accuracy", bad, CT_CLASS,
            f"The CT accuracy class is not recorded: the chain cannot be shown to meet class {num(cls)}.", inputs,
            fix="Record ct_accuracy_class (IEEE C57.13) or use a meter and CTs certified together to C12.20.",
        )  # fmt: skip
    rated, low, low_from = CT_ERROR_PCT[meter.ct_accuracy_class]
    worst = cls + low
    steps = [
        f"CT class {meter.ct_accuracy_class}: ±{num(rated)} % at rated current, ±{num(low)} % from {low_from} of rated",
        f"worst case: meter {num(cls)} % + CT {num(low)} % = {num(worst)} % > class {num(cls)} %",
    ]
    return Finding(
        element, "Metering chain accuracy", bad, CT_CLASS,
        f"Meter class {num(cls)} on class {meter.ct_accuracy_class} CTs: the chain is not shown to meet class "
        f"{num(cls)} (worst case {num(worst)} %).", inputs, steps,
        fix="Use a meter and CTs certified together as a system to the C12.20 class (set ct_system_tested), "
        "or high-accuracy 0.15 class CTs with a meter class that leaves room for their error.",
    )  # fmt: skip


def _session_meter(idx: SiteIndex, evse: Evse) -> Meter | None:
    """An external meter that measures this EVSE alone (by id, by its circuit, or named on the EVSE)."""
    if evse.meter_id and evse.meter_id in idx.meters:
        return idx.meters[evse.meter_id]
    for node in (evse.id, evse.circuit):
        for meter in idx.meters_by_node.get(node, []):
            if node == evse.id or len(idx.evse_on(evse.circuit)) == 1:
                return meter
    return None


def _evse_meter(idx: SiteIndex, evse: Evse, sells_by_kwh: bool) -> Finding:
    element = f"evse {evse.id}"
    external = _session_meter(idx, evse)
    accuracy: MeterAccuracy = external.accuracy if external else evse.meter_accuracy
    source = f"meter {external.id}" if external else "built-in meter"
    inputs = {"meter": source, "accuracy": accuracy.value, "tolerance_pct": accuracy.tolerance_pct}
    if not accuracy.revenue_grade:
        return Finding(
            element,
            "Revenue-grade metering",
            Status.FAIL,
            HB44 if sells_by_kwh else C12,
            f"Sessions are billed but the {source} is informational (assumed ±{accuracy.tolerance_pct:g} %).",
            inputs,
            fix="Use an EVSE with a revenue-grade (ANSI C12.20) meter or add a revenue-grade submeter for it.",
        )
    if sells_by_kwh and external is not None and not external.type_approved:
        return Finding(
            element,
            "Revenue-grade metering",
            Status.WARN,
            HB44,
            f"{source} is revenue grade ({accuracy.value}) but not recorded as NTEP type-approved for sale by the kWh.",
            inputs,
            fix="Confirm the NTEP certificate of conformance and set `type_approved: true`.",
        )
    if sells_by_kwh and external is None and evse.meter_type_approved is False:
        return Finding(
            element,
            "Revenue-grade metering",
            Status.FAIL,
            HB44,
            f"The built-in meter is revenue grade ({accuracy.value}) but not type-approved for sale by the kWh.",
            inputs,
            fix="Use an EVSE whose meter holds an NTEP certificate, or add a type-approved submeter.",
        )
    unknown = sells_by_kwh and external is None and evse.meter_type_approved is None
    note = " Confirm its NTEP certificate for sale by the kWh." if unknown else ""
    return Finding(
        element,
        "Revenue-grade metering",
        Status.PASS,
        HB44 if sells_by_kwh else C12,
        f"Billed through the {source}, revenue grade ({accuracy.value}, ±{accuracy.tolerance_pct:g} %).{note}",
        inputs,
    )
