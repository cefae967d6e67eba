"""Billing with hand-computed expectations (arithmetic in the comments), on the multifamily example tariff.

Tariff (examples/multifamily-30.yaml): peak 16:00–21:00 $0.45/kWh, off-peak 21:00–16:00 $0.25/kWh,
session fee $0.25, idle $1.50/h after 60 min grace, tax 7.25 %, rounding per line item (cents, half up);
demand $12.00/kW over 15-minute intervals. Local time is America/Los_Angeles: PDT (UTC−7) until
2026-11-01 02:00, then PST (UTC−8). Tests that are not about demand set the demand charge to 0.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from evsite.metering.billing import Adjustment, Biller, Statement
from evsite.metering.integrity import Severity
from evsite.site.model import TagAssignment
from tests.metering.helpers import session, site


def lines(statement: Statement, kind: str) -> list[tuple[Decimal, Decimal, Decimal]]:
    return [(ln.quantity, ln.rate, ln.amount) for ln in statement.lines if ln.kind == kind]


def only(run_statements: list[Statement], unit: str) -> Statement:
    (found,) = [s for s in run_statements if s.unit_id == unit]
    return found


def test_tou_boundary_crossing_splits_the_straddling_interval_by_time() -> None:
    # Wed 2026-10-14, a weekday and no holiday. 7.2 kW from 15:30 to 16:45 PDT (22:30Z–23:45Z).
    #   15:30 → 15:57  1,000,000 → 1,003,240 Wh: 3,240 Wh, all off-peak
    #   15:57 → 16:07  1,003,240 → 1,004,440 Wh: 1,200 Wh over 10 min, 3 min off-peak = 360 Wh, 7 min peak = 840 Wh
    #   16:07 → 16:45  1,004,440 → 1,009,000 Wh: 4,560 Wh, all peak
    # off-peak 3,240 + 360 = 3,600 Wh → 3.600 kWh × $0.25 = $0.90
    # peak       840 + 4,560 = 5,400 Wh → 5.400 kWh × $0.45 = $2.43
    # session fee $0.25; subtotal $3.58; tax 3.58 × 7.25 % = 0.25955 → $0.26; total $3.84
    s = session(
        "MF-P1-01",
        "TAG-U101",
        "1",
        [
            ("2026-10-14T22:30:00Z", 1_000_000),
            ("2026-10-14T22:57:00Z", 1_003_240),
            ("2026-10-14T23:07:00Z", 1_004_440),
            ("2026-10-14T23:45:00Z", 1_009_000),
        ],
    )
    run = Biller(site(demand_charge_per_kw="0")).bill([s], "2026-10")
    st = only(run.statements, "U101")
    assert lines(st, "energy") == [
        (Decimal("3.6"), Decimal("0.25"), Decimal("0.90")),
        (Decimal("5.4"), Decimal("0.45"), Decimal("2.43")),
    ]
    assert lines(st, "session_fee") == [(Decimal(1), Decimal("0.25"), Decimal("0.25"))]
    assert (st.subtotal, st.tax, st.total) == (Decimal("3.58"), Decimal("0.26"), Decimal("3.84"))
    assert st.energy_wh == 9_000 == 1_009_000 - 1_000_000


def test_demand_charge_is_each_units_share_of_the_site_coincident_peak() -> None:
    # 15-minute demand intervals, Thu 2026-10-15 PDT (01:00Z = 18:00 local).
    #   U101 on MF-P1-01: 7.2 kW 18:00–19:00 (1,800 Wh per quarter hour)
    #   U102 on MF-P1-02: 3.6 kW 18:30–19:30 (900 Wh per quarter hour)
    #   U301 on MF-P2-01 (informational meter, not billable): 9.6 kW 18:30–18:45 (2,400 Wh)
    # quarter-hour site totals: 18:00 1,800 | 18:15 1,800 | 18:30 1,800+900+2,400 = 5,100 | 18:45 2,700 | 19:00 900 …
    # coincident peak 18:30–18:45: 5,100 Wh × 4 = 20.4 kW
    # U101 share 1,800 Wh × 4 = 7.2 kW × $12 = $86.40; U102 900 Wh × 4 = 3.6 kW × $12 = $43.20
    # unallocated (non-billable U301): 9.6 kW
    a = session(
        "MF-P1-01",
        "TAG-U101",
        "1",
        [(f"2026-10-16T01:{m:02d}:00Z", 1800 * i) for i, m in enumerate((0, 15, 30, 45))]
        + [("2026-10-16T02:00:00Z", 7200)],
    )
    b = session(
        "MF-P1-02",
        "TAG-U102",
        "2",
        [
            ("2026-10-16T01:30:00Z", 0),
            ("2026-10-16T01:45:00Z", 900),
            ("2026-10-16T02:00:00Z", 1800),
            ("2026-10-16T02:15:00Z", 2700),
            ("2026-10-16T02:30:00Z", 3600),
        ],
    )
    c = session("MF-P2-01", "TAG-U301", "3", [("2026-10-16T01:30:00Z", 50_000), ("2026-10-16T01:45:00Z", 52_400)])
    run = Biller(site()).bill([a, b, c], "2026-10")
    assert run.summary.demand_peak_kw == Decimal("20.400")
    assert (
        run.summary.demand_peak_at is not None and run.summary.demand_peak_at.isoformat() == "2026-10-16T01:30:00+00:00"
    )
    assert lines(only(run.statements, "U101"), "demand") == [(Decimal("7.200"), Decimal("12.00"), Decimal("86.40"))]
    assert lines(only(run.statements, "U102"), "demand") == [(Decimal("3.600"), Decimal("12.00"), Decimal("43.20"))]
    assert run.summary.demand_unallocated_kw == Decimal("9.600")
    # U101's energy: 7.2 kWh, all peak (18:00–19:00) → 7.2 × 0.45 = $3.24
    assert lines(only(run.statements, "U101"), "energy") == [(Decimal("7.2"), Decimal("0.45"), Decimal("3.24"))]
    # U301 is listed but not charged: the P2 chargers have informational meters
    u301 = only(run.statements, "U301")
    assert u301.lines == [] and u301.total == 0
    assert not u301.sessions[0].billable and "informational" in (u301.sessions[0].reason or "")


def test_session_across_midnight_and_the_month_boundary_is_billed_once_in_two_parts() -> None:
    # Sat 2026-10-31 22:00 PDT (05:00Z) to Sun 2026-11-01 01:00 PST (09:00Z), 6 kW; month edge 00:00 PDT = 07:00Z.
    #   05:00 → 05:40  +4,000 Wh (October)
    #   05:40 → 06:20  +4,000 Wh (October)
    #   06:20 → 07:20  +6,000 Wh: 40 of 60 min in October = 4,000 Wh, 20 min in November = 2,000 Wh
    #   07:20 → 09:00  +10,000 Wh (November)
    # October 12,000 Wh, November 12,000 Wh, both off-peak (after 21:00 / before 16:00) → 12 × $0.25 = $3.00 each.
    # The session stops in November, so its $0.25 fee is on the November statement.
    # October: tax 3.00 × 7.25 % = 0.2175 → $0.22, total $3.22. November: 3.25 × 7.25 % = 0.235625 → $0.24, $3.49.
    s = session(
        "MF-P1-03",
        "TAG-U103",
        "9",
        [
            ("2026-11-01T05:00:00Z", 500_000),
            ("2026-11-01T05:40:00Z", 504_000),
            ("2026-11-01T06:20:00Z", 508_000),
            ("2026-11-01T07:20:00Z", 514_000),
            ("2026-11-01T09:00:00Z", 524_000),
        ],
    )
    biller = Biller(site(demand_charge_per_kw="0"))
    october = only(biller.bill([s], "2026-10").statements, "U103")
    november = only(biller.bill([s], "2026-11").statements, "U103")
    assert lines(october, "energy") == [(Decimal("12"), Decimal("0.25"), Decimal("3.00"))]
    assert lines(october, "session_fee") == []
    assert (october.tax, october.total) == (Decimal("0.22"), Decimal("3.22"))
    assert lines(november, "energy") == [(Decimal("12"), Decimal("0.25"), Decimal("3.00"))]
    assert lines(november, "session_fee") == [(Decimal(1), Decimal("0.25"), Decimal("0.25"))]
    assert (november.tax, november.total) == (Decimal("0.24"), Decimal("3.49"))
    assert october.energy_wh + november.energy_wh == 524_000 - 500_000


def test_register_rollover_counts_the_wrapped_energy() -> None:
    # Wed 2026-10-14 22:00–22:45 PDT (05:00Z–05:45Z on the 15th), 6 kW, a register that wraps at 10^9 Wh:
    #   999,998,000 → 999,999,500: 1,500 Wh
    #   999,999,500 →       1,000: 1,000 + 10^9 − 999,999,500 = 1,500 Wh (rollover)
    #         1,000 →       2,500: 1,500 Wh
    # 4,500 Wh off-peak → 4.5 kWh × $0.25 = $1.125 → $1.13 (half up; banker's rounding would give $1.12)
    s = session(
        "MF-P1-04",
        "TAG-U104",
        "4",
        [
            ("2026-10-15T05:00:00Z", 999_998_000),
            ("2026-10-15T05:15:00Z", 999_999_500),
            ("2026-10-15T05:30:00Z", 1_000),
            ("2026-10-15T05:45:00Z", 2_500),
        ],
    )
    assert s.energy_wh == 4_500
    assert [f.code for f in s.flags] == ["rollover"] and s.flags[0].severity is Severity.INFO
    st = only(Biller(site(demand_charge_per_kw="0")).bill([s], "2026-10").statements, "U104")
    assert lines(st, "energy") == [(Decimal("4.5"), Decimal("0.25"), Decimal("1.13"))]


def test_idle_fee_after_the_grace_period_per_whole_minute() -> None:
    # Energy stops at 18:00 PDT, unplugged 19:35:30 → idle 95 min (whole minutes) − 60 grace = 35 min
    # 35 × $1.50 / 60 = $0.875 → $0.88. Energy 2.000 kWh peak (17:00–18:00) × 0.45 = $0.90.
    s = session(
        "MF-P1-05",
        "TAG-U105",
        "5",
        [("2026-10-14T00:00:00Z", 10_000), ("2026-10-14T01:00:00Z", 12_000), ("2026-10-14T02:35:30Z", 12_000)],
    )
    st = only(Biller(site(demand_charge_per_kw="0")).bill([s], "2026-10").statements, "U105")
    assert lines(st, "idle_fee") == [(Decimal(35), Decimal("1.50"), Decimal("0.88"))]
    assert lines(st, "energy") == [(Decimal("2"), Decimal("0.45"), Decimal("0.90"))]


def test_statement_rounding_rounds_the_subtotal_once_and_the_printed_lines_foot() -> None:
    # Two off-peak sessions of 4.5 kWh: 4.5 × 0.25 = 1.125 exact each, fee 0.25 each; exact subtotal 2.75.
    # rounding: statement → subtotal 2.75; its 275 cents go to the lines by largest remainder (the tie between the
    # two 0.5-cent remainders goes to the earlier line): 1.13, 0.25, 1.12, 0.25. Tax 2.75 × 7.25 % = 0.199375 →
    # 0.20; total 2.95. Per-line rounding instead: 1.13 + 0.25 + 1.13 + 0.25 = 2.76, tax 0.2001 → 0.20, total 2.96.
    a = session("MF-P1-04", "TAG-U104", "4", [("2026-10-15T05:00:00Z", 0), ("2026-10-15T05:45:00Z", 4_500)])
    b = session("MF-P1-04", "TAG-U104", "5", [("2026-10-16T05:00:00Z", 4_500), ("2026-10-16T05:45:00Z", 9_000)])
    by_statement = Biller(site(demand_charge_per_kw="0", rounding="statement")).bill([a, b], "2026-10")
    st = only(by_statement.statements, "U104")
    assert [ln.amount for ln in st.lines] == [Decimal(x) for x in ("1.13", "0.25", "1.12", "0.25", "0.20")]
    assert (st.subtotal, st.tax, st.total) == (Decimal("2.75"), Decimal("0.20"), Decimal("2.95"))
    per_line = only(Biller(site(demand_charge_per_kw="0")).bill([a, b], "2026-10").statements, "U104")
    assert (per_line.subtotal, per_line.tax, per_line.total) == (Decimal("2.76"), Decimal("0.20"), Decimal("2.96"))


def test_every_statement_foots_as_printed_under_both_rounding_modes() -> None:
    # The failure: tax and total rounded from exact sums did not add up (49.98 + 4.44 printed, 54.41 total)
    # and exact lines printed as long decimals. Idle 73 min at 1.00/h: 13 min beyond the grace → 0.21666… exact.
    sessions = [
        session(f"MF-P1-{n:02d}", f"TAG-U1{n:02d}", str(n),
                [(f"2026-10-{n + 10}T04:{n:02d}:00Z", 0), (f"2026-10-{n + 10}T05:00:00Z", 1_000 + 137 * n),
                 (f"2026-10-{n + 10}T06:13:00Z", 1_000 + 137 * n)])
        for n in range(1, 10)
    ]  # fmt: skip
    for rounding in ("line-item", "statement"):
        run = Biller(site(rounding=rounding, idle_fee_per_hour="1.00", tax_pct="8.875")).bill(sessions, "2026-10")
        assert len(run.statements) == 9
        for st in run.statements:
            printed = [ln.amount for ln in st.lines if ln.kind != "tax"]
            assert all(x == x.quantize(Decimal("0.01")) for x in [*printed, st.subtotal, st.tax, st.total])
            assert sum(printed) == st.subtotal and st.subtotal + st.tax == st.total
            (tax,) = [ln for ln in st.lines if ln.kind == "tax"]
            assert tax.amount == st.tax == (st.subtotal * Decimal("0.08875")).quantize(Decimal("0.01"), "ROUND_HALF_UP")


def test_adjustments_are_new_lines_and_taxed_as_stated() -> None:
    # A $2.00 credit posted in October, taxable: subtotal 3.58 − 2.00 = 1.58; tax 0.11455 → $0.11; total $1.69
    s = session(
        "MF-P1-01",
        "TAG-U101",
        "1",
        [
            ("2026-10-14T22:30:00Z", 0),
            ("2026-10-14T22:57:00Z", 3_240),
            ("2026-10-14T23:07:00Z", 4_440),
            ("2026-10-14T23:45:00Z", 9_000),
        ],
    )
    credit = Adjustment("A1", "U101", "2026-10", "meter test credit", Decimal("-2.00"), refers_to="2026-09")
    st = only(Biller(site(demand_charge_per_kw="0")).bill([s], "2026-10", [credit]).statements, "U101")
    assert lines(st, "adjustment") == [(Decimal(1), Decimal("-2.00"), Decimal("-2.00"))]
    assert (st.subtotal, st.tax, st.total) == (Decimal("1.58"), Decimal("0.11"), Decimal("1.69"))


def test_a_session_listed_twice_is_billed_once() -> None:
    s = session("MF-P1-04", "TAG-U104", "4", [("2026-10-15T05:00:00Z", 0), ("2026-10-15T05:45:00Z", 4_500)])
    run = Biller(site(demand_charge_per_kw="0")).bill([s, s], "2026-10")
    st = only(run.statements, "U104")
    assert len(st.sessions) == 1 and lines(st, "energy") == [(Decimal("4.5"), Decimal("0.25"), Decimal("1.13"))]
    assert run.summary.flags.get("duplicate_session") == 1


def test_rerun_gives_identical_digest_and_held_sessions_are_not_billed() -> None:
    good = session("MF-P1-04", "TAG-U104", "4", [("2026-10-15T05:00:00Z", 0), ("2026-10-15T05:45:00Z", 4_500)])
    # register goes back from 8,000 to 5,000 Wh within 15 min: not a plausible wrap or reset → held
    bad = session(
        "MF-P1-06",
        "TAG-U106",
        "6",
        [("2026-10-15T05:00:00Z", 2_000), ("2026-10-15T05:15:00Z", 8_000), ("2026-10-15T05:30:00Z", 5_000)],
    )
    biller = Biller(site())
    first, second = biller.bill([good, bad], "2026-10"), Biller(site()).bill([bad, good], "2026-10")
    assert first.digest() == second.digest()
    assert first.canonical_json() == second.canonical_json()
    held = only(first.statements, "U106").sessions[0]
    assert not held.billable and "register went back" in (held.reason or "")
    assert only(first.statements, "U106").lines == []


def test_a_tag_two_units_hold_at_once_is_held_for_review_not_billed_to_either() -> None:
    # Site files are refused when tags overlap (tests/site), but a site built in code or edited since can
    # still have one: TAG-U101 given to U102 from 2026-10-10 without ending U101's holding.
    base = site(demand_charge_per_kw="0")
    units = [
        u.model_copy(update={"tags": [*u.tags, TagAssignment(tag="TAG-U101", since=date(2026, 10, 10))]})
        if u.id == "U102"
        else u
        for u in base.units
    ]
    shared = base.model_copy(update={"units": units})
    before = session("MF-P1-01", "TAG-U101", "1", [("2026-10-05T05:00:00Z", 0), ("2026-10-05T05:45:00Z", 4_500)])
    after = session("MF-P1-01", "TAG-U101", "2", [("2026-10-15T05:00:00Z", 4_500), ("2026-10-15T05:45:00Z", 9_000)])
    run = Biller(shared).bill([before, after], "2026-10")
    assert [s.unit_id for s in run.statements] == ["U101"]
    assert [e.key for e in only(run.statements, "U101").sessions] == [before.key]
    (held,) = run.not_billed
    assert held.key == after.key and held.unit_id is None and not held.billable
    assert "held by units U101, U102 on 2026-10-14" in (held.reason or "")
    assert run.summary.flags["shared_tag"] == 1


def test_compliance_notes_go_to_the_operator_summary_not_the_tenants_bill() -> None:
    # The example sells by the kWh and records no type approval for the chargers' meters: billable, with a note
    # for the operator asking for the NTEP/CTEP certificate. The tenant's notes keep only their sessions' issues.
    s = session("MF-P1-04", "TAG-U104", "4", [("2026-10-15T05:00:00Z", 0), ("2026-10-15T05:45:00Z", 4_500)])
    run = Biller(site(demand_charge_per_kw="0")).bill([s], "2026-10")
    assert only(run.statements, "U104").notes == []
    assert run.summary.compliance_notes == [
        "type approval of meter MF-P1-04 is not recorded; selling by the kWh needs an NTEP/CTEP certificate "
        "(NIST HB 44 §3.40)"
    ]


def test_statement_header_dates_payee_and_rate_units() -> None:
    # Issued on billing.statement_day (1) of the next month, due 21 days later; payee defaults to the site.
    # Idle 95 − 60 = 35 min at 1.50 USD/h; tax 7.25 % of the taxable subtotal.
    s = session(
        "MF-P1-05",
        "TAG-U105",
        "5",
        [("2026-10-14T00:00:00Z", 10_000), ("2026-10-14T01:00:00Z", 12_000), ("2026-10-14T02:35:30Z", 12_000)],
    )
    example = site(demand_charge_per_kw="0")
    st = only(Biller(example).bill([s], "2026-10").statements, "U105")
    assert (st.period_first, st.period_last) == (date(2026, 10, 1), date(2026, 10, 31))
    assert (st.issued, st.due, st.payee) == (date(2026, 11, 1), date(2026, 11, 22), example.name)
    units = {ln.kind: (ln.unit, ln.rate_unit) for ln in st.lines}
    assert units == {
        "energy": ("kWh", "USD/kWh"),
        "session_fee": ("session", "USD"),
        "idle_fee": ("min", "USD/h"),
        "tax": ("USD", "%"),
    }


def test_a_session_across_the_month_end_says_where_the_rest_is_billed() -> None:
    # 7.2 kW from 23:00 PDT on 31 October (06:00Z) to 01:00 PDT on 1 November: 7,200 Wh before midnight, 7,200 after
    s = session(
        "MF-P1-02",
        "TAG-U102",
        "2",
        [("2026-11-01T06:00:00Z", 0), ("2026-11-01T07:00:00Z", 7_200), ("2026-11-01T08:00:00Z", 14_400)],
    )
    biller = Biller(site(demand_charge_per_kw="0"))
    october = only(biller.bill([s], "2026-10").statements, "U102").sessions[0]
    november = only(biller.bill([s], "2026-11").statements, "U102").sessions[0]
    assert october.note == (
        "14.400 kWh in all; 7.200 kWh this month; the rest (7.200 kWh) and the session fee on the next statement"
    )
    assert (
        november.note == "14.400 kWh in all; 7.200 kWh this month; the other 7.200 kWh on the 2026-10 statement; "
        "the session fee on this one"
    )


def test_the_demand_line_explains_its_interval_sessions_rule_and_share() -> None:
    # Example (tests/metering/example_statement.py): U101 7.2 kW 15:30–18:00 PST and U102 3.6 kW 16:30–18:30 PST on
    # Tue 17 Nov. Every quarter hour from 16:30 to 18:00 totals 10.8 kW; the earliest, 16:30–16:45, is the peak.
    from tests.metering.example_statement import example_run

    run = example_run()
    (demand,) = [ln for ln in only(run.statements, "U101").lines if ln.kind == "demand"]
    assert (demand.quantity, demand.rate, demand.rate_unit, demand.amount) == (
        Decimal("7.2"), Decimal("12.00"), "USD/kW", Decimal("86.40"),
    )  # fmt: skip
    assert "10.800 kW" in demand.detail and "15-minute interval 2026-11-17 16:30 PST–16:45 PST" in demand.detail
    assert "each unit pays 12.00 USD/kW on its own average kW in that interval" in demand.detail
    assert "Yours: 7.200 kW (66.7 % of the peak), from MF-P1-01#102 7.200 kW." in demand.detail
    assert run.summary.demand_allocated_kw == Decimal("10.8") and run.summary.demand_unallocated_kw == 0
