"""The site's electrical nodes as the API shows them: parents, lines and design limits.

This is the API's read-only view, used to place live measurements on the tree when the load
manager is not running (replay databases, design-time use). Limits, ancestry and phase mapping are
the site topology's (`evsite.site.topology`), the same the load manager enforces.
"""

from __future__ import annotations

from evsite.site import topology
from evsite.site.model import Site
from evsite.site.topology import Node as Node
from evsite.site.topology import chain as ancestors
from evsite.site.topology import site_line_currents as line_currents

SHOWN = ("service", "allocation", "panel", "feeder", "circuit")
"""Node kinds the dashboard draws (chargers and connectors are listed separately)."""

__all__ = ["SHOWN", "Node", "ancestors", "line_currents", "nodes"]


def nodes(site: Site) -> list[Node]:
    """Service, EV allocation, panels, feeders and circuits, parents before children, with their limits."""
    return [n for n in topology.nodes(site) if n.kind in SHOWN]
