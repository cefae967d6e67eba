"""Several evsite nodes as one: NATS KV for charger ownership and site leadership, JetStream for events (#16).

See docs/cluster.md for the design, its guarantees and its failure modes. The names below load on
first use: NATS is an extra (`evsite[cluster]`), and `evsite --help` must run without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evsite.cluster.gateway import Gateway
    from evsite.cluster.leader import Election, LeaderCommands
    from evsite.cluster.node import ClusterNode, ClusterSettings, redacted

_WHERE = {
    "Gateway": "evsite.cluster.gateway",
    "Election": "evsite.cluster.leader",
    "LeaderCommands": "evsite.cluster.leader",
    "ClusterNode": "evsite.cluster.node",
    "ClusterSettings": "evsite.cluster.node",
    "redacted": "evsite.cluster.node",
}

__all__ = ["ClusterNode", "ClusterSettings", "Election", "Gateway", "LeaderCommands", "redacted"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'evsite.cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
