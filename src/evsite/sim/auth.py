"""Local authorization of a simulated charge point: the Local Authorization List and the cache (1.6 §3.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from evsite.sim.profiles import parse_time


def _accepted(info: dict[str, Any] | None, at: datetime) -> bool:
    if not info or info.get("status") != "Accepted":
        return False
    expiry = parse_time(info.get("expiry_date"))
    return expiry is None or expiry > at


@dataclass
class LocalAuth:
    version: int = 0
    local_list: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_length: int = 1000

    def accepts(self, id_tag: str, use_list: bool = True, use_cache: bool = True) -> bool:
        """Accepted by the local list (which takes priority) or the cache, and not expired."""
        now = datetime.now(UTC)
        if use_list and id_tag in self.local_list:
            return _accepted(self.local_list[id_tag], now)
        return use_cache and _accepted(self.cache.get(id_tag), now)

    def remember(self, id_tag: str, info: dict[str, Any]) -> None:
        """Cache the IdTagInfo the central system returned (Authorize/Start/StopTransaction.conf)."""
        self.cache[id_tag] = info

    def update(self, version: int, update_type: str, entries: list[dict[str, Any]] | None) -> str:
        """SendLocalList: Accepted, Failed or VersionMismatch (1.6 §5.15)."""
        entries = entries or []
        if update_type == "Differential" and version <= self.version:
            return "VersionMismatch"
        new = {} if update_type == "Full" else dict(self.local_list)
        for entry in entries:
            info = entry.get("id_tag_info")
            if info is None:
                new.pop(entry["id_tag"], None)
            else:
                new[entry["id_tag"]] = info
        if len(new) > self.max_length:
            return "Failed"
        self.local_list, self.version = new, version
        return "Accepted"
