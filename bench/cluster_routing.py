"""Benchmark: what routing a setpoint through the cluster adds (#16).

Two in-process cluster nodes on the local NATS server: the charger's WebSocket is on node A, the site's
leader on node B. Measured per setpoint, same charger, same run, alternating:
- direct: `CentralSystem.set_connector_limit` on A (what a single process does), the baseline;
- routed: the leader's `LeaderCommands.set_connector_limit` on B: NATS request on the charger's subject,
  epoch check on A, the same OCPP call, the reply back.
Target: p99 added ≤ 20 ms. The charger is the `ocpp` package's v16 ChargePoint in this process.

    PYTHONPATH=src .venv/bin/python bench/cluster_routing.py [--rounds 300]

Writes bench/results/cluster_routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.test_cluster import charging, leads, node, until  # the test suite's node and charger

from evsite.cluster import LeaderCommands
from ocpp_harness import write_results

RESULTS = Path(__file__).resolve().parent / "results" / "cluster_routing.json"
NATS_URL = "nats://127.0.0.1:4222"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(rounds: int) -> dict[str, object]:
    import nats

    from evsite.cluster.names import Names

    ns = "bench" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp())
    direct: list[float] = []
    routed: list[float] = []
    try:
        async with node(tmp, NATS_URL, ns, "b") as b:
            await until(lambda: leads(b), 10, "b leads")
            async with node(tmp, NATS_URL, ns, "a") as a, charging(a) as (cp, _):
                await until(lambda: bool(cp.tx_limits()), 10, "first setpoint")
                assert b.election is not None
                # The leader's own loop keeps running; its setpoints are rare on a steady site.
                commands = LeaderCommands(b.election)
                for i in range(rounds):
                    value = 10.0 + (i % 2)
                    t = time.perf_counter()
                    assert await a.central.set_connector_limit("WP-01", 1, value)
                    direct.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    assert await commands.set_connector_limit("WP-01", 1, value + 2)
                    routed.append(time.perf_counter() - t)
    finally:
        nc = await nats.connect(NATS_URL)
        js, n = nc.jetstream(), Names(ns)
        for bucket in (n.owners_bucket, n.leaders_bucket, n.nodes_bucket):
            await js.delete_key_value(bucket)
        await js.delete_stream(n.events_stream)
        await nc.close()
    ms = 1000.0
    result = {
        "rounds": rounds,
        "direct_ms": {"p50": pct(direct, 0.5) * ms, "p99": pct(direct, 0.99) * ms},
        "routed_ms": {"p50": pct(routed, 0.5) * ms, "p99": pct(routed, 0.99) * ms},
        "added_ms": {
            "p50": (pct(routed, 0.5) - pct(direct, 0.5)) * ms,
            "p99": (pct(routed, 0.99) - pct(direct, 0.99)) * ms,
            "mean": (statistics.fmean(routed) - statistics.fmean(direct)) * ms,
            # Paired, round by round: the machine's noise hits both halves of a round alike.
            "paired_p50": pct([r - d for r, d in zip(routed, direct, strict=True)], 0.5) * ms,
            "paired_p99": pct([r - d for r, d in zip(routed, direct, strict=True)], 0.99) * ms,
        },
        "target_added_p99_ms": 20.0,
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    out = asyncio.run(main(args.rounds))
    write_results(RESULTS, out)
    print(out)
