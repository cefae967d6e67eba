"""One electrical truth: every consumer reads a node's per-line limit from `evsite.site.topology`.

Generated sites (service, optional EV allocation, panels with and without mains, feeders, circuits
on every line combination, EVSE with one or two connectors, EMS setpoints on random nodes) are fed
to each consumer: the load manager's constraint tree, the replay, the dashboard's topology, both
fail-safe calculations, billing's upstream walk and the synthetic month. Then the two disagreements
the issue measured are checked against the NEC arithmetic written out here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evsite.api import topology as api_topology
from evsite.control.failsafe import safe_default_limits
from evsite.control.replay import Replay
from evsite.control.scenarios import Scenario
from evsite.control.tree import build_tree
from evsite.metering import billing, month
from evsite.ocpp.profiles import crude_safe_limits, unknown_charger_limit
from evsite.site import topology
from evsite.site.model import ServiceSystem, Site

RUN = {"size": "3/0 AWG", "length_ft": 50}
BRANCH = {"size": "6 AWG", "length_ft": 40}
PAIRS = [["L1", "L2"], ["L2", "L3"], ["L3", "L1"]]


@st.composite
def sites(draw: st.DrawFn) -> Site:
    """A valid site of up to three levels of panels with random ratings, mains and EMS caps."""
    system = draw(st.sampled_from(list(ServiceSystem)))
    three = system.is_three_phase
    rating = draw(st.sampled_from([100.0, 200.0, 400.0, 800.0]))
    service: dict[str, Any] = {"system": system.value, "rating_a": rating}
    if draw(st.booleans()):
        service["allocation_a"] = draw(st.floats(20, rating))
    maybe_main = st.one_of(st.none(), st.sampled_from([100.0, 150.0, 200.0, 225.0, 400.0]))
    panels: list[dict[str, Any]] = [
        {
            "id": "P0",
            "fed_by": "service",
            "bus_rating_a": draw(st.sampled_from([100.0, 200.0, 400.0])),
            "main_ocpd_a": draw(maybe_main),
        }
    ]
    feeders: list[dict[str, Any]] = []
    for k in range(1, draw(st.integers(1, 4))):
        source = f"P{draw(st.integers(0, k - 1))}"
        feeders.append(
            {
                "id": f"F{k}",
                "from_panel": source,
                "ocpd_a": draw(st.sampled_from([60.0, 100.0, 200.0])),
                "conductors": RUN,
                "phases": 3 if three else 1,
            }
        )
        panels.append(
            {
                "id": f"P{k}",
                "fed_by": f"F{k}",
                "bus_rating_a": draw(st.sampled_from([100.0, 125.0, 200.0])),
                "main_ocpd_a": draw(maybe_main),
            }
        )
    circuits: list[dict[str, Any]] = []
    evse: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 8))):
        lines = draw(
            st.sampled_from(
                [*PAIRS, ["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L1"]] if three else [["L1", "L2"], ["L1"]]
            )
        )
        ocpd = draw(st.sampled_from([20.0, 40.0, 60.0]))
        circuits.append(
            {
                "id": f"C{i}",
                "panel": f"P{draw(st.integers(0, len(panels) - 1))}",
                "ocpd_a": ocpd,
                "lines": lines,
                "conductors": BRANCH,
            }
        )
        nameplate = draw(st.sampled_from([16.0, 32.0, 48.0]))
        charger: dict[str, Any] = {
            "id": f"E{i}",
            "circuit": f"C{i}",
            "max_current_a": nameplate,
            "phases": 3 if len(lines) == 3 and draw(st.booleans()) else 1,
        }
        if draw(st.booleans()):
            charger["adjustable_setting_a"] = draw(st.floats(6, nameplate))
        if draw(st.booleans()):
            charger["connectors"] = [{"id": 1}, {"id": 2, "max_current_a": draw(st.floats(6, 80))}]
        evse.append(charger)
    node_ids = ["service", *(p["id"] for p in panels), *(f["id"] for f in feeders), *(c["id"] for c in circuits)]
    ems = [
        {"id": f"EMS{j}", "manages": [draw(st.sampled_from(node_ids))], "setpoint_a": draw(st.floats(10, 300))}
        for j in range(draw(st.integers(0, 2)))
    ]
    data = {
        "name": "generated",
        "service": service,
        "panels": panels,
        "feeders": feeders,
        "circuits": circuits,
        "evse": evse,
        "ems": ems,
    }
    return Site.model_validate(data)


def _nec_limit(site: Site, node: topology.Node) -> float:
    """The rule restated from the NEC for one node, independently of the code under test."""
    ems = [e.setpoint_a for e in site.ems if node.id in e.manages]
    if node.kind == "service":
        own = 0.8 * site.service.rating_a  # 230.42(A): continuous load at 125 % → 80 % of the service OCPD
    elif node.kind == "allocation":
        own = float(site.service.allocation_a or math.inf)
    elif node.kind == "panel":
        panel = site.panel(node.id)  # bus at 100 % (an ampacity), main at 80 % (408.36, 215.3)
        own = min(panel.bus_rating_a, 0.8 * panel.main_ocpd_a if panel.main_ocpd_a else math.inf)
    elif node.kind == "feeder":
        own = 0.8 * next(f.ocpd_a for f in site.feeders if f.id == node.id)  # 215.3
    elif node.kind == "circuit":
        own = 0.8 * site.circuit(node.id).ocpd_a  # 210.19(A)(1), 625.41
    elif node.kind == "evse":
        evse = next(e for e in site.evse if e.id == node.id)
        return min(evse.max_current_a, evse.adjustable_setting_a or math.inf)  # what the EVSE may draw
    else:  # a connector: its EVSE's limit, lowered by its own rating
        evse_id, connector = node.id.rsplit("#", 1)
        evse = next(e for e in site.evse if e.id == evse_id)
        rating = next(c.max_current_a for c in evse.connectors if c.id == int(connector)) or math.inf
        return min(evse.max_current_a, evse.adjustable_setting_a or math.inf, rating)
    return min([own, *ems])


def _chain_walk(site: Site, evse_id: str) -> set[str]:
    """The EVSE's upstream nodes by following circuit → panel → feeder → panel ... → service by hand."""
    evse = next(e for e in site.evse if e.id == evse_id)
    circuit = site.circuit(evse.circuit)
    out = {evse.id, circuit.id, "service"}
    panel = site.panel(circuit.panel)
    while True:
        out.add(panel.id)
        if panel.fed_by == "service":
            break
        feeder = next(f for f in site.feeders if f.id == panel.fed_by)
        out.add(feeder.id)
        if feeder.from_panel == "service":
            break
        panel = site.panel(feeder.from_panel)
    if site.service.allocation_a is not None:
        out.add("allocation")
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_every_consumer_reads_the_one_per_line_limit(site: Site) -> None:
    truth = topology.limits(site)
    site_nodes = topology.nodes(site)
    # the one function states the NEC rule
    for node in site_nodes:
        assert node.limit_a == _nec_limit(site, node)

    # load manager: the constraint tree (the controller and the replay both run on it)
    for tree in (build_tree(site), Replay(Scenario("t", site, [], 60.0)).tree):
        assert tree.node_ids == [n.id for n in site_nodes]
        for n, node_id in enumerate(tree.node_ids):
            expected = [truth[node_id].get(line, np.inf) for line in topology.LINES]
            assert tree.limits[n].tolist() == expected, node_id

    # dashboard topology
    shown = api_topology.nodes(site)
    assert {n.id for n in shown} == {n.id for n in site_nodes if n.kind in api_topology.SHOWN}
    for node in shown:
        assert dict.fromkeys(node.lines, node.limit_a) == truth[node.id]

    # fail-safe (both): a charger's limit on a line, summed over every charger under a node, fits the node
    for failsafe in (safe_default_limits(site), crude_safe_limits(site)):
        for node in site_nodes:
            under = [e for e in site.evse if node.id in topology.chain(site_nodes, e.id)]
            for line in node.lines:
                drawn = sum(failsafe[e.id] for e in under if line in topology.limits(site)[e.circuit])
                assert drawn <= node.limit_a + 1e-9, (node.id, line)

    # billing's upstream walk and the synthetic month's panel limits
    for node in site_nodes:
        if node.kind in ("service", "panel", "feeder", "circuit"):
            assert billing._evse_under(site, node.id) == {e.id for e in site.evse if node.id in _chain_walk(site, e.id)}
    margin = site.control.safety_margin_a
    for panel_id, limit in month._panel_limits(site).items():
        upstream = [n.limit_a for n in site_nodes if n.id in topology.chain(site_nodes, panel_id)]
        assert limit == min(upstream) - margin


