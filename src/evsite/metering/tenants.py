"""Id tag → unit, as of the day a session started (tags move between tenants; history is in the site model)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from evsite.errors import EvsiteError
from evsite.site.model import Site, TagAssignment


class UnknownTag(EvsiteError, LookupError):
    """A session whose id tag no unit held on the day it started."""


class SharedTag(LookupError):
    """A session whose id tag two units held on the day it started: held for review, billed to neither."""


class TenantDirectory:
    """Resolves id tags to units with the site's tag history, in the site's local calendar."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.tz = ZoneInfo(site.timezone)
        self._dated = {
            a.tag
            for u in site.units
            for a in u.tags
            if isinstance(a, TagAssignment) and (a.since is not None or a.until is not None)
        }

    def unit_for(self, id_tag: str | None, at: datetime) -> str:
        """The unit holding `id_tag` on the local date of `at`; raises UnknownTag otherwise."""
        if not id_tag:
            raise UnknownTag("session has no id tag")
        day = at.astimezone(self.tz).date()
        holders = self.holders(id_tag, day)
        if len(holders) > 1:
            raise SharedTag(
                f"id tag {id_tag!r} is held by units {', '.join(holders)} on {day}; fix the site file's tag history"
            )
        if not holders:
            held = " (the tag has a dated history, none covering that day)" if id_tag in self._dated else ""
            raise UnknownTag(f"id tag {id_tag!r} belongs to no unit on {day}{held}")
        return holders[0]

    def holders(self, id_tag: str, day: date) -> list[str]:
        """Every unit holding `id_tag` on `day` (more than one only if the site file overlaps assignments)."""
        found: list[str] = []
        for unit in self.site.units:
            for a in unit.tags:
                if not isinstance(a, TagAssignment) or a.tag != id_tag or unit.id in found:
                    continue
                if (a.since is None or a.since <= day) and (a.until is None or day < a.until):
                    found.append(unit.id)
        return found

    def unit_names(self) -> dict[str, str]:
        return {u.id: u.name or u.id for u in self.site.units}
