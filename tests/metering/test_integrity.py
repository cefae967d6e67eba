"""Register anomalies, duplicate messages and reconciliation: detected, flagged, never double-counted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evsite.metering.integrity import Severity, reconcile, register_intervals
from evsite.metering.sessions import Reading, TxMessage, build_session, build_submeter_session, merge_messages
from tests.metering.helpers import MAX_W, utc

T0 = utc("2026-10-14T02:00:00Z")


def series(*values: int, step_min: int = 1, **kw: object) -> list[Reading]:
    return [Reading(T0 + timedelta(minutes=i * step_min), Decimal(v), **kw) for i, v in enumerate(values)]  # type: ignore[arg-type]


def codes(flags: list) -> list[str]:  # type: ignore[type-arg]
    return [f.code for f in flags]


def test_clean_register_gives_exact_interval_deltas() -> None:
    result = register_intervals(series(100, 200, 350, 350), MAX_W)
    assert [iv.energy_wh for iv in result.intervals] == [100, 150, 0]
    assert result.energy_wh == 250 and result.flags == []


def test_reset_counts_only_energy_since_the_reset_and_warns() -> None:
    # 5,000 → 40 Wh in one minute: no register width just above 5,000 (10,000) explains 5,040 Wh in a minute
    # at 8.3 kW (max ≈ 162 Wh incl. margin), but 40 Wh since a restart at zero is plausible → reset, 40 Wh.
    result = register_intervals(series(4_900, 5_000, 40, 140), MAX_W)
    assert [iv.energy_wh for iv in result.intervals] == [100, 40, 100]
    assert codes(result.flags) == ["reset"] and result.flags[0].severity is Severity.WARNING


def test_rollback_is_held_and_counts_nothing() -> None:
    result = register_intervals(series(9_000, 9_100, 6_000, 6_100), MAX_W)
    assert [iv.energy_wh for iv in result.intervals] == [100, 0, 100]
    assert codes(result.flags) == ["rollback"] and result.flags[0].severity is Severity.HOLD


def test_energy_beyond_nameplate_is_held() -> None:
    # 8,320 W for 60 s is 139 Wh; +10 % and 10 Wh slack allow 162 Wh; 500 Wh is impossible
    result = register_intervals(series(0, 500), MAX_W)
    assert codes(result.flags) == ["implausible_energy"] and result.flags[0].severity is Severity.HOLD


def test_gap_is_flagged_and_its_energy_kept() -> None:
    readings = [*series(0, 100), Reading(T0 + timedelta(minutes=30), Decimal(4_000))]
    result = register_intervals(readings, MAX_W, gap_s=180)
    assert result.energy_wh == 4_000
    assert codes(result.flags) == ["gap"] and "29 min" in result.flags[0].detail


def test_duplicates_are_counted_once_and_conflicts_held() -> None:
    dup = series(0, 100, 200)
    result = register_intervals([dup[0], dup[1], dup[1], dup[2], dup[2]], MAX_W)
    assert result.energy_wh == 200
    assert codes(result.flags) == ["duplicate_reading"] and "2 repeated" in result.flags[0].detail
    conflict = [dup[0], dup[1], Reading(dup[1].at, Decimal(150)), dup[2]]
    held = register_intervals(conflict, MAX_W)
    assert held.energy_wh == 200 and codes(held.flags) == ["conflicting_readings"]


def test_clock_jump_uses_server_arrival_times_when_known() -> None:
    # The charger's clock jumps back one hour after the second reading; arrival times are steady.
    arrivals = [T0 + timedelta(minutes=i) for i in range(4)]
    meter_times = [arrivals[0], arrivals[1], arrivals[2] - timedelta(hours=1), arrivals[3] - timedelta(hours=1)]
    readings = [
        Reading(t, Decimal(v), received_at=r) for t, v, r in zip(meter_times, (0, 100, 200, 300), arrivals, strict=True)
    ]
    result = register_intervals(readings, MAX_W)
    assert codes(result.flags) == ["clock_jump"] and result.used_received_time
    assert [iv.start for iv in result.intervals] == arrivals[:3]
    assert result.energy_wh == 300


def test_duplicate_transaction_messages_merge_into_one_session() -> None:
    start = TxMessage("start", "MF-P1-01", "7", T0, Decimal(1_000), 1, "TAG-U101")
    stop = TxMessage("stop", "MF-P1-01", "7", T0 + timedelta(minutes=3), Decimal(1_300), reason="EVDisconnected")
    records = merge_messages([start, start, stop, start, stop])
    assert len(records) == 1
    (rec,) = records
    assert (rec.start_wh, rec.stop_wh, rec.id_tag, rec.connector_id) == (1_000, 1_300, "TAG-U101", 1)
    assert codes(rec.flags) == ["duplicate_message"] and "3 repeated" in rec.flags[0].detail
    readings = series(1_100, 1_200, step_min=1)
    readings = [Reading(T0 + timedelta(minutes=1), Decimal(1_100)), Reading(T0 + timedelta(minutes=2), Decimal(1_200))]
    s = build_session(rec, readings + readings, MAX_W)  # the MeterValues resent too
    assert s.energy_wh == 300 and not s.held


def test_conflicting_second_start_is_held() -> None:
    a = TxMessage("start", "MF-P1-01", "7", T0, Decimal(1_000), 1, "TAG-U101")
    b = TxMessage("start", "MF-P1-01", "7", T0, Decimal(1_050), 1, "TAG-U101")
    (rec,) = merge_messages([a, b])
    assert rec.start_wh == 1_000 and codes(rec.flags) == ["conflicting_message"]


def test_stop_without_start_starts_at_the_first_sample() -> None:
    (rec,) = merge_messages([TxMessage("stop", "MF-P1-02", "8", T0 + timedelta(minutes=2), Decimal(700))])
    s = build_session(rec, [Reading(T0, Decimal(500)), Reading(T0 + timedelta(minutes=1), Decimal(600))], MAX_W)
    assert s.energy_wh == 200 and s.started_at == T0
    assert "stop_without_start" in codes(s.flags)


def test_stop_without_start_or_samples_is_held() -> None:
    (rec,) = merge_messages([TxMessage("stop", "MF-P1-02", "8", T0, Decimal(700))])
    s = build_session(rec, [], MAX_W)
    assert s.held and s.energy_wh == 0


def test_submeter_session_uses_the_bracketing_register_readings() -> None:
    # Submeter polled every 5 min: 10,000 at 02:00, 10,400 at 02:05, 11,000 at 02:10, 11,002 at 02:15.
    # Session 02:02–02:12 → registers 10,000 (last at/before start) and 11,002 (first at/after stop) = 1,002 Wh.
    (rec,) = merge_messages(
        [
            TxMessage("start", "MF-P2-01", "11", T0 + timedelta(minutes=2), Decimal(0), 1, "TAG-U301"),
            TxMessage("stop", "MF-P2-01", "11", T0 + timedelta(minutes=12), Decimal(0)),
        ]
    )
    meter = series(9_990, 10_000, 10_400, 11_000, 11_002, step_min=5)
    meter = [Reading(r.at - timedelta(minutes=5), r.energy_wh) for r in meter]
    s = build_submeter_session(rec, meter, "M-SUB-1", MAX_W, gap_s=600)
    assert s.energy_wh == 1_002 and s.meter_id == "M-SUB-1" and not s.held


def test_reconciliation_within_and_beyond_tolerance() -> None:
    # Panel meter class 0.5 reads 1,000,000 Wh; sessions on C12.20-0.5 meters sum to 985,000 Wh.
    # accuracy = 1,000,000 × 0.5 % + 985,000 × 0.5 % = 5,000 + 4,925 = 9,925 Wh; losses 1 % = 10,000 Wh
    # allowed −9,925 … +19,925 Wh; difference +15,000 → within tolerance
    ok = reconcile("M-P1", Decimal(1_000_000), 0.5, Decimal(985_000), 0.5)
    assert ok.ok and ok.tolerance_wh == 19_925 and ok.difference_wh == 15_000
    # Sessions 1,012,000 Wh (more than the meter): difference −12,000 < −(5,000 + 5,060) → flagged
    over = reconcile("M-P1", Decimal(1_000_000), 0.5, Decimal(1_012_000), 0.5)
    assert not over.ok and over.difference_wh == -12_000


@pytest.mark.parametrize("before,after,expected", [(999_999_900, 50, 150), (4_294_967_200, 50, 146)])
def test_rollover_at_decimal_and_binary_register_widths(before: int, after: int, expected: int) -> None:
    # 10^9 − 999,999,900 + 50 = 150 Wh; 2^32 = 4,294,967,296 − 4,294,967,200 + 50 = 146 Wh (≤ 162 Wh in a minute)
    result = register_intervals(series(before, after), MAX_W)
    assert result.energy_wh == expected and codes(result.flags) == ["rollover"]


@given(
    start=st.integers(min_value=0, max_value=10**9 - 1),
    steps=st.lists(st.integers(min_value=0, max_value=130), min_size=1, max_size=60),
)
def test_any_monotone_register_with_wraps_sums_to_the_true_energy(start: int, steps: list[int]) -> None:
    # A 10^9 Wh register read every minute by a charger delivering ≤ 130 Wh/min (7.8 kW < 8.3 kW nameplate):
    # the interval energies must add up to the true delivered energy whether or not the register wrapped.
    values = [start]
    for step in steps:
        values.append(values[-1] + step)
    result = register_intervals(series(*[v % 10**9 for v in values]), MAX_W)
    assert result.energy_wh == sum(steps)
    assert all(f.code == "rollover" for f in result.flags)