@settings(max_examples=40, deadline=None)
@given(sites(), st.data())
def test_a_lone_charger_gets_its_tightest_upstream_limit_from_both_failsafes(site: Site, data: st.DataObject) -> None:
    # With one single-connector charger on the site, no sharing blurs the picture: each fail-safe
    # calculation must give exactly the tightest limit on its path, rounded for the pilot.
    charger = data.draw(st.sampled_from(site.evse))
    lone = charger.model_dump() | {"connectors": [{"id": 1}]}
    circuits = [c.model_dump() for c in site.circuits if c.id == charger.circuit]
    alone = Site.model_validate(site.model_dump() | {"evse": [lone], "circuits": circuits})
    site_nodes = topology.nodes(alone)
    tightest = min(n.limit_a for n in site_nodes if n.id in topology.chain(site_nodes, f"{charger.id}#1"))
    expected = topology.pilot_limit_a(tightest)
    assert safe_default_limits(alone)[charger.id] == expected
    assert crude_safe_limits(alone)[charger.id] == expected


def _ten_chargers(panel: dict[str, Any], service_a: float) -> Site:
    """Ten 48 A chargers on 60 A circuits in one panel fed by the service (208Y/120 V, L1-L2)."""
    return Site.model_validate(
        {
            "name": "ten",
            "service": {"system": "208Y/120V", "rating_a": service_a},
            "panels": [{"id": "P", "fed_by": "service", **panel}],
            "circuits": [
                {"id": f"C{i}", "panel": "P", "ocpd_a": 60, "lines": ["L1", "L2"], "conductors": BRANCH}
                for i in range(10)
            ],
            "evse": [{"id": f"E{i}", "circuit": f"C{i}", "max_current_a": 48} for i in range(10)],
        }
    )


