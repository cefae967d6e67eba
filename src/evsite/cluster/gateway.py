"""The gateway role: the WebSockets this node holds, their ownership, their commands and their events.

- Ownership. When a charger's WebSocket opens here, its key in the owners bucket is written with this
  node's id; the write's revision orders it against every other node's. A node that sees a newer
  revision of a key it holds closes its socket (the charger has reconnected elsewhere). When the socket
  closes, the key is deleted only if it is still ours (compare-and-set on our revision).
- Commands. While it holds a charger the node answers requests on the charger's own subject. A
  setpoint carries the epoch of the leader that computed it; one older than the newest epoch this node
  has seen for the site is refused, so a deposed leader can never raise a charger.
- Events. What this node's chargers report is published on the site's JetStream subjects, where the
  site's leader (on any node) reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyWrongLastSequenceError

from evsite.cluster import codec, names
from evsite.cluster.node import ClusterNode
from evsite.errors import InputError
from evsite.runtime.events import ChargerCommands, ChargerConnected, EventBus, SetpointResult

log = logging.getLogger(__name__)

CloseFn = Callable[[str], Awaitable[None]]
MAX_COMMAND_BYTES = 1024


@dataclass
class _Claim:
    conn: object
    close: CloseFn
    revision: int = 0
    subscription: Subscription | None = None


def parse_command(data: bytes) -> tuple[int, float, int]:
    """(connector id, limit in A, epoch) from a setpoint request; InputError if it is not one."""
    if len(data) > MAX_COMMAND_BYTES:
        raise InputError("command too large")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InputError("command is not JSON") from None
    if not isinstance(raw, dict) or set(raw) != {"connector_id", "limit_a", "epoch"}:
        raise InputError("command needs exactly connector_id, limit_a and epoch")
    connector, limit, epoch = raw["connector_id"], raw["limit_a"], raw["epoch"]
    if not (isinstance(connector, int) and not isinstance(connector, bool) and 0 <= connector <= 1000):
        raise InputError("connector_id must be an integer 0..1000")
    if not (isinstance(limit, int | float) and not isinstance(limit, bool) and 0 <= limit <= 1000):
        raise InputError("limit_a must be a number 0..1000")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0):
        raise InputError("epoch must be a positive integer")
    return connector, float(limit), epoch


class Gateway:
    """Ownership, commands and events of the chargers connected to this node, for one site.

    `opened`/`closed` are called by the OCPP server (see `evsite.ocpp.server.ConnectionObserver`);
    they never block it: the NATS work runs in tasks, and a NATS outage leaves the sockets served.
    """

    def __init__(self, node: ClusterNode, site: str, chargers: ChargerCommands, bus: EventBus) -> None:
        self.node = node
        self.site = site
        self.chargers = chargers
        self.bus = bus
        self.claims: dict[str, _Claim] = {}
        self.epoch = 0
        """The newest leader epoch seen for this site (from the leaders bucket and from commands)."""
        self.refused = 0
        """Setpoints refused for a stale epoch (for metrics and tests)."""
        self.applied: dict[int, int] = {}
        """Setpoints passed on to a charger, by the epoch they carried (the newest 16 epochs)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._lock: dict[str, asyncio.Lock] = {}
        self._taken: set[str] = set()
        """Chargers another node took over: their disconnect here is not news for the leader."""

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        nc, n = self.node.client, self.node.names
        assert self.node.owners is not None and self.node.leaders is not None
        await self._refresh_epoch()  # know the site's epoch before the first charger is served
        owners = await self.node.owners.watch(f"{names.token(self.site)}.>", ignore_deletes=True)
        leaders = await self.node.leaders.watch(names.leader_key(self.site), ignore_deletes=True)
        self._loops = [
            asyncio.create_task(self._watch_owners(owners), name="cluster-owners-watch"),
            asyncio.create_task(self._watch_leader(leaders), name="cluster-leader-watch"),
            asyncio.create_task(self._forward_events(), name="cluster-events-out"),
        ]
        self._subs.append(await nc.subscribe(n.alive_subject(self.site), cb=self._on_alive))
        self.node.on_reconnect.append(self.reclaim)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for cp_id in list(self.claims):
            await self._release(cp_id, self.claims[cp_id].conn)
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ ownership (ConnectionObserver)

    def opened(self, cp_id: str, conn: object, close: CloseFn) -> None:
        self._spawn(self._claim(cp_id, conn, close), f"cluster-claim-{cp_id}")

    def closed(self, cp_id: str, conn: object) -> None:
        self._spawn(self._release(cp_id, conn), f"cluster-release-{cp_id}")

    async def _claim(self, cp_id: str, conn: object, close: CloseFn) -> None:
        async with self._lock.setdefault(cp_id, asyncio.Lock()):
            claim = self.claims.get(cp_id)
            if claim is None or claim.conn is not conn:
                if claim is not None and claim.subscription is not None:  # an older socket's: its close will not
                    with contextlib.suppress(Exception):  # find the claim, so unsubscribe here
                        await claim.subscription.unsubscribe()
                claim = self.claims[cp_id] = _Claim(conn, close)
            assert self.node.owners is not None
            record = orjson.dumps({"node": self.node_id})
            try:
                claim.revision = await self.node.owners.put(names.owner_key(self.site, cp_id), record)
            except Exception as exc:  # NATS down: keep serving the socket, claim again on reconnect
                log.warning("%s: ownership not recorded (%r); serving it locally", cp_id, exc)
            if claim.subscription is None and self.claims.get(cp_id) is claim:
                subject = self.node.names.command_subject(self.site, cp_id)
                claim.subscription = await self.node.client.subscribe(subject, cb=self._command_handler(cp_id))

    async def reclaim(self) -> None:
        """Record again every socket whose ownership could not be written while NATS was away."""
        for cp_id, claim in list(self.claims.items()):
            if not claim.revision:
                self._spawn(self._claim(cp_id, claim.conn, claim.close), f"cluster-reclaim-{cp_id}")

    async def _release(self, cp_id: str, conn: object) -> None:
        async with self._lock.setdefault(cp_id, asyncio.Lock()):
            claim = self.claims.get(cp_id)
            if claim is None or claim.conn is not conn:
                return  # an older connection closing after a newer one opened
            del self.claims[cp_id]
            if claim.subscription is not None:
                with contextlib.suppress(Exception):
                    await claim.subscription.unsubscribe()
            assert self.node.owners is not None
            if claim.revision:
                # Only if still ours: a newer owner elsewhere keeps its record.
                with contextlib.suppress(KeyWrongLastSequenceError, Exception):
                    await self.node.owners.delete(names.owner_key(self.site, cp_id), last=claim.revision)

    async def _watch_owners(self, watcher: Any) -> None:
        prefix = names.token(self.site) + "."
        async for entry in _updates(watcher, "owners"):
            cp_id = names.untoken(entry.key[len(prefix) :])
            claim = self.claims.get(cp_id)
            if claim is None or not claim.revision or entry.revision <= claim.revision:
                continue
            try:
                owner = orjson.loads(entry.value).get("node")
            except (orjson.JSONDecodeError, AttributeError):
                owner = None
            if owner != self.node_id:
                log.info("%s: taken over by node %s; closing our connection", cp_id, owner)
                self._taken.add(cp_id)
                await self._release(cp_id, claim.conn)
                self._spawn(claim.close(f"charger reconnected to node {owner}"), f"cluster-close-{cp_id}")

    @property
    def node_id(self) -> str:
        return self.node.node_id

    # ------------------------------------------------------------------ leader epoch and commands

    def note_epoch(self, epoch: int) -> None:
        self.epoch = max(self.epoch, epoch)

    async def _watch_leader(self, watcher: Any) -> None:
        async for entry in _updates(watcher, "leader"):
            self.note_epoch(leader_epoch(entry.value, entry.revision))

    def _command_handler(self, cp_id: str) -> Callable[[Msg], Awaitable[None]]:
        async def handle(msg: Msg) -> None:
            if cp_id not in self.claims:
                return  # no longer ours: stay silent so the current owner's answer is the one heard
            try:
                connector, limit, epoch = parse_command(msg.data)
            except InputError as exc:
                await _reply(msg, False, f"bad command: {exc}")
                return
            if epoch > self.epoch:
                await self._refresh_epoch()  # a new leader's first command can beat the watch: ask the bucket
            if epoch < self.epoch:
                self.refused += 1
                log.warning("%s: refused %.1f A from a deposed leader (epoch %d < %d)", cp_id, limit, epoch, self.epoch)
                self.bus.publish(SetpointResult(cp_id, connector, limit, False, f"stale epoch {epoch}"))
                await _reply(msg, False, f"stale epoch {epoch} < {self.epoch}")
                return
            if epoch > self.epoch:  # no leader holds that epoch: not from a leader of this site
                log.warning("%s: refused %.1f A with epoch %d, which no leader holds", cp_id, limit, epoch)
                await _reply(msg, False, f"unknown epoch {epoch}")
                return
            self.applied[epoch] = self.applied.get(epoch, 0) + 1
            if len(self.applied) > 16:
                del self.applied[min(self.applied)]
            try:
                accepted = await self.chargers.set_connector_limit(cp_id, connector, limit)
            except Exception as exc:  # the charger's error, timeout or disconnect: not applied
                await _reply(msg, False, f"{exc.__class__.__name__}: {exc}")
                return
            await _reply(msg, bool(accepted), "")

        return handle

    async def _refresh_epoch(self) -> None:
        """Read the site's leader record now (the watch may lag by a message)."""
        assert self.node.leaders is not None
        with contextlib.suppress(Exception):
            entry = await self.node.leaders.get(names.leader_key(self.site))
            if entry.value is not None:
                self.note_epoch(leader_epoch(entry.value, entry.revision or 0))

    async def _on_alive(self, msg: Msg) -> None:
        try:
            raw = orjson.loads(msg.data)
            epoch, valid_s = int(raw["epoch"]), float(raw["valid_s"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if epoch > self.epoch:
            await self._refresh_epoch()
        # Only the current leader vouches for the site: an old or unknown epoch keeps nothing lifted.
        if epoch == self.epoch and 0 < valid_s <= 300:
            self.chargers.controller_alive(valid_s)

    # ------------------------------------------------------------------ events out

    async def _forward_events(self) -> None:
        nc, n = self.node.client, self.node.names
        failing = False
        async with self.bus.subscribe() as queue:
            while True:
                event = await queue.get()
                parts = codec.subject_parts(event)
                if parts is None:
                    continue
                if isinstance(event, ChargerConnected):
                    if event.connected:
                        self._taken.discard(event.charge_point_id)
                    elif event.charge_point_id in self._taken:
                        # Its new node said "connected" already; our late "disconnected" must not undo that.
                        self._taken.discard(event.charge_point_id)
                        continue
                try:
                    # Core publish into the stream's subjects: JetStream stores it without a round trip each.
                    await nc.publish(n.events_subject(self.site, *parts), codec.encode(event))
                    failing = False
                except Exception as exc:  # NATS gone and its buffer full: say so once per outage
                    if not failing:
                        log.warning("events are not reaching the site's leader: %r", exc)
                    failing = True


def leader_epoch(value: bytes, revision: int) -> int:
    """The epoch a leaders-bucket entry stands for: its own revision when created, then carried in renewals."""
    try:
        epoch = orjson.loads(value).get("epoch")
    except (orjson.JSONDecodeError, AttributeError):
        return revision
    return int(epoch) if isinstance(epoch, int) and 0 < epoch <= revision else revision


async def _reply(msg: Msg, accepted: bool, detail: str) -> None:
    if msg.reply:
        with contextlib.suppress(Exception):
            await msg.respond(orjson.dumps({"accepted": accepted, "detail": detail}))


async def _updates(watcher: Any, what: str) -> AsyncIterator[Any]:
    """The entries a KV watcher delivers, forever: deletions and markers skipped, errors logged and retried."""
    while True:
        try:
            entry = await watcher.updates(timeout=None)
        except Exception as exc:
            log.warning("%s watch: %r", what, exc)
            await asyncio.sleep(1.0)
            continue
        if entry is not None and entry.value is not None:
            yield entry
