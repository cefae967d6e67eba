"""The leader role: which node runs a site's load manager, and how its setpoints reach the chargers.

Election is NATS KV compare-and-set with a TTL, not a protocol of our own:
- `create` on the site's key succeeds for exactly one node while the key is absent. Its revision (the
  stream sequence, which only grows) becomes the leader's **epoch**.
- The leader renews with `update(last=revision)` every lease/3. If another write came in between, the
  update fails and the leader steps down. A leader that cannot renew (NATS unreachable, process paused)
  stops sending at once when its local lease runs out, measured from the moment it *sent* the last
  successful renewal, so its own view never outlives the key on the server.
- A dead or paused leader's key expires with the bucket TTL; followers retry `create` every retry_s,
  so a site is led again within lease_s + retry_s (plus one request) of the last renewal.

Why KV rather than a PostgreSQL advisory lock: the lock lives on one database session (it breaks under
PgBouncer transaction pooling and gives no revision to fence with), while the KV revision is a fencing
token for free and the gateways already watch the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError

from evsite.cluster import codec, names
from evsite.cluster.node import ClusterNode
from evsite.errors import InputError
from evsite.runtime.events import EventBus

log = logging.getLogger(__name__)

LeadFn = Callable[["LeaderCommands", EventBus], AbstractAsyncContextManager[Any]]
"""Run the site's load manager for one term: given the fenced command port and the site's event bus."""


class Election:
    """Keep trying to lead one site; while leading, run `lead` and renew the lease."""

    def __init__(self, node: ClusterNode, site: str, lead: LeadFn) -> None:
        self.node = node
        self.site = site
        self.lead = lead
        self.epoch = 0
        self.revision = 0
        self.terms = 0
        """How many times this node became leader (for tests and status)."""
        self._valid_until = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self.leading = asyncio.Event()

    def holds(self) -> bool:
        """Whether this node may act as the site's leader now (a lease it is sure the server still has)."""
        return self.revision > 0 and time.monotonic() < self._valid_until

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"cluster-election-{self.site}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        key = names.leader_key(self.site)
        kv = self.node.leaders
        assert kv is not None
        s = self.node.settings
        while True:
            sent = time.monotonic()
            try:
                revision = await kv.create(key, orjson.dumps({"node": self.node.node_id}))
            except KeyWrongLastSequenceError:
                await asyncio.sleep(s.retry_s)  # somebody leads
                continue
            except Exception as exc:  # NATS unreachable: nobody can be elected through us
                log.debug("election for %s: %r", self.site, exc)
                await asyncio.sleep(s.retry_s)
                continue
            self.epoch = self.revision = revision
            self._valid_until = sent + s.lease_s
            self.terms += 1
            log.info("node %s leads site %s (epoch %d)", self.node.node_id, self.site, self.epoch)
            try:
                await self._term(key)
            except Exception:  # e.g. a JetStream call timing out right after NATS came back: stand again
                log.exception("term of node %s for site %s failed", self.node.node_id, self.site)
                await asyncio.sleep(s.retry_s)
            finally:
                self.revision = 0
                self._valid_until = float("-inf")
                self.leading.clear()
            log.warning("node %s no longer leads site %s (epoch %d)", self.node.node_id, self.site, self.epoch)

    async def _term(self, key: str) -> None:
        """Lead until the lease is lost; on cancellation hand the key back at once (rolling restart)."""
        kv = self.node.leaders
        assert kv is not None
        bus = EventBus()
        commands = LeaderCommands(self)
        try:
            async with self.lead(commands, bus), self._events_in(bus):
                self.leading.set()
                await self._renew(key)
        finally:
            if self.revision:
                with contextlib.suppress(Exception):
                    await asyncio.shield(kv.delete(key, last=self.revision))

    async def _renew(self, key: str) -> None:
        kv = self.node.leaders
        assert kv is not None
        s = self.node.settings
        record = orjson.dumps({"node": self.node.node_id, "epoch": self.epoch})
        while True:
            await asyncio.sleep(max(0.0, min(s.renew_s, self._valid_until - time.monotonic())))
            if not self.holds():
                return
            sent = time.monotonic()
            try:
                async with asyncio.timeout(max(0.1, self._valid_until - sent)):
                    self.revision = await kv.update(key, record, last=self.revision)
            except KeyWrongLastSequenceError:
                self.revision = 0  # somebody else's write: not ours any more
                return
            except Exception as exc:
                log.warning("lease renewal for %s failed: %r", self.site, exc)
                continue
            self._valid_until = sent + s.lease_s

    @contextlib.asynccontextmanager
    async def _events_in(self, bus: EventBus) -> AsyncIterator[None]:
        """Feed the site's events from JetStream into the leader's bus: first the last of each subject
        (what every charger reported last), then everything new."""
        n = self.node.names
        config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)

        async def deliver(msg: Any) -> None:
            try:
                bus.publish(codec.decode(msg.data))
            except InputError as exc:
                log.warning("dropped an event on %s: %s", msg.subject, exc)

        sub = await self.node.jetstream.subscribe(
            n.events_subject(self.site) + ".>", cb=deliver, ordered_consumer=True, config=config
        )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class LeaderCommands:
    """The load manager's `ChargerCommands` on a cluster: each setpoint, with the epoch, to the charger's
    subject, answered by whichever node holds it. Sends nothing once the lease is not certain."""

    def __init__(self, election: Election) -> None:
        self.election = election
        self.node = election.node

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        if not self.election.holds():
            return False
        e = self.election
        payload = orjson.dumps({"connector_id": connector_id, "limit_a": limit_a, "epoch": e.epoch})
        subject = self.node.names.command_subject(e.site, charge_point_id)
        try:
            reply = await self.node.client.request(subject, payload, timeout=self.node.settings.command_timeout_s)
        except (NoRespondersError, NatsTimeout, TimeoutError):
            return False  # not connected anywhere, or its node did not answer
        try:
            return bool(orjson.loads(reply.data)["accepted"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: str) -> str:
        """Not relayed over the cluster yet: the escalation's alert then asks for a manual action."""
        log.warning("cluster: ChangeAvailability for %s#%d is not relayed by the leader", charge_point_id, connector_id)
        return "NotRelayed"

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        """Not relayed over the cluster yet: the escalation's alert then asks for a manual action."""
        log.warning("cluster: RemoteStopTransaction for %s is not relayed by the leader", charge_point_id)
        return "NotRelayed"

    def connected_charge_points(self) -> list[str]:
        return []  # the leader does not hold sockets; the owners bucket says who is connected where

    def controller_alive(self, valid_s: float) -> None:
        """Tell every gateway the site's leader is alive (keeps its chargers' fail-safe caps lifted)."""
        e = self.election
        if not e.holds():
            return
        payload = orjson.dumps({"epoch": e.epoch, "valid_s": valid_s})
        task = asyncio.ensure_future(self.node.client.publish(self.node.names.alive_subject(e.site), payload))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