def test_a_200_a_bus_under_a_225_a_main_is_180_a_everywhere() -> None:
    # The 225 A main may carry 0.8 × 225 = 180 A continuously; the 200 A bus is not the binding limit.
    # (The dashboard used to show 0.8 × min(bus, main) = 160 A while the controller enforced 180 A.)
    site = _ten_chargers({"bus_rating_a": 200, "main_ocpd_a": 225}, service_a=400)
    tree = build_tree(site)
    assert tree.limits[tree.node_index["P"]].tolist() == [180.0, 180.0, 180.0]
    assert next(n for n in api_topology.nodes(site) if n.id == "P").limit_a == 180.0
    assert set(safe_default_limits(site).values()) == {18.0} == set(crude_safe_limits(site).values())  # 180 / 10


def test_a_200_a_bus_without_a_main_is_200_a_bounded_by_the_service() -> None:
    # No main: the bus rating (an ampacity) applies at 100 %; the OCPD protecting it is upstream.
    # (The fail-safe used to take 80 % of the bus, 160 A, while the controller used 200 A.)
    site = _ten_chargers({"bus_rating_a": 200}, service_a=400)
    tree = build_tree(site)
    assert tree.limits[tree.node_index["P"]].tolist() == [200.0, 200.0, 200.0]
    assert tree.limits[tree.node_index["service"]].tolist() == [320.0, 320.0, 320.0]  # 0.8 × 400 A
    assert set(safe_default_limits(site).values()) == {20.0} == set(crude_safe_limits(site).values())  # 200 / 10
    # the same panel on a 200 A service: the service's 160 A continuous limit is what binds
    small = _ten_chargers({"bus_rating_a": 200}, service_a=200)
    assert set(safe_default_limits(small).values()) == {16.0} == set(crude_safe_limits(small).values())


