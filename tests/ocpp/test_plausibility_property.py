"""Property: whatever numbers chargers report, no setpoint exceeds what the site's limits allow once every
other charger is counted at its worst case.

Random readings (finite, infinite, NaN, negative, huge, as a charger would write them) for random
chargers of the workplace example go through the plausibility gate into the controller, with random
disconnects and reconnects; after each control cycle, for every port given a non-zero setpoint and every
(node, line) it loads: its setpoint plus the others' worst case stays within the node's limit. A port's
worst case is worked out here from what was sent and read, not taken from the controller:
- its circuit's continuous limit (0.8 × OCPD) when its last reading failed the gate,
- its EVSE maximum when its charger is disconnected,
- otherwise its setpoint: an honest charger follows it (how fast, and what an EV overdrawing costs, is
  the closed-loop enforcement's business and tested with it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evsite.control.controller import Controller
from evsite.control.tree import build_tree
from evsite.ocpp import plausibility
from evsite.runtime.events import ChargerConnected, ConnectorStatus, MeterSample, TransactionEvent
from evsite.site import load_site, topology

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "evsite" / "examples"
SITE = load_site(EXAMPLES / "workplace-20.yaml")
TREE = build_tree(SITE)
N = TREE.n_ports
BOUNDS = {e.id: plausibility.Bounds.for_evse(SITE, e) for e in SITE.evse}
CIRCUIT_A = {e.id: topology.continuous_a(SITE.circuit(e.circuit).ocpd_a) for e in SITE.evse}
EVSE_A = {e.id: e.max_current_a for e in SITE.evse}
ROWS, COLS = TREE.incidence()

readings = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # 'nan', 'inf', '-inf', 1e+308, -5e-324 ...
    st.floats(min_value=-600, max_value=600).map(lambda v: f"{v:.1f}"),
    st.sampled_from(["inf", "-Infinity", "NaN", "-500", "1e6", "1e12", "0", "48", "75", "75.1"]),
)
steps = st.lists(
    st.tuples(st.integers(0, N - 1), st.sampled_from(["read", "read", "read", "read", "drop", "back"]), readings),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_no_setpoint_exceeds_the_limits_given_the_others_worst_case(plan: list[tuple[int, str, str]]) -> None:
    c = Controller(SITE, TREE)
    now = 1_000_000.0
    for p, port in enumerate(TREE.ports):
        c.observe(ConnectorStatus(port.charge_point_id, port.connector_id, "Charging"), now)
        c.observe(TransactionEvent(port.charge_point_id, port.connector_id, p + 1, "started", "T", 0.0), now)
    bad = np.zeros(N, dtype=bool)
    offline = np.zeros(N, dtype=bool)
    setpoints = np.zeros(N)
    limits = TREE.limits.copy()
    for p, action, text in plan:
        now += 2.0
        port = TREE.ports[p]
        cp = port.charge_point_id
        if action == "drop":
            c.observe(ChargerConnected(cp, False), now)
            offline[p] = True
        elif action == "back":
            c.observe(ChargerConnected(cp, True), now)
            offline[p] = False
        else:
            value, flag = plausibility.check_value("Current.Import", "A", "Raw", text, BOUNDS[cp])
            at = datetime.fromtimestamp(now, UTC)
            if flag is not None:
                c.observe(MeterSample(cp, port.connector_id, at, implausible=True), now)
                bad[p] = True
            else:
                assert value is not None
                c.observe(MeterSample(cp, port.connector_id, at, current_a={"L1": value}), now)
                bad[p] = False
            offline[p] = False  # a reading means it is connected
        new, send = c.decide(limits, now)
        for q in send:
            c.begin_send(int(q), float(new[q]))
            c.record_result(int(q), float(new[q]), True, now)
            setpoints[q] = new[q]
        assert np.all(np.isfinite(new)), new
        worst = setpoints.copy()
        worst = np.where(bad, [CIRCUIT_A[pt.charge_point_id] for pt in TREE.ports], worst)
        worst = np.where(offline, np.maximum(worst, [EVSE_A[pt.charge_point_id] for pt in TREE.ports]), worst)
        load = TREE.node_load(worst).ravel()
        cap = limits.ravel()
        for q in np.flatnonzero((setpoints > 0) & ~bad & ~offline):  # the others count at their worst already
            rows = ROWS[np.equal(COLS, q)]
            others = load[rows] - worst[q]
            assert np.all(setpoints[q] + others <= cap[rows] + 1e-6), (
                f"port {TREE.ports[q].key} at {setpoints[q]} A with the others' worst case {others} "
                f"over the limits {cap[rows]} of {[TREE.node_ids[r // 3] for r in rows]}; plan {plan}"
            )
