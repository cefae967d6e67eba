"""NATS subjects, KV buckets and keys of one cluster.

A charge point id or site name may hold characters that NATS gives a meaning (`.`, `*`, `>`, spaces)
or that KV keys refuse. `token` keeps plain ids readable and hex-encodes any other, behind a `=` that
no plain id starts with, so two different ids never share a subject or a key.

Everything sits under a namespace (default `evsite`), so two clusters (or two tests) can share one
NATS server without seeing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def token(value: str) -> str:
    """One subject token / key part for `value`: itself when plain, else `=` + its UTF-8 in hex."""
    if _PLAIN.fullmatch(value):
        return value
    return "=" + value.encode().hex()


def untoken(tok: str) -> str:
    """The inverse of `token`."""
    return bytes.fromhex(tok[1:]).decode() if tok.startswith("=") else tok


@dataclass(frozen=True)
class Names:
    namespace: str = "evsite"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", self.namespace):
            raise ValueError(f"cluster namespace {self.namespace!r}: lower-case letters, digits and _ (≤ 32)")

    @property
    def owners_bucket(self) -> str:
        """Charger → the node holding its WebSocket (no TTL: a dead owner is known by its node lease)."""
        return f"{self.namespace}_owners"

    @property
    def leaders_bucket(self) -> str:
        """Site → its load manager's node; the bucket TTL is the leader lease, renewed by compare-and-set."""
        return f"{self.namespace}_leaders"

    @property
    def nodes_bucket(self) -> str:
        """Node id → what it serves; the bucket TTL is the node lease, renewed by the node's heartbeat."""
        return f"{self.namespace}_nodes"

    @property
    def events_stream(self) -> str:
        """JetStream stream of what chargers and meters report, per site, for the site's leader."""
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def events_all(self) -> str:
        return f"{self.namespace}.evt.>"

    def command_subject(self, site: str, charger: str) -> str:
        """Where a site's leader sends a charger's setpoints; only the node holding the charger answers."""
        return f"{self.namespace}.cmd.{token(site)}.{token(charger)}"

    def alive_subject(self, site: str) -> str:
        """Where a site's leader says, every control cycle, that it is alive (keeps fail-safe caps lifted)."""
        return f"{self.namespace}.alive.{token(site)}"

    def events_subject(self, site: str, *parts: str) -> str:
        return ".".join([f"{self.namespace}.evt", token(site), *(token(p) for p in parts)])


def owner_key(site: str, charger: str) -> str:
    return f"{token(site)}.{token(charger)}"


def leader_key(site: str) -> str:
    return token(site)