def test_the_service_carries_80_percent_of_its_rating_continuously() -> None:
    # A 200 A service with no EMS: 200 A × 0.8 = 160 A (230.42(A)); the controller used to allow 200 A.
    site = _ten_chargers({"bus_rating_a": 225}, service_a=200)
    tree = build_tree(site)
    assert tree.limits[tree.node_index["service"]].tolist() == [160.0, 160.0, 160.0]
    assert unknown_charger_limit(site, 1) == 14.5  # 160 A / (10 + 1) chargers = 14.54 → 14.5 A


def test_conversions_follow_the_textbook_formulas() -> None:
    # P = V·I (1φ), P = √3·V_LL·I (balanced 3φ); a 1φ charger on a 3-line circuit draws line to line.
    wye = ServiceSystem.WYE_208_120
    assert topology.watts_per_amp(wye, 1) == 120.0
    assert topology.watts_per_amp(wye, 2) == 208.0
    assert math.isclose(topology.watts_per_amp(wye, 3), 360.27, abs_tol=0.01)
    assert math.isclose(topology.line_current_a(wye, 41.6), 115.47, abs_tol=0.01)
    assert topology.line_current_a(ServiceSystem.SPLIT_PHASE_120_240, 9.6) == 40.0
    assert topology.pilot_limit_a(5.99) == 0.0 and topology.pilot_limit_a(16.05) == 16.0
    assert topology.pilot_limit_a(7.3) == 7.3


def test_controller_and_dashboard_put_a_sample_on_the_same_site_lines() -> None:
    # A 3φ charger on a circuit wired L2-L3-L1: its own L1 is the site's L2 (phase rotation).
    # A 1φ charger on L3-L1 carries its largest reported current on both lines.
    from datetime import UTC, datetime

    from evsite.control.controller import Controller
    from evsite.runtime.events import MeterSample

    site = Site.model_validate(
        {
            "name": "rotation",
            "service": {"system": "208Y/120V", "rating_a": 400},
            "panels": [{"id": "P", "bus_rating_a": 400}],
            "circuits": [
                {"id": "C3", "panel": "P", "ocpd_a": 40, "lines": ["L2", "L3", "L1"], "conductors": BRANCH},
                {"id": "C1", "panel": "P", "ocpd_a": 40, "lines": ["L3", "L1"], "conductors": BRANCH},
            ],
            "evse": [
                {"id": "T", "circuit": "C3", "max_current_a": 32, "phases": 3},
                {"id": "S", "circuit": "C1", "max_current_a": 32},
            ],
        }
    )
    ctrl = Controller(site, build_tree(site))
    at = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    readings = {"T": {"L1": 15.8, "L2": 0.1, "L3": 0.0}, "S": {"L1": 12.0, "L2": -12.5}}
    for port, (cp, current) in enumerate(readings.items()):
        ctrl.observe(MeterSample(cp, 1, at, current_a=current), 0.0)
        evse = next(e for e in site.evse if e.id == cp)
        lines = tuple(str(x) for x in site.circuit(evse.circuit).lines)
        shown = api_topology.line_currents(evse, lines, current)
        controller = {line: float(ctrl.measured[port][topology.LINE_INDEX[line]]) for line in lines}
        assert shown == controller
    assert float(ctrl.measured[0][1]) == 15.8  # T's own L1 on site L2
    assert [float(x) for x in ctrl.measured[1]] == [12.5, 0.0, 12.5]  # S on L3-L1, its largest reading
