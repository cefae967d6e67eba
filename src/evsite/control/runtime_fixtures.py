"""A controller in a busy, realistic state: for benchmarks and scale tests (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from evsite.control.controller import Controller
from evsite.control.tree import ConstraintTree
from evsite.runtime.events import ConnectorStatus
from evsite.site.model import Site


def busy_controller(site: Site, tree: ConstraintTree, seed: int = 0) -> Controller:
    """Every port charging; a third of the 3φ ports carry a 1φ car; some EVs taper; some reductions in flight."""
    rng = np.random.default_rng(seed)
    ctrl = Controller(site, tree)
    at = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    for port in tree.ports:
        ctrl.observe(ConnectorStatus(port.charge_point_id, port.connector_id, "Charging", at=at), 0.0)
    n = tree.n_ports
    sent = np.round(rng.uniform(6, 32, n), 1)
    ctrl.sent[:] = sent
    ctrl.ceiling[:] = np.where(rng.random(n) < 0.1, sent + 8, sent)
    ctrl.changed_at[:] = 0.0
    drawn = np.where(rng.random(n) < 0.2, sent * rng.uniform(0.3, 0.8, n), sent)
    for p, port in enumerate(tree.ports):
        lines = list(port.lines[:1]) if port.three_phase and rng.random() < 0.3 else list(port.lines)
        ctrl.measured[p, lines] = drawn[p]
    ctrl.measured_at[:] = 990.0
    return ctrl
