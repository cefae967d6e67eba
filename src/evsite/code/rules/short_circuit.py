"""Interrupting ratings against the available fault current (110.9, 110.10) and its marking (110.24).

Without a point-to-point study the fault current at every panel is taken as the service's: feeder
impedance only lowers it, so a panel rated for the service value is rated for its own (conservative).
The service value is the utility's available fault current, else the transformer's infinite-bus value
(full-load current / %Z), an upper bound. Neither given: each stated rating is a warning, never a pass.
"""

from __future__ import annotations

from collections.abc import Iterator

from evsite.code.findings import Finding, Status, nec
from evsite.code.rules.context import SiteIndex, num
from evsite.code.rules.ieee519 import short_circuit_a


def check(idx: SiteIndex) -> Iterator[Finding]:
    available, steps = short_circuit_a(idx)
    if available is not None:
        yield Finding(
            "service",
            "Available fault current marking",
            Status.INFO,
            nec("110.24(A)"),
            f"Mark the service equipment with the available fault current, {num(available, 0)} A, and the date "
            "it was determined (not required at dwelling units).",
            {"available_fault_current_a": round(available)},
            steps,
        )
    for panel in idx.site.panels:
        rating = panel.interrupting_rating_a
        element = f"panel {panel.id}"
        rule = nec("110.9, 110.10")
        inputs = {"interrupting_rating_a": rating, "available_fault_current_a": available}
        if rating is None:
            yield Finding(
                element, "Interrupting rating", Status.WARN, rule,
                f"No interrupting rating is given for panel {panel.id}.", inputs,
                fix="Give interrupting_rating_a (the lowest AIC of its breakers or the panel's SCCR).",
            )  # fmt: skip
            continue
        if available is None:
            yield Finding(
                element, "Interrupting rating", Status.WARN, rule,
                f"Panel {panel.id} is rated {num(rating, 0)} A but the available fault current is not known.", inputs,
                fix="Give service.available_fault_current_a (utility letter) or the service transformer.",
            )  # fmt: skip
            continue
        ok = rating >= available - 1e-6
        lines = [
            *steps,
            "at the panel ≤ at the service (feeder impedance only lowers it): the service value is used",
            f"{num(rating, 0)} A {'≥' if ok else '<'} {num(available, 0)} A",
        ]
        yield Finding(
            element,
            "Interrupting rating",
            Status.PASS if ok else Status.FAIL,
            rule,
            f"Panel {panel.id} rated {num(rating, 0)} A against {num(available, 0)} A available.",
            inputs,
            lines,
            None
            if ok
            else f"Use equipment rated at least {num(available, 0)} A, a listed series rating, or show a lower "
            "fault current at this panel with a point-to-point study.",
        )
