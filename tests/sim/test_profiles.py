"""Composite schedule of a charge point, checked against the rules and examples of OCPP 1.6 edition 2.

Sources: OCPP 1.6 ed. 2 §3.13.2 (stacking; the weekly default with a holiday exception is the
spec's own example), §3.13.3 (composite = per-interval minimum, intervals of different lengths),
§3.13.6 (no profile → unconstrained), §3.13.7 (the daily 11 kW / 6 kW example), §5.16.4 notes
(duration vs. periods, validFrom in the future), errata v4 §3.25 (ClearChargingProfile matching).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from evsite.sim.profiles import Electrical, Profile, ProfileStore, floor_tenth, share_charge_point_max

THREE_PHASE_230 = Electrical(phase_voltage_v=230.0, phases=3, max_current_a=32.0)
T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # a Thursday


def profile(
    pid: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    connector: int = 1,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = T0,
    duration: int | None = None,
    recurrency: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    phases: int | None = None,
) -> Profile:
    schedule: dict[str, Any] = {
        "charging_rate_unit": unit,
        "charging_schedule_period": [
            {"start_period": s, "limit": v, **({"number_phases": phases} if phases else {})} for s, v in periods
        ],
    }
    if start is not None and kind != "Relative":
        schedule["start_schedule"] = start.isoformat().replace("+00:00", "Z")
    if duration is not None:
        schedule["duration"] = duration
    data: dict[str, Any] = {
        "charging_profile_id": pid,
        "stack_level": stack,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": schedule,
    }
    if recurrency:
        data["recurrency_kind"] = recurrency
    if valid_from:
        data["valid_from"] = valid_from.isoformat()
    if valid_to:
        data["valid_to"] = valid_to.isoformat()
    return Profile.from_ocpp(connector, data)


def periods(schedule: dict[str, Any]) -> list[tuple[int, float]]:
    return [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]]


def test_spec_3_13_7_daily_default_profile_in_watts() -> None:
    """§3.13.7: TxDefaultProfile, Recurring Daily from 2013-01-01, 11 kW, 6 kW 08:00–20:00, 11 kW after."""
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(
        profile(
            100,
            "TxDefaultProfile",
            [(0, 11000), (28800, 6000), (72000, 11000)],
            connector=0,
            kind="Recurring",
            recurrency="Daily",
            unit="W",
            start=datetime(2013, 1, 1, tzinfo=UTC),
            duration=86400,
            phases=3,
        )
    )
    day = store.composite_schedule(1, T0, 86400, "W")
    assert periods(day) == [(0, 11000), (28800, 6000), (72000, 11000)]
    # From 10:00 for 24 h the recurrence wraps: 6 kW until 20:00, 11 kW overnight, 6 kW again from 08:00.
    later = store.composite_schedule(1, T0 + timedelta(hours=10), 86400, "W")
    assert periods(later) == [(0, 6000), (36000, 11000), (79200, 6000)]
    # In amperes per phase on a 3 × 230 V charger: 6000 / 690 = 8.69… rounded down to 8.6 A, never up.
    assert store.composite_a(1, T0 + timedelta(hours=9)) == 6000 / 690
    assert periods(store.composite_schedule(1, T0 + timedelta(hours=9), 3600, "A")) == [(0, 8.6)]


def _weekly_default() -> Profile:
    """§3.13.2: full current weekdays 23:00–06:00 and all weekend, reduced at other times (week from Monday)."""
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    weekly: list[tuple[int, float]] = []
    for day in range(5):
        base = day * 86400
        if day == 0:
            weekly.append((0, 32))
        weekly += [(base + 6 * 3600, 10), (base + 23 * 3600, 32)]
    return profile(1, "TxDefaultProfile", weekly, connector=0, kind="Recurring", recurrency="Weekly", start=monday)


def test_spec_3_13_2_weekly_default_with_holiday_exception_on_a_higher_stack_level() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(_weekly_default())
    plain = periods(store.composite_schedule(1, T0, 2 * 86400))
    assert plain == [(0, 32), (21600, 10), (82800, 32), (108000, 10), (169200, 32)]

    holiday = profile(
        2,
        "TxDefaultProfile",
        [(0, 32)],
        connector=0,
        stack=1,
        duration=86400,
        valid_from=T0,
        valid_to=T0 + timedelta(days=1),
    )
    store.install(holiday)
    assert periods(store.composite_schedule(1, T0, 2 * 86400)) == [(0, 32), (108000, 10), (169200, 32)]
    # The weekend stays at full current until Monday 06:00, when the weekly recurrence starts over.
    saturday = T0 + timedelta(days=2)
    assert periods(store.composite_schedule(1, saturday, 3 * 86400)) == [(0, 32), (194400, 10), (255600, 32)]


def test_spec_3_13_3_composite_is_the_minimum_per_interval_of_different_lengths() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(profile(1, "ChargePointMaxProfile", [(0, 16), (1800, 20)], connector=0))
    store.install(profile(2, "TxDefaultProfile", [(0, 32), (3600, 8)], connector=0))
    assert periods(store.composite_schedule(1, T0, 7200)) == [(0, 16), (1800, 20), (3600, 8)]
    # Connector 0 reports what the charge point as a whole may take: the ChargePointMaxProfile.
    assert periods(store.composite_schedule(0, T0, 7200)) == [(0, 16), (1800, 20)]


def test_txprofile_overrules_txdefault_but_not_chargepointmax() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(profile(1, "TxDefaultProfile", [(0, 6)], connector=0))
    store.install(profile(2, "TxProfile", [(0, 20)], connector=1, kind="Relative"))
    assert store.composite_a(1, T0, tx_start=T0) == 20  # §3.13.1: TxProfile overrules TxDefaultProfile
    assert store.composite_a(1, T0, tx_start=None) == 6  # no transaction: the default applies
    store.install(profile(3, "ChargePointMaxProfile", [(0, 16)], connector=0))
    assert store.composite_a(1, T0, tx_start=T0) == 16
    store.end_transaction(1)  # §3.13.1: the TxProfile goes with its transaction
    assert store.composite_a(1, T0, tx_start=T0) == 6


def test_relative_profile_runs_from_the_start_of_the_transaction() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(profile(1, "TxProfile", [(0, 6), (300, 16)], kind="Relative"))
    tx_start = T0 - timedelta(seconds=100)
    assert periods(store.composite_schedule(1, T0, 600, tx_start=tx_start)) == [(0, 6), (200, 16)]


def test_connector_default_replaces_the_connector_zero_default_for_that_connector_only() -> None:
    store = ProfileStore(connectors=2, electrical=THREE_PHASE_230)
    store.install(profile(1, "TxDefaultProfile", [(0, 10)], connector=0))
    store.install(profile(2, "TxDefaultProfile", [(0, 24)], connector=2))
    assert store.composite_a(1, T0) == 10
    assert store.composite_a(2, T0) == 24


def test_spec_3_13_6_no_profiles_means_unconstrained() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    assert store.composite_a(1, T0, tx_start=T0) is None
    # The reported schedule is then the hardware limit of the connector.
    assert periods(store.composite_schedule(1, T0, 3600)) == [(0, 32)]


def test_spec_5_16_4_duration_cuts_periods_and_falls_back_to_lower_stack() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(profile(1, "TxDefaultProfile", [(0, 20)], connector=0, stack=0))
    # Periods beyond the duration are not executed; after the duration the lower stack level applies.
    store.install(profile(2, "TxDefaultProfile", [(0, 10), (600, 12)], connector=0, stack=1, duration=300))
    assert periods(store.composite_schedule(1, T0, 1200)) == [(0, 10), (300, 20)]
    # Duration longer than the periods: the last period's value holds until the duration ends.
    store.install(profile(3, "TxDefaultProfile", [(0, 10)], connector=0, stack=1, duration=900))
    assert periods(store.composite_schedule(1, T0, 1200)) == [(0, 10), (900, 20)]


def test_same_purpose_and_stack_level_replaces_and_future_valid_from_reverts_to_default() -> None:
    store = ProfileStore(electrical=THREE_PHASE_230)
    store.install(profile(1, "TxDefaultProfile", [(0, 10)], connector=0))
    store.install(profile(7, "TxDefaultProfile", [(0, 12)], connector=0, valid_from=T0 + timedelta(seconds=600)))
    assert [p.id for p in store.profiles] == [7]
    # §3.13.2 note: until validFrom the charge point reverts to default behaviour (here: unconstrained).
    assert periods(store.composite_schedule(1, T0, 1200)) == [(0, 32), (600, 12)]
    store.install(profile(7, "TxDefaultProfile", [(0, 14)], connector=0, stack=3))  # same id replaces too
    assert [(p.id, p.stack_level) for p in store.profiles] == [(7, 3)]


def test_errata_3_25_clear_charging_profile_matching() -> None:
    store = ProfileStore(connectors=2, electrical=THREE_PHASE_230)
    store.install(profile(1, "TxDefaultProfile", [(0, 10)], connector=1, stack=0))
    store.install(profile(2, "TxDefaultProfile", [(0, 10)], connector=2, stack=1))
    store.install(profile(3, "ChargePointMaxProfile", [(0, 40)], connector=0, stack=1))
    assert store.clear(connector_id=2, purpose="ChargePointMaxProfile") == 0  # fields are ANDed
    assert store.clear(purpose="TxDefaultProfile", stack_level=1) == 1
    assert store.clear(id=3, connector_id=99) == 1  # with an id, the other fields are ignored
    assert store.clear() == 1  # no fields: everything
    assert store.profiles == []


def test_limits_round_down_to_a_tenth() -> None:
    assert floor_tenth(15.94) == 15.9
    assert floor_tenth(16.0) == 16.0
    assert floor_tenth(10999.999999999) == 11000.0  # float noise is not a real excess
    assert floor_tenth(6.09) == 6.0


@given(
    st.dictionaries(st.integers(1, 8), st.floats(0, 80, allow_nan=False), min_size=1),
    st.floats(0, 200, allow_nan=False),
)
def test_charge_point_max_share_never_exceeds_the_total_or_a_connectors_own_limit(
    own: dict[int, float], total: float
) -> None:
    shares = share_charge_point_max(own, total)
    assert sum(shares.values()) <= total + 1e-9
    assert all(shares[c] <= own[c] + 1e-12 for c in own)
    # Nothing is left unused while some connector could take more.
    if sum(own.values()) >= total:
        assert abs(sum(shares.values()) - total) < 1e-6
