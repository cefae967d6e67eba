"""One evsite node in a cluster: its NATS connection, its lease, and the buckets and stream it shares.

The engines do the agreeing: NATS JetStream orders every write to a key (its revision), a write
with an expected last revision is a compare-and-set, and a bucket's TTL removes a key nobody renews.
Nothing here votes, counts or elects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from evsite.cluster import names

log = logging.getLogger(__name__)


def redacted(url: str) -> str:
    """A NATS URL fit for logs and consoles: any user and password in it replaced by `***`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def default_node_id() -> str:
    """Host name, process id and a random suffix: unique even for two processes started in one second."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ClusterSettings:
    """How a node joins its cluster."""

    nats_url: str
    node_id: str = ""
    lease_s: float = 6.0
    """Leader and node lease (bucket TTL). A dead leader's site is led again within about lease_s + retry_s."""
    retry_s: float = 1.0
    """How often a follower tries to take a site whose leader key has expired."""
    command_timeout_s: float = 10.0
    """How long a leader waits for the node holding a charger to answer a setpoint."""
    event_history_s: float = 3600.0
    """How long the events stream keeps what chargers reported (a new leader replays the last of each)."""
    namespace: str = "evsite"
    """Prefix of every bucket, stream and subject (two clusters can share one NATS server)."""
    lead: bool = True
    """Stand for site leadership; False makes a gateway-only node (it holds sockets, runs no load manager)."""

    def __post_init__(self) -> None:
        if not self.node_id:
            object.__setattr__(self, "node_id", default_node_id())
        if self.lease_s < 1.0 or self.retry_s <= 0 or self.retry_s > self.lease_s:
            raise ValueError("cluster lease must be ≥ 1 s and the retry period in (0, lease]")
        names.Names(self.namespace)  # raises ValueError for a namespace NATS cannot carry

    @property
    def renew_s(self) -> float:
        """Leases are renewed three times per lease, so one lost renewal does not lose the lease."""
        return self.lease_s / 3


class ClusterNode:
    """The NATS side of a node: connection, KV buckets, events stream, and the node's own lease."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.names = names.Names(settings.namespace)
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.owners: KeyValue | None = None
        self.leaders: KeyValue | None = None
        self.nodes: KeyValue | None = None
        self.info: dict[str, Any] = {}
        """What the node's lease record says about it (sites, OCPP URL); `cluster status` shows it."""
        self._heartbeat: asyncio.Task[None] | None = None
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        """Called after NATS comes back (the gateway records again what it claimed during the outage)."""

    async def start(self) -> None:
        s = self.settings
        # Keep reconnecting for ever: a NATS outage degrades the cluster, it must not stop the node.
        try:
            # Bounded at start (with unlimited reconnects nats-py would retry the first connect for ever).
            connect = nats.connect(
                s.nats_url,
                name=f"evsite {self.node_id}",
                connect_timeout=3,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                reconnected_cb=self._reconnected,
            )
            self.nc = await asyncio.wait_for(connect, 10)
        except Exception as exc:  # NoServersError, bad URL: say which service is missing
            raise ConnectionError(f"cannot reach NATS at {redacted(s.nats_url)}: {exc!r}") from None
        self.js = self.nc.jetstream(timeout=5.0)
        self.owners = await self._bucket(self.names.owners_bucket, ttl=None, history=1)
        self.leaders = await self._bucket(self.names.leaders_bucket, ttl=s.lease_s, history=1)
        self.nodes = await self._bucket(self.names.nodes_bucket, ttl=s.lease_s, history=1)
        config = StreamConfig(
            name=self.names.events_stream,
            subjects=[self.names.events_all],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=s.event_history_s,
            max_msgs_per_subject=16,
        )
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(config)
        await self._renew_node()
        self._heartbeat = asyncio.create_task(self._beat(), name="cluster-heartbeat")
        log.info("cluster node %s joined %s", self.node_id, redacted(s.nats_url))

    async def _reconnected(self) -> None:
        log.info("cluster node %s: NATS is back", self.node_id)
        for callback in self.on_reconnect:
            try:
                await callback()
            except Exception:
                log.exception("after NATS reconnected")

    async def _bucket(self, name: str, *, ttl: float | None, history: int) -> KeyValue:
        assert self.js is not None
        try:
            kv = await self.js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            kv = await self.js.create_key_value(KeyValueConfig(bucket=name, ttl=ttl, history=history))
        status = await kv.status()
        ttl_now = status.ttl or None
        if ttl is not None and (ttl_now is None or abs(float(ttl_now) - ttl) > 1e-3):
            raise ValueError(f"bucket {name} has TTL {ttl_now} s, this node expects {ttl} s: use one --cluster-lease")
        return kv

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.nc is not None:
            with contextlib.suppress(Exception):
                assert self.nodes is not None
                await self.nodes.delete(names.token(self.node_id))
            with contextlib.suppress(Exception):
                await self.nc.drain()
            self.nc = None

    async def _renew_node(self) -> None:
        assert self.nodes is not None
        record = {"node": self.node_id, "at": time.time(), **self.info}
        await self.nodes.put(names.token(self.node_id), orjson.dumps(record))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_s)
            try:
                await self._renew_node()
            except Exception as exc:  # NATS down: the node keeps serving its own sockets
                log.warning("cluster heartbeat failed: %r", exc)

    @property
    def client(self) -> Client:
        assert self.nc is not None, "not started"
        return self.nc

    @property
    def jetstream(self) -> JetStreamContext:
        assert self.js is not None, "not started"
        return self.js
