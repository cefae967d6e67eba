"""The OCPP central system (1.6J and 2.0.1 on one port): WebSocket server, charger admission and the operator API.

`CentralSystem` is an object with async `start()`/`stop()` so that the API server and the control
loop can run in the same process; it implements `ChargerCommands` for the load manager and
publishes what chargers report on the `EventBus`.

Admission happens during the WebSocket handshake (before any OCPP traffic):
- URL `ws[s]://host:port/ocpp/{id}` or `/{id}`; an id that is neither in the site model nor
  registered earlier gets 404 unless unknown chargers are accepted.
- Security profile 1/2 (1.6 security whitepaper): HTTP Basic auth with user = charge point id
  and a per-charger password stored hashed; a wrong or missing password gets 401. Profile 2 adds
  TLS, so a profile-2 charger is refused (403) on a server without TLS rather than downgraded.
  Profile 3 replaces the password by a TLS client certificate whose CN is the charge point id.
- Subprotocol: OCPP 2.0.1 and 1.6 share the port, URL forms and admission. A client offering
  `ocpp2.0.1` gets it (preferred, Part 4 §3.1.2), else `ocpp1.6`; one offering neither gets the
  handshake completed without a Sec-WebSocket-Protocol header and the connection closed at once, as
  OCPP-J 1.6 §3.1.2 requires. The version picks the session class; the rest of evsite does not care.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from evsite.control.failsafe import safe_default_limits
from evsite.ocpp import plausibility, validate
from evsite.ocpp.auth import parse_basic_auth, verify_password
from evsite.ocpp.certs import peer_common_name
from evsite.ocpp.connection import V16, RpcConnection
from evsite.ocpp.errors import NotConnected
from evsite.ocpp.profiles import UNKNOWN_CHARGER_MAX_A, FailsafeLimits, crude_safe_limits, unknown_charger_limit
from evsite.ocpp.v16.session import ChargePointSession, iso
from evsite.ocpp.v201 import validate as validate201
from evsite.ocpp.v201.session import SUBPROTOCOL as SUBPROTOCOL_201
from evsite.ocpp.v201.session import StationSession
from evsite.runtime.events import ChargerConnected, EventBus, FailsafeState, SetpointResult, utcnow
from evsite.site.model import Evse, Site, TagAssignment
from evsite.store.ocpp import OcppStore

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
SUBPROTOCOLS = (SUBPROTOCOL_201, SUBPROTOCOL)
"""What we speak, in order of preference."""
TX_OWNER_CACHE = 10_000
"""Transaction owners kept in memory (oldest dropped first), so the ownership check rarely reads the store."""


@dataclass(frozen=True)
class ServerSettings:
    """Run-time settings; `from_site` takes the defaults from the site's `control` section."""

    host: str = "127.0.0.1"
    port: int = 9000
    accept_unknown: bool = False
    unknown_status: str = "Pending"
    heartbeat_interval_s: int = 300
    call_timeout_s: float = 30.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    close_timeout_s: float = 10.0
    max_message_bytes: int = 256 * 1024
    ssl: ssl.SSLContext | None = None
    min_security_profile: int = 0
    lift_lease_s: float = 120.0
    reconnect_setup_delay_s: float = 2.0
    compression: bool = False
    open_authorization: bool = False
    """Free vend: id tags we do not know are Accepted (known Blocked/Expired tags are still refused)."""
    clock_ahead_s: float = 900.0
    """A charger timestamp more than this ahead of our clock is flagged (drift beyond what NTP-less
    chargers show between BootNotifications, which set their clock)."""
    clock_behind_s: float = 7 * 86_400.0
    """A charger timestamp more than this behind our clock is flagged: chargers queue transaction
    messages while offline, so a few days back is normal; a week is a broken clock or a forged time."""
    time_scale: float = 1.0
    """Site seconds per real second: 1 for a real site; a demo's simulated EVs deliver energy `speed`
    times faster, which the energy-rate check must allow (or it flags every sped-up reading)."""

    @classmethod
    def from_site(cls, site: Site | None, **overrides: Any) -> ServerSettings:
        base = cls()
        if site is not None:
            control = site.control
            base = replace(
                base,
                accept_unknown=control.accept_unknown_chargers,
                unknown_status=control.unknown_charger_status,
                heartbeat_interval_s=control.heartbeat_interval_s,
                call_timeout_s=control.call_timeout_s,
            )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


