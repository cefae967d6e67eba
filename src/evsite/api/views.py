"""Response shapes shared by the REST resources and the live stream."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from evsite.api.live import LiveState, ManualLimit, now


class LineState(BaseModel):
    line: str
    limit_a: float
    measured_a: float
    allocated_a: float
    headroom_a: float


class NodeState(BaseModel):
    id: str
    kind: str
    parent: str | None
    label: str
    lines: list[LineState]


class ManualLimitView(BaseModel):
    node: str
    limit_a: float
    until: datetime
    set_by: str
    set_at: datetime

    @classmethod
    def of(cls, limit: ManualLimit | None) -> ManualLimitView | None:
        if limit is None:
            return None
        return cls(node=limit.node, limit_a=limit.limit_a, until=limit.until, set_by=limit.set_by, set_at=limit.set_at)


class SignalView(BaseModel):
    kind: str
    node: str
    current_a: dict[str, float]
    source: str
    at: datetime
    until: datetime | None
    stale: bool


class SiteState(BaseModel):
    at: datetime
    source: Literal["control", "derived"]
    nodes: list[NodeState]
    chargers_total: int
    chargers_connected: int
    connectors_charging: int
    site_power_kw: float
    manual_limit: ManualLimitView | None
    dr_active: bool
    signals: list[SignalView]
    active_alerts: int
    parts: dict[str, bool]


class ConnectorView(BaseModel):
    connector_id: int
    status: str
    error_code: str
    setpoint_a: float | None
    offered_a: float | None
    drawn_a: float
    current_a: dict[str, float]
    power_w: float | None
    energy_wh: float | None
    session_wh: float | None
    transaction_id: int | None
    id_tag: str | None
    priority: int
    departure: datetime | None
    energy_request_wh: float | None


class ChargerView(BaseModel):
    id: str
    connected: bool
    circuit: str
    lines: list[str]
    phases: int
    max_current_a: float
    make: str | None
    model: str | None
    connectors: list[ConnectorView]


def site_state(live: LiveState) -> SiteState:
    rows = live.node_lines()
    by_node: dict[str, list[LineState]] = {}
    for row in rows:
        by_node.setdefault(row.node, []).append(
            LineState(
                line=row.line,
                limit_a=row.limit_a,
                measured_a=row.measured_a,
                allocated_a=row.allocated_a,
                headroom_a=round(row.limit_a - row.measured_a, 2),
            )
        )
    nodes = [
        NodeState(id=n.id, kind=n.kind, parent=n.parent, label=n.label, lines=by_node.get(n.id, [])) for n in live.nodes
    ]
    known = {n.id for n in live.nodes}
    if "allocation" in by_node and "allocation" not in known:  # the EV allocation between service and panels
        nodes = [n.model_copy(update={"parent": "allocation"}) if n.parent == "service" else n for n in nodes]
    nodes += [
        NodeState(id=node, kind=node, parent="service", label=node.capitalize(), lines=lines)
        for node, lines in by_node.items()
        if node not in known
    ]
    at = now()
    signals = [
        SignalView(
            kind=s.kind, node=s.node, current_a=dict(s.current_a), source=s.source, at=s.at, until=s.until,
            stale=s.stale,
        )
        for s in live.signals.values()
    ]  # fmt: skip
    dr_active = any(
        s.kind == "dr_limit" and s.current_a and (s.until is None or s.until > at) for s in live.signals.values()
    )
    demand_response = live.runtime.demand_response
    if demand_response is not None:
        dr_active = dr_active or any(e.status == "active" and e.opt == "optIn" for e in demand_response.events())
    power = sum(c.power_w or 0.0 for c in live.connectors.values() if c.transaction_id is not None)
    return SiteState(
        at=at,
        source="control" if live.runtime.control is not None else "derived",
        nodes=nodes,
        chargers_total=len(live.site.evse),
        chargers_connected=sum(1 for v in live.connected.values() if v),
        connectors_charging=sum(1 for c in live.connectors.values() if c.status == "Charging"),
        site_power_kw=round(power / 1000, 2),
        manual_limit=ManualLimitView.of(live.manual_limit),
        dr_active=dr_active,
        signals=signals,
        active_alerts=sum(1 for a in live.alerts.values() if a.active),
        parts=dict(live.runtime.parts),
    )


def charger_views(live: LiveState, only: str | None = None) -> list[ChargerView]:
    views = []
    for evse in live.site.evse:
        if only is not None and evse.id != only:
            continue
        connectors = []
        for connector in evse.connectors:
            c = live.connectors[(evse.id, connector.id)]
            connectors.append(
                ConnectorView(
                    connector_id=connector.id, status=c.status, error_code=c.error_code,
                    setpoint_a=live.setpoint(evse.id, connector.id), offered_a=c.offered_a, drawn_a=c.drawn_a,
                    current_a=c.current_a, power_w=c.power_w, energy_wh=c.energy_wh, session_wh=c.session_wh,
                    transaction_id=c.transaction_id, id_tag=c.id_tag, priority=c.priority, departure=c.departure,
                    energy_request_wh=c.energy_request_wh,
                )
            )  # fmt: skip
        views.append(
            ChargerView(
                id=evse.id,
                connected=live.connected.get(evse.id, False),
                circuit=evse.circuit,
                lines=[str(x) for x in live.site.circuit(evse.circuit).lines],
                phases=evse.phases,
                max_current_a=evse.max_current_a,
                make=evse.make,
                model=evse.model,
                connectors=connectors,
            )
        )
    return views
