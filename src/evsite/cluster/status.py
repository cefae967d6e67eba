"""What a cluster looks like now, read from its buckets: nodes, site leaders and epochs, chargers per node."""

from __future__ import annotations

import time
from typing import Any

import orjson
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, NoKeysError

from evsite.cluster import names


async def _entries(nc: Client, bucket: str) -> dict[str, tuple[dict[str, Any], int]]:
    """Key → (decoded value, revision) of every live key in a bucket; {} when the bucket does not exist."""
    js = nc.jetstream(timeout=5.0)
    try:
        kv = await js.key_value(bucket)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return {}
    out = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except Exception:  # expired or deleted between keys() and get()
            continue
        if entry.value:
            try:
                value = orjson.loads(entry.value)
            except orjson.JSONDecodeError:
                value = {"invalid": True}
            out[key] = (value if isinstance(value, dict) else {"invalid": True}, entry.revision or 0)
    return out


async def cluster_status(nc: Client, namespace: str = "evsite") -> dict[str, Any]:
    """Nodes alive (with the age of their last heartbeat), each site's leader and epoch, chargers per node.

    A charger whose recorded owner has no live node lease is listed under `orphaned`: its node died and
    the charger has not reconnected elsewhere yet.
    """
    n = names.Names(namespace)
    now = time.time()
    nodes = {
        value.get("node", names.untoken(key)): {
            "heartbeat_age_s": round(now - float(value.get("at", 0.0)), 1),
            "sites": value.get("sites", []),
            "ocpp_port": value.get("ocpp_port"),
            "chargers": 0,
        }
        for key, (value, _) in (await _entries(nc, n.nodes_bucket)).items()
    }
    sites = {
        names.untoken(key): {"leader": value.get("node"), "epoch": value.get("epoch", revision)}
        for key, (value, revision) in (await _entries(nc, n.leaders_bucket)).items()
    }
    orphaned = []
    for key, (value, _) in (await _entries(nc, n.owners_bucket)).items():
        owner = value.get("node")
        site_tok, _, cp_tok = key.partition(".")
        if owner in nodes:
            nodes[owner]["chargers"] += 1
        else:
            orphaned.append({"site": names.untoken(site_tok), "charger": names.untoken(cp_tok), "node": owner})
    return {"nodes": nodes, "sites": sites, "orphaned": orphaned}