class ConnectionObserver(Protocol):
    """Told when a charger's WebSocket opens and closes (the cluster records ownership with it; #16).

    Both calls must return at once (spawn any I/O): they run on the connection's path. `close` ends that
    connection with a reason, for a charger that has since connected to another node.
    """

    def opened(self, cp_id: str, conn: object, close: Callable[[str], Awaitable[None]]) -> None: ...

    def closed(self, cp_id: str, conn: object) -> None: ...


def charge_point_id(path: str) -> str | None:
    """The charge point id from `/ocpp/{id}` or `/{id}` (percent-decoded), None if the path is neither."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) == 2 and parts[0] == "ocpp":
        cp_id = unquote(parts[1])
    elif len(parts) == 1:
        cp_id = unquote(parts[0])
    else:
        return None
    return cp_id if 0 < len(cp_id) <= 48 and cp_id.isprintable() else None


class CentralSystem:
    """OCPP 2.0.1 and 1.6J central system for one site (implements `ChargerCommands`)."""

    def __init__(
        self,
        store: OcppStore,
        site: Site | None = None,
        *,
        bus: EventBus | None = None,
        settings: ServerSettings | None = None,
        failsafe: FailsafeLimits | None = None,
        observer: ConnectionObserver | None = None,
    ) -> None:
        self.store = store
        self.observer = observer
        self.site = site
        self.bus = bus or EventBus()
        self.settings = settings or ServerSettings.from_site(site)
        self.evse_by_id: dict[str, Evse] = {e.id: e for e in site.evse} if site else {}
        self.sessions: dict[str, ChargePointSession] = {}
        self._tx_owners: dict[int, str | None] = {}
        self.gate = plausibility.Gate(
            self.settings.clock_ahead_s, self.settings.clock_behind_s, time_scale=self.settings.time_scale
        )
        """The plausibility gate; `gate.counts` are the implausible inputs seen, by code (for metrics)."""
        self.id_tags: dict[str, dict[str, Any]] = {}
        self._failsafe_fn = failsafe
        self._failsafe_limits: dict[str, float] = {}
        self.failsafe_refused: set[str] = set()
        """Chargers that refused every fail-safe profile: counted at their nameplate in the others' shares."""
        self._registered: dict[str, dict[str, Any]] = {}
        self._server: Server | None = None
        self._lift_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._controller_until = float("-inf")  # time.monotonic() until which the load manager vouched

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        validate.warm_up()
        validate201.warm_up()
        if self.site is not None:
            await self.store.register_site_chargers((e.id, e.ocpp.password_hash) for e in self.site.evse)
            await self.store.upsert_id_tags(self._site_tags(self.site))
            self._failsafe_limits = self._compute_failsafe(self.site)
        self._registered = {row["id"]: row for row in await self.store.chargers()}
        self.id_tags = await self.store.id_tags()
        if not self.id_tags and not self.settings.open_authorization:
            log.warning(
                "no id tags are defined: every Authorize will be answered Invalid (free vend: open authorization)"
            )
        s = self.settings
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
            select_subprotocol=_select_subprotocol,
            process_request=self._admit,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            close_timeout=s.close_timeout_s,
            max_size=s.max_message_bytes,
            compression="deflate" if s.compression else None,
            ssl=s.ssl,
            max_queue=4,
        )
        if s.lift_lease_s > 0:
            self._lift_task = asyncio.create_task(self._renew_lifts(), name="ocpp-lift-renewal")
        log.info("OCPP 2.0.1/1.6J central system listening on %s:%d", s.host, self.port)

    async def stop(self) -> None:
        if self._lift_task is not None:
            self._lift_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lift_task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> CentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None, "not started"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    # ------------------------------------------------------------------ admission

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        cp_id = charge_point_id(request.path)
        if cp_id is None:
            return connection.respond(404, "Expected /ocpp/{charge point id}\n")
        evse = self.evse_by_id.get(cp_id)
        registered = self._registered.get(cp_id)
        if evse is None and registered is None and not self.settings.accept_unknown:
            # The logging RepeatFilter (evsite.logs) keeps a charger that retries every few seconds to one line.
            log.warning(
                "%s: refused (HTTP 404): not an EVSE id in the site file and unknown chargers are not accepted; "
                "add it under `evse:` or serve with --accept-unknown",
                cp_id,
            )
            return connection.respond(404, "Unknown charge point\n")
        profile = max(self.settings.min_security_profile, evse.ocpp.security_profile if evse else 0)
        if profile >= 2 and self.settings.ssl is None:
            return connection.respond(403, f"This charge point must connect over TLS (security profile {profile})\n")
        if profile >= 3:
            # Profile 3: the TLS client certificate (verified against the client CA) names the charger.
            peer = peer_common_name(connection.transport.get_extra_info("peercert"))
            if peer != cp_id:
                log.warning("%s: refused (client certificate CN %r)", cp_id, peer)
                return connection.respond(403, "A client certificate for this charge point is required\n")
        elif profile >= 1:
            stored = (evse.ocpp.password_hash if evse else None) or (registered or {}).get("password_hash")
            credentials = parse_basic_auth(request.headers.get("Authorization"))
            ok = (
                stored is not None
                and credentials is not None
                and credentials[0] == cp_id
                and await asyncio.to_thread(verify_password, credentials[1], stored)
            )
            if not ok:
                log.warning("%s: refused (HTTP Basic authentication failed)", cp_id)
                response = connection.respond(401, "Authentication required\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="evsite OCPP", charset="UTF-8"'
                return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        cp_id = charge_point_id(ws.request.path if ws.request else "")
        if cp_id is None:
            return
        if ws.subprotocol not in SUBPROTOCOLS:
            await ws.close(1002, f"no common OCPP subprotocol; this central system speaks {', '.join(SUBPROTOCOLS)}")
            return
        previous = self.sessions.get(cp_id)
        if previous is not None:
            # Often a half-open link the charger gave up on: close it without waiting for its handshake.
            log.info("%s: new connection replaces the previous one", cp_id)
            closing = asyncio.create_task(previous.rpc.ws.close(1000, "replaced by a newer connection"))
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)

        v201 = ws.subprotocol == SUBPROTOCOL_201

        def rpc(session: ChargePointSession) -> RpcConnection:
            dialect = validate201.DIALECT if v201 else V16
            return RpcConnection(ws, cp_id, session.handle, call_timeout=self.settings.call_timeout_s, dialect=dialect)

        session = (StationSession if v201 else ChargePointSession)(self, cp_id, rpc)
        self.sessions[cp_id] = session
        peer = ws.remote_address[0] if ws.remote_address else "?"
        log.info("%s: connected from %s (%s)", cp_id, peer, "in the site" if cp_id in self.evse_by_id else "unknown id")
        self.bus.publish(ChargerConnected(cp_id, True))
        if self.observer is not None:
            self.observer.opened(cp_id, session, lambda reason: ws.close(1000, reason))
        try:
            await session.restore()
            await session.rpc.run()
        finally:
            if self.observer is not None:
                self.observer.closed(cp_id, session)
            await session.close()
            if self.sessions.get(cp_id) is session:
                del self.sessions[cp_id]
                self.bus.publish(ChargerConnected(cp_id, False))
            with contextlib.suppress(Exception):
                await self.store.touch(cp_id, utcnow())

    async def set_registration(self, cp_id: str, status: str, password_hash: str | None = None) -> None:
        """Operator decision on a charger (Accepted, Pending, Rejected); applies at its next BootNotification."""
        if status not in ("Accepted", "Pending", "Rejected"):
            raise ValueError(f"registration status {status!r}")
        values: dict[str, Any] = {"registration_status": status}
        if password_hash is not None:
            values["password_hash"] = password_hash
        await self.store.set_charger_fields(cp_id, **values)
        self._registered[cp_id] = {**self._registered.get(cp_id, {"id": cp_id, "password_hash": None}), **values}

    def note_registration(self, cp_id: str, status: str) -> None:
        self._registered.setdefault(cp_id, {"id": cp_id, "password_hash": None})["registration_status"] = status

    # ------------------------------------------------------------------ authorization

    @staticmethod
    def _site_tags(site: Site) -> list[dict[str, Any]]:
        rows = []
        for unit in site.units:
            for tag in unit.tags:
                assert isinstance(tag, TagAssignment)
                rows.append({"id_tag": tag.tag, "status": "Accepted", "unit_id": unit.id})
        return rows

    async def set_id_tag(
        self, id_tag: str, status: str = "Accepted", expiry: datetime | None = None, parent_id_tag: str | None = None
    ) -> None:
        row = {"id_tag": id_tag, "status": status, "expiry_date": expiry, "parent_id_tag": parent_id_tag}
        await self.store.upsert_id_tags([row])
        self.id_tags[id_tag] = {**self.id_tags.get(id_tag, {}), **row}

    def id_tag_info(self, id_tag: str, cp_id: str | None = None, connector_id: int | None = None) -> dict[str, Any]:
        """IdTagInfo for an id tag: Invalid when unknown, Expired after its expiry date, ConcurrentTx
        when starting on (`cp_id`, `connector_id`) while it holds a transaction elsewhere."""
        record = self.id_tags.get(id_tag)
        if record is None:
            if not self.settings.open_authorization:
                return {"status": "Invalid"}
            record = {"status": "Accepted"}
        status = record.get("status") or "Accepted"
        expiry = record.get("expiry_date")
        if status == "Accepted" and expiry is not None and expiry <= utcnow():
            status = "Expired"
        if status == "Accepted" and cp_id is not None and self._tag_in_use(id_tag, cp_id, connector_id):
            status = "ConcurrentTx"
        info: dict[str, Any] = {"status": status}
        if expiry is not None:
            info["expiryDate"] = iso(expiry)
        if record.get("parent_id_tag"):
            info["parentIdTag"] = record["parent_id_tag"]
        return info

    def _tag_in_use(self, id_tag: str, cp_id: str, connector_id: int | None) -> bool:
        """Whether the tag holds a transaction on another connector (one transaction per tag)."""
        for session in self.sessions.values():
            for connector, tag in session.active_tags.items():
                if tag == id_tag and (session.cp_id, connector) != (cp_id, connector_id):
                    return True
        return False

    async def transaction_owner(self, tx_id: int) -> str | None:
        """The charger that started a transaction, None if there is no such transaction.

        Cached, unknown ids included: transaction ids are assigned here (`note_transaction` fills in a new
        one), so an id that does not exist now can only come to exist through this process.
        """
        if tx_id not in self._tx_owners:
            if len(self._tx_owners) >= TX_OWNER_CACHE:
                self._tx_owners.pop(next(iter(self._tx_owners)))
            self._tx_owners[tx_id] = await self.store.transaction_owner(tx_id)
        return self._tx_owners[tx_id]

    def note_transaction(self, tx_id: int, cp_id: str) -> None:
        """A transaction started (or was confirmed) for `cp_id`."""
        self._tx_owners[tx_id] = cp_id

    # ------------------------------------------------------------------ fail-safe limits

    def _compute_failsafe(self, site: Site) -> dict[str, float]:
        fn = self._failsafe_fn or safe_default_limits
        try:
            return {k: float(v) for k, v in fn(site, frozenset(self.failsafe_refused)).items()}
        except Exception:
            log.exception("fail-safe limit calculation failed; using equal shares of the tightest limit")
            return crude_safe_limits(site)

    def failsafe_limit(self, cp_id: str) -> float:
        """Amperes this charger may draw when evsite is unreachable."""
        if cp_id in self._failsafe_limits:
            return self._failsafe_limits[cp_id]
        unknown = sum(1 for c in self.sessions if c not in self.evse_by_id)
        return unknown_charger_limit(self.site, unknown)

    def note_failsafe(self, cp_id: str, installed: bool) -> None:
        """A charger took its fail-safe profile, or refused every form of it.

        A refusal means it will draw its nameplate when evsite is gone: every share is recomputed with it
        counted there, the connected chargers whose share dropped get their fail-safe again at the lower
        value, and a `FailsafeState` event (an alert naming it) goes out. Taking one later clears that; the
        others' higher shares then apply from their next (re)connection.
        """
        if installed != (cp_id in self.failsafe_refused):
            return  # nothing changed
        if installed:
            self.failsafe_refused.discard(cp_id)
        else:
            self.failsafe_refused.add(cp_id)
        lowered: list[str] = []
        if self.site is not None:
            self._failsafe_limits = self._compute_failsafe(self.site)
            for other, session in sorted(self.sessions.items()):
                old = session.failsafe_limit_a
                if other == cp_id or session.failsafe_kind is None or old is None:
                    continue
                if self.failsafe_limit(other) < old - 1e-9:
                    lowered.append(other)
                    session.spawn(session.install_failsafe(), "failsafe")
        evse = self.evse_by_id.get(cp_id)
        nameplate = evse.max_current_a if evse is not None else UNKNOWN_CHARGER_MAX_A
        if installed:
            log.info("%s: took its fail-safe profile after refusing it", cp_id)
        else:
            log.error(
                "%s: refused every fail-safe profile; %d chargers' fail-safe lowered: %s",
                cp_id,
                len(lowered),
                ", ".join(lowered) or "none",
            )
        self.bus.publish(FailsafeState(cp_id, not installed, nameplate, tuple(lowered)))

    async def _renew_lifts(self) -> None:
        """Renew every charger's leases once per lease/3, spread evenly over that time.

        Renewing all at once would put a burst of SetChargingProfile calls (one per charger) on the
        link every lease/3, in the way of the load manager's setpoints.
        """
        period = max(1.0, self.settings.lift_lease_s / 3)
        while True:
            due = [
                s
                for s in self.sessions.values()
                if s.registration == "Accepted" and s.setup_done.is_set() and s.caps.supported
            ]
            if not due:
                await asyncio.sleep(period / 4)  # a charger that just got its first lift is picked up soon
                continue
            gap = period / len(due)
            for session in due:
                await asyncio.sleep(gap)
                if self.sessions.get(session.cp_id) is session:  # still connected
                    session.spawn(session.renew(), "renew")

    # ------------------------------------------------------------------ ChargerCommands and operator API

    def connected_charge_points(self) -> list[str]:
        return sorted(self.sessions)

    def session(self, cp_id: str) -> ChargePointSession:
        """The live session of a charger (raises NotConnected)."""
        session = self.sessions.get(cp_id)
        if session is None:
            raise NotConnected(cp_id)
        return session

    def controller_alive(self, valid_s: float) -> None:
        """The control loop completed a cycle: keep lifting fail-safe caps for `valid_s` more seconds."""
        self._controller_until = max(self._controller_until, time.monotonic() + valid_s)

    def controller_active(self) -> bool:
        """Whether the load manager is alive, so lifts may be renewed (see `ChargePointSession.renew`).

        Alive means its control loop reported a cycle (`controller_alive`) recently. A setpoint also
        vouches for half a lease, so that a lift sent with it survives at least one renewal (callers
        without a control loop, such as tests and operator tools). When the loop stops, renewals stop
        and every lift lapses within about one lease.
        """
        return time.monotonic() < self._controller_until

    async def set_connector_limit(self, charge_point_id: str, connector_id: int, limit_a: float) -> bool:
        self.controller_alive(self.settings.lift_lease_s / 2)
        session = self.sessions.get(charge_point_id)
        if session is None:
            self.bus.publish(SetpointResult(charge_point_id, connector_id, limit_a, False, "not connected"))
            return False
        return await session.set_connector_limit(connector_id, limit_a)

    async def change_availability(self, charge_point_id: str, connector_id: int, kind: str) -> str:
        return await self.session(charge_point_id).change_availability(connector_id, kind)

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> str:
        return await self.session(charge_point_id).remote_stop(transaction_id)

    async def list_chargers(self) -> list[dict[str, Any]]:
        """Every charger we know, with connection state, connectors and open transactions."""
        connectors: dict[str, list[dict[str, Any]]] = {}
        for row in await self.store.connectors():
            connectors.setdefault(row["charger_id"], []).append(row)
        out = []
        for row in await self.store.chargers():
            session = self.sessions.get(row["id"])
            out.append(
                {
                    **row,
                    "connected": session is not None,
                    "connectors": connectors.get(row["id"], []),
                    "open_transactions": dict(session.active_tx) if session else {},
                    "failsafe_limit_a": self.failsafe_limit(row["id"]),
                    "failsafe_profile": session.failsafe_kind if session else None,
                }
            )
        return out


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # None completes the handshake without the header; `_handle` then closes (OCPP-J 1.6 §3.1.2).
    return next((Subprotocol(p) for p in SUBPROTOCOLS if p in offered), None)


__all__ = ["CentralSystem", "ConnectionObserver", "ServerSettings", "charge_point_id"]
