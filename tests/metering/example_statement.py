"""The annotated example in docs/metering-billing.md: one unit's November 2026 on the multifamily example.

Hand-made sessions chosen so the statement shows every kind of line: a session starting in the repeated
hour when daylight saving time ends (01:27 PDT), a weekday session across the 16:00 peak boundary that sets
the site's demand peak together with a neighbour's, a session that runs past the end of the month, an idle
fee and a credit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from evsite.metering.billing import Adjustment, Biller, BillingRun
from evsite.metering.sessions import Session
from tests.metering.helpers import session, utc


def steady(charger: str, tag: str, tx: str, start: str, hours: float, kw: float, unplug: str, wh0: int) -> Session:
    """Constant power from `start` for `hours`, then idle until `unplug` (UTC); readings every 15 minutes."""
    t0, t1 = utc(start), utc(unplug)
    steps = int(hours * 4)
    points = [(_iso(t0 + timedelta(minutes=15 * i)), wh0 + round(kw * 250 * i)) for i in range(steps + 1)]
    at = t0 + timedelta(minutes=15 * (steps + 1))
    while at < t1:
        points.append((_iso(at), points[-1][1]))
        at += timedelta(minutes=15)
    points.append((unplug, points[-1][1]))
    return session(charger, tag, tx, points)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def example_run() -> BillingRun:
    from tests.metering.helpers import site

    sessions = [
        # Sun 1 Nov: plugged in at 01:27 PDT (08:27Z), 7.2 kW for 1.5 h (into the repeated hour), unplugged 03:30 PST
        steady("MF-P1-01", "TAG-U101", "101", "2026-11-01T08:27:00Z", 1.5, 7.2, "2026-11-01T11:30:00Z", 1_000_000),
        # Tue 17 Nov 15:30–18:00 PST (23:30Z–02:00Z): 0.5 h off-peak, 2 h peak; the month's site peak with U102
        steady("MF-P1-01", "TAG-U101", "102", "2026-11-17T23:30:00Z", 2.5, 7.2, "2026-11-18T02:10:00Z", 1_010_800),
        steady("MF-P1-02", "TAG-U102", "201", "2026-11-18T00:30:00Z", 2.0, 3.6, "2026-11-18T03:00:00Z", 500_000),
        # Mon 30 Nov 22:30 PST (06:30Z) to 02:00 PST 1 Dec: 1.5 h in November, 2 h in December
        steady("MF-P1-01", "TAG-U101", "103", "2026-12-01T06:30:00Z", 3.5, 7.2, "2026-12-01T14:00:00Z", 1_028_800),
    ]
    credit = Adjustment("A1", "U101", "2026-11", "meter test credit", Decimal("-2.00"), refers_to="2026-10")
    # panel meter M-P1 over November (721 h with the extra hour): the 46,800 Wh billed + 0.8 % losses + 15 chargers'
    # standby of 6 W = 46,800 × 1.008 + 64,890 = 112,064.4 Wh
    return Biller(site()).bill(sessions, "2026-11", [credit], {"M-P1": Decimal("112064.4")})
