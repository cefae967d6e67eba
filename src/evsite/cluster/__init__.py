"""Several evsite nodes as one: NATS KV for charger ownership and site leadership, JetStream for events (#16).

See docs/cluster.md for the design, its guarantees and its failure modes.
"""

from evsite.cluster.gateway import Gateway
from evsite.cluster.leader import Election, LeaderCommands
from evsite.cluster.node import ClusterNode, ClusterSettings, redacted

__all__ = ["ClusterNode", "ClusterSettings", "Election", "Gateway", "LeaderCommands", "redacted"]
