"""The K01 guard: each rule of OCPP 2.0.1 Part 2 K01 that evsite enforces before a SetChargingProfile.

Each case breaks exactly one rule in an otherwise valid profile; the guard must refuse it, and the valid
profile must pass (so a guard that refuses everything fails too).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from evsite.ocpp.profiles import SmartChargingCaps
from evsite.ocpp.v201 import profiles as p201
from evsite.ocpp.v201.profiles import ProfileRuleError, Rate, caps_from_variables, check

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CAPS = SmartChargingCaps(max_stack_level=3, rate_units=("A",), max_periods=4)
LIVE = {1: "TX-1"}


def tx_profile() -> dict[str, Any]:
    return p201.profile(201, 3, "TxProfile", Rate("A", 16.0), start=NOW, transaction_id="TX-1")


def station_max() -> dict[str, Any]:
    return p201.profile(1, 0, "ChargingStationMaxProfile", Rate("A", 32.0), start=NOW)


def tx_default() -> dict[str, Any]:
    return p201.profile(101, 3, "TxDefaultProfile", Rate("A", 10.0), start=NOW)


def edit(make: Callable[[], dict[str, Any]], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    p = copy.deepcopy(make())
    change(p)
    return p


def schedule(p: dict[str, Any]) -> dict[str, Any]:
    return p["chargingSchedule"][0]


def test_valid_profiles_pass() -> None:
    check(1, tx_profile(), CAPS, LIVE, {})
    check(0, station_max(), CAPS, LIVE, {})
    check(1, tx_default(), CAPS, LIVE, {})


BROKEN: list[tuple[str, int, dict[str, Any], str]] = [
    ("station max on an EVSE", 1, station_max(), "EVSE 0"),
    (
        "station max Relative",
        0,
        edit(station_max, lambda p: (p.update(chargingProfileKind="Relative"), schedule(p).pop("startSchedule"))),
        "K01.FR.38",
    ),
    ("TxProfile on EVSE 0", 0, tx_profile(), "K01.FR.16"),
    ("TxProfile without transactionId", 1, edit(tx_profile, lambda p: p.pop("transactionId")), "K01.FR.03"),
    ("TxProfile for a stale transaction", 1, edit(tx_profile, lambda p: p.update(transactionId="TX-OLD")), "K01.FR.09"),
    ("TxProfile on an idle EVSE", 2, tx_profile(), "K01.FR.09"),
    (
        "TxDefault naming a transaction",
        1,
        edit(tx_default, lambda p: p.update(transactionId="TX-1")),
        "only a TxProfile",
    ),
    (
        "external constraints",
        0,
        edit(station_max, lambda p: p.update(chargingProfilePurpose="ChargingStationExternalConstraints")),
        "K01.FR.22",
    ),
    ("Absolute without startSchedule", 1, edit(tx_default, lambda p: schedule(p).pop("startSchedule")), "K01.FR.40"),
    (
        "Recurring without startSchedule",
        1,
        edit(
            tx_default,
            lambda p: (
                p.update(chargingProfileKind="Recurring", recurrencyKind="Daily"),
                schedule(p).pop("startSchedule"),
            ),
        ),
        "K01.FR.40",
    ),
    (
        "Relative with startSchedule",
        1,
        edit(tx_default, lambda p: p.update(chargingProfileKind="Relative")),
        "K01.FR.41",
    ),
    ("unit the station lacks", 1, edit(tx_default, lambda p: schedule(p).update(chargingRateUnit="W")), "K01.FR.26"),
    (
        "first period not at 0",
        1,
        edit(tx_default, lambda p: schedule(p)["chargingSchedulePeriod"][0].update(startPeriod=60)),
        "K01.FR.31",
    ),
    (
        "periods out of order",
        1,
        edit(
            tx_default,
            lambda p: schedule(p).update(
                chargingSchedulePeriod=[
                    {"startPeriod": 0, "limit": 6},
                    {"startPeriod": 600, "limit": 8},
                    {"startPeriod": 300, "limit": 9},
                ]
            ),
        ),
        "K01.FR.35",
    ),
    (
        "more periods than PeriodsPerSchedule",
        1,
        edit(
            tx_default,
            lambda p: schedule(p).update(
                chargingSchedulePeriod=[{"startPeriod": 60 * i, "limit": 6} for i in range(5)]
            ),
        ),
        "PeriodsPerSchedule",
    ),
    ("stack level above ProfileStackLevel", 1, edit(tx_default, lambda p: p.update(stackLevel=4)), "ProfileStackLevel"),
    (
        "two schedules without ISO 15118",
        1,
        edit(tx_profile, lambda p: p["chargingSchedule"].append(copy.deepcopy(schedule(p)))),
        "K01.FR.34",
    ),
    (
        "phaseToUse with three phases",
        1,
        edit(tx_default, lambda p: schedule(p)["chargingSchedulePeriod"][0].update(numberPhases=3, phaseToUse=1)),
        "K01.FR.19",
    ),
    (
        "phaseToUse without phase switching",
        1,
        edit(tx_default, lambda p: schedule(p)["chargingSchedulePeriod"][0].update(numberPhases=1, phaseToUse=1)),
        "K01.FR.19/20",
    ),
    (
        "negative limit",
        1,
        edit(tx_default, lambda p: schedule(p)["chargingSchedulePeriod"][0].update(limit=-1)),
        "negative",
    ),
]


@pytest.mark.parametrize(("evse", "profile", "rule"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_rule_is_refused(evse: int, profile: dict[str, Any], rule: str) -> None:
    with pytest.raises(ProfileRuleError, match=re.escape(rule)):
        check(evse, profile, CAPS, LIVE, {})


def test_phase_to_use_allowed_with_one_phase_and_switching() -> None:
    p = edit(tx_default, lambda p: schedule(p)["chargingSchedulePeriod"][0].update(numberPhases=1, phaseToUse=2))
    check(1, p, CAPS, LIVE, {}, phase_switching=True)


def test_up_to_three_schedules_with_iso15118() -> None:
    p = edit(tx_profile, lambda p: p["chargingSchedule"].extend(copy.deepcopy([schedule(p)] * 2)))
    check(1, p, CAPS, LIVE, {}, iso15118=True)
    with pytest.raises(ProfileRuleError, match=re.escape("K01.FR.34")):
        check(
            1,
            edit(lambda: p, lambda q: q["chargingSchedule"].append(copy.deepcopy(schedule(q)))),
            CAPS,
            LIVE,
            {},
            iso15118=True,
        )


def test_duplicate_stack_purpose_evse_is_refused_k01_fr_06() -> None:
    installed = {7: (3, "TxDefaultProfile", 1)}
    with pytest.raises(ProfileRuleError, match=re.escape("K01.FR.06")):
        check(1, tx_default(), CAPS, LIVE, installed)
    check(1, edit(tx_default, lambda p: p.update(id=7)), CAPS, LIVE, installed)  # same id replaces (K01.FR.05)
    check(2, tx_default(), CAPS, LIVE, installed)  # another EVSE


def test_tx_default_same_stack_on_evse_0_and_an_evse_is_refused_k01_fr_52_53() -> None:
    on_evse0 = {3: (3, "TxDefaultProfile", 0)}
    with pytest.raises(ProfileRuleError, match=re.escape("K01.FR.52/53")):
        check(1, tx_default(), CAPS, LIVE, on_evse0)
    with pytest.raises(ProfileRuleError, match=re.escape("K01.FR.52/53")):
        check(0, edit(tx_default, lambda p: p.update(id=3 + 1)), CAPS, LIVE, {101: (3, "TxDefaultProfile", 1)})


def test_caps_from_variables_reads_smart_charging_ctrlr() -> None:
    caps = caps_from_variables({"RateUnit": "W", "ProfileStackLevel": "2", "PeriodsPerSchedule": "12"})
    assert (caps.rate_units, caps.max_stack_level, caps.max_periods, caps.supported) == (("W",), 2, 12, True)
    assert not caps_from_variables({"Available": "false"}).supported
    unknown = caps_from_variables({})  # nothing reported: the least (one stack level, one period), A first
    assert (unknown.rate_units, unknown.max_stack_level, unknown.max_periods) == (("A", "W"), 0, 1)
