"""Communication layer between EVSE and controller: separation from power conductors, wireless paths.

Ethernet or RS-485 cable run to a charger is power-limited (Class 2) or communications wiring and
must not share a raceway or enclosure with power conductors unless the cable is listed and the
installation permitted for it (NEC 2023 725.136(A) for Class 2; 805.133(A)(1) for communications
circuits). PLC over the power conductors needs no separate cabling; cellular and Wi-Fi need none
but deserve a signal survey and a fail-safe current limit for when the link drops.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.findings import Finding, Status, nec
from evsite.code.rules.context import SiteIndex
from evsite.site.model import CommsMedium, Evse

WIRED = {CommsMedium.ETHERNET, CommsMedium.RS485}
_NAMES = {CommsMedium.WIFI: "Wi-Fi", CommsMedium.CELLULAR: "Cellular"}


def check(idx: SiteIndex) -> Iterator[Finding]:
    for evse in idx.site.evse:
        yield comms_finding(evse)


def comms_finding(evse: Evse) -> Finding:
    element = f"evse {evse.id}"
    comms = evse.comms
    inputs = {
        "medium": comms.medium.value,
        "routing": comms.routing,
        "cable": comms.cable,
        "cable_listed_for_power_raceway": comms.cable_listed_for_power_raceway,
    }
    citation = nec("725.136(A), 805.133(A)(1)")
    if comms.medium is CommsMedium.PLC:
        return Finding(
            element,
            "Comms separation",
            Status.PASS,
            citation,
            "Power-line communication: no separate comms cabling to separate.",
            inputs,
        )
    if comms.medium in (CommsMedium.WIFI, CommsMedium.CELLULAR):
        return Finding(
            element,
            "Comms separation",
            Status.INFO,
            citation,
            f"{_NAMES[comms.medium]} path: no comms wiring. Survey the signal at the parking level and keep "
            "a fail-safe default current limit on the charger for link loss.",
            inputs,
        )
    if comms.medium is CommsMedium.NONE:
        return Finding(
            element,
            "Comms separation",
            Status.INFO,
            citation,
            "No communication link: the EVSE cannot take part in load management.",
            inputs,
        )
    if comms.routing == "separate-raceway":
        return Finding(
            element,
            "Comms separation",
            Status.PASS,
            citation,
            f"{comms.cable or comms.medium.value} runs in its own raceway, separated from power conductors.",
            inputs,
        )
    if comms.routing == "shared-raceway" and comms.cable_listed_for_power_raceway:
        return Finding(
            element,
            "Comms separation",
            Status.PASS,
            citation,
            "Comms cable shares the power raceway; the cable is listed for it (e.g. rated for the circuit voltage).",
            inputs,
        )
    if comms.routing == "shared-raceway":
        return Finding(
            element,
            "Comms separation",
            Status.FAIL,
            citation,
            "Comms cable shares a raceway with power conductors and is not listed for it.",
            inputs,
            fix="Run the comms cable in its own raceway (or a barrier-separated compartment), use a cable listed "
            "for the power raceway, or switch to PLC/cellular.",
        )
    return Finding(
        element,
        "Comms separation",
        Status.WARN,
        citation,
        f"Wired medium ({comms.medium.value}) but no routing given.",
        inputs,
        fix="State the comms routing (separate-raceway or shared-raceway with a listed cable).",
    )
