"""`/metrics` in the Prometheus text exposition format (version 0.0.4).

Written by hand because it is a handful of gauges computed on demand from the live state; the
format is small and stable (https://prometheus.io/docs/instrumenting/exposition_formats/).
"""

from __future__ import annotations

from collections.abc import Iterable

from evsite.api.guard import AuthFailures
from evsite.api.live import LiveState
from evsite.api.views import site_state

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    return lines


CLUSTER_GAUGES = {
    "leader": ("evsite_cluster_leader", "gauge", "1 while this node leads the site's load manager (#16)."),
    "epoch": ("evsite_cluster_epoch", "gauge", "Newest leader epoch this node has seen for the site."),
    "chargers_held": ("evsite_cluster_chargers_held", "gauge", "Chargers whose WebSocket this node holds."),
    "stale_refused": (
        "evsite_cluster_stale_setpoints_refused_total",
        "counter",
        "Setpoints refused for a deposed leader's epoch.",
    ),
}


def _cluster(values: dict[str, float]) -> list[str]:
    lines: list[str] = []
    for key, (name, kind, help_text) in CLUSTER_GAUGES.items():
        if key in values:
            lines += _family(name, kind, help_text, [({}, values[key])])
    return lines


def render(live: LiveState, auth_failures: AuthFailures | None = None) -> str:
    state = site_state(live)
    cycle = live.runtime.control.cycle_time_s() if live.runtime.control else None
    lines: list[str] = []
    lines += _family("evsite_chargers", "gauge", "Chargers in the site model.", [({}, state.chargers_total)])
    lines += _family(
        "evsite_chargers_connected", "gauge", "Chargers connected over OCPP.", [({}, state.chargers_connected)]
    )
    lines += _family(
        "evsite_connectors_charging", "gauge", "Connectors in the Charging state.", [({}, state.connectors_charging)]
    )
    lines += _family(
        "evsite_messages_per_second", "gauge", "Run-time events per second (10 s window).",
        [({}, round(live.messages_per_s(), 3))],
    )  # fmt: skip
    if cycle is not None:
        lines += _family(
            "evsite_allocation_cycle_seconds", "gauge", "Duration of the last allocation cycle.", [({}, cycle)]
        )
    if live.runtime.cluster_metrics is not None:
        lines += _cluster(live.runtime.cluster_metrics())
    node_lines = [(n.id, line) for n in state.nodes for line in n.lines]
    lines += _family(
        "evsite_node_limit_amperes", "gauge", "Limit in force per node and line.",
        [({"node": n, "line": ln.line}, ln.limit_a) for n, ln in node_lines],
    )  # fmt: skip
    lines += _family(
        "evsite_node_measured_amperes", "gauge", "Measured EV current per node and line.",
        [({"node": n, "line": ln.line}, ln.measured_a) for n, ln in node_lines],
    )  # fmt: skip
    lines += _family(
        "evsite_node_headroom_amperes", "gauge", "Limit minus measured current per node and line.",
        [({"node": n, "line": ln.line}, ln.headroom_a) for n, ln in node_lines],
    )  # fmt: skip
    lines += _family(
        "evsite_dr_active", "gauge", "1 while a demand-response limit is in force.", [({}, state.dr_active)]
    )
    lines += _family(
        "evsite_manual_limit_active", "gauge", "1 while an operator limit is in force.",
        [({}, state.manual_limit is not None)],
    )  # fmt: skip
    lines += _family("evsite_alerts_active", "gauge", "Active alerts.", [({}, state.active_alerts)])
    lines += _family("evsite_site_power_kilowatts", "gauge", "EV power on the site.", [({}, state.site_power_kw)])
    failures = auth_failures.counts if auth_failures else {}
    lines += _family(
        "evsite_api_auth_failures_total", "counter", "API requests refused for a missing or unknown token.",
        [({"reason": reason}, failures.get(reason, 0)) for reason in ("missing", "invalid", "token-in-url")],
    )  # fmt: skip
    return "\n".join(lines) + "\n"
