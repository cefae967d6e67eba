"""Communication layer between EVSE and controller: separation from power conductors, wireless paths.

Ethernet or RS-485 run from a site controller to a charger is a Class 2 circuit (NEC 2023 Article 725,
which since 2023 covers only Class 2 and 3; Class 1 moved to Article 724 and the cable rules to 722).
A circuit from a communications utility is a communications circuit (Article 805; Article 800 holds
the general rules since 2020). Either must not share a raceway, box or enclosure with power
conductors unless the Code permits it, e.g. a permanent barrier or listed divider: 725.136(A) for
Class 2, 805.133(A)(1) for communications circuits (2023 numbering, checked in the table audit of
docs/design-check.md). PLC over the power conductors needs no separate cabling; cellular and Wi-Fi
need none but deserve a signal survey and a fail-safe current limit for when the link drops.
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
            "Comms cable shares the power raceway; the site marks the installation as permitted for it (a "
            "permanent barrier or listed divider, or a circuit reclassified and wired as Class 1): the inspector "
            "verifies the listing.",
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
            fix="Run the comms cable in its own raceway or a compartment separated by a permanent barrier or "
            "listed divider, or switch to PLC/cellular.",
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
