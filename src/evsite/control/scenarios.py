"""Named replay scenarios: a site, a set of sessions and what happens around them.

Sessions and events are generated from a seed so that runs are reproducible and baselines see
exactly the same day. Numbers (arrival windows, energies, on-board charger limits) are typical of
the site type, not measurements; real sessions come in through `--sessions FILE` (see
`load_sessions`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from evsite.site import load_site
from evsite.site.model import PvCharging, Site

HOUR = 3600.0


@dataclass
class Session:
    """One EV visit: which port, when, how much energy, and how the car behaves."""

    evse: str
    arrival_s: float
    departure_s: float
    energy_wh: float
    ev_max_a: float = 32.0
    ev_phases: int = 1
    connector: int = 1
    weight: float = 1.0
    start_delay_s: float = 10.0
    lag_s: float = 3.0
    unit: str | None = None
    id_tag: str | None = None


@dataclass
class DrEvent:
    start_s: float
    end_s: float
    node: str
    amps: float
    lost_at_s: float | None = None  # the DR channel stops answering here (the event itself goes on)


@dataclass
class Fault:
    """One misbehaviour from `start_s` to `end_s` of a charger (`target`, "*" for all).

    meter-dropout: the building meter goes stale. reject: the charger rejects every profile.
    overdraw: its cars draw `factor` × the pilot. ignore-pilot: every EV keeps its draw (a glitch).
    ignore: the charger accepts every profile and applies none (its car takes what it wants).
    late: it applies each profile `delay_s` late (a stale one included). meter-low: it reports `factor` ×
    what it draws. restart: the controller restarts (fresh memory) at `start_s`.
    """

    kind: str  # "meter-dropout" | "reject" | "overdraw" | "ignore-pilot" | "ignore" | "late" | "meter-low" | "restart"
    start_s: float
    end_s: float = 0.0
    target: str = ""
    factor: float = 1.1
    delay_s: float = 0.0


@dataclass
class Scenario:
    name: str
    site: Site
    sessions: list[Session]
    duration_s: float
    start: datetime = datetime(2026, 6, 3, 0, 0, tzinfo=UTC)
    building: Callable[[float], dict[str, np.ndarray]] | None = None  # true non-EV current by node
    pv_surplus: Callable[[float], np.ndarray] | None = None
    pv: PvCharging = field(default_factory=PvCharging)
    dr: list[DrEvent] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    step_s: float = 2.0
    node_meters: bool = False  # the site's meters on tree nodes report the true current every signal period


def example_site(name: str) -> Site:
    return load_site(Path(str(resources.files("evsite.examples").joinpath(f"{name}.yaml"))))


def _ports(site: Site) -> list[tuple[str, int]]:
    return [(e.id, c.id) for e in site.evse for c in e.connectors]


def _random_sessions(
    site: Site,
    rng: np.random.Generator,
    n_sessions: int,
    arrive: tuple[float, float],
    stay_h: tuple[float, float],
    kwh: tuple[float, float],
    day_offset_s: float = 0.0,
    ev_max_choices: tuple[float, ...] = (16.0, 32.0, 32.0, 40.0, 48.0),
) -> list[Session]:
    """Sessions spread over the ports; a port takes its next car only after the previous one left."""
    ports = _ports(site)
    free_at = dict.fromkeys(ports, 0.0)
    sessions = []
    for arrival in np.sort(rng.uniform(arrive[0] * HOUR, arrive[1] * HOUR, n_sessions)):
        candidates = [p for p in ports if free_at[p] <= arrival]
        if not candidates:
            continue
        port = candidates[int(rng.integers(len(candidates)))]
        stay = rng.uniform(stay_h[0], stay_h[1]) * HOUR
        sessions.append(
            Session(
                evse=port[0],
                connector=port[1],
                arrival_s=day_offset_s + float(arrival),
                departure_s=day_offset_s + float(arrival + stay),
                energy_wh=float(rng.uniform(*kwh)) * 1000.0,
                ev_max_a=float(rng.choice(ev_max_choices)),
                ev_phases=1,
                start_delay_s=float(rng.uniform(5, 40)),
                lag_s=float(rng.uniform(1, 6)),
            )
        )
        free_at[port] = arrival + stay + 300.0
    return sessions


def _profile(peak_a: float, shape: str) -> Callable[[float], float]:
    """A smooth daily building profile (fraction of peak by hour of day)."""
    if shape == "office":
        hours = [0.3] * 7 + [0.5, 0.8, 0.9, 1.0, 1.0, 0.95, 1.0, 0.95, 0.9, 0.8, 0.6] + [0.4] * 6
    elif shape == "multifamily":
        hours = [0.35, 0.3, 0.3, 0.3, 0.3, 0.35, 0.5, 0.6, 0.5, 0.45, 0.45, 0.45]
        hours += [0.5, 0.5, 0.5, 0.55, 0.65, 0.8, 0.95, 1.0, 0.95, 0.8, 0.6, 0.45]
    else:
        hours = [0.3] * 17 + [0.6, 0.95, 1.0, 0.7, 0.5, 0.4, 0.3]

    def at(t: float) -> float:
        h = (t / HOUR) % 24
        i = int(h)
        frac = h - i
        return peak_a * (hours[i] * (1 - frac) + hours[(i + 1) % 24] * frac)

    return at


def workplace_day(seed: int = 1) -> Scenario:
    """20 ports, 8:00–10:00 arrivals, 4–9 h stays: more demand than the 160 A EMS setpoint all morning."""
    site = example_site("workplace-20")
    rng = np.random.default_rng(seed)
    sessions = _random_sessions(site, rng, 30, (7.5, 13.0), (3.0, 9.0), (8.0, 40.0))
    return Scenario("workplace-day", site, sessions, 24 * HOUR)


def multifamily_overnight(seed: int = 2) -> Scenario:
    """30 ports, 17:00–21:00 arrivals, leave 06:00–08:30, with the apartments' evening peak on the service."""
    site = example_site("multifamily-30")
    rng = np.random.default_rng(seed)
    sessions = _random_sessions(site, rng, 34, (17.0, 21.5), (9.0, 14.0), (5.0, 40.0))
    peak = _profile(1166.0, "multifamily")  # 420 kW at 208 V 3φ ≈ 1,166 A per line
    return Scenario(
        "multifamily-overnight",
        site,
        sessions,
        36 * HOUR,
        building=lambda t: {"service": np.full(3, peak(t))},
        step_s=2.0,
    )


def dr_curtailment(seed: int = 1, lose_channel: bool = False) -> Scenario:
    """The workplace day with a DR event at 14:00 taking the 200 A allocation to 80 A for 2 h."""
    base = workplace_day(seed)
    lost = 14.5 * HOUR if lose_channel else None
    base.dr = [DrEvent(14 * HOUR, 16 * HOUR, "allocation", 80.0, lost)]
    base.name = "dr-curtailment-lost" if lose_channel else "dr-curtailment"
    # Keep the site busy through the event.
    rng = np.random.default_rng(seed + 100)
    base.sessions += _random_sessions(base.site, rng, 12, (12.5, 13.5), (3.0, 4.0), (20.0, 40.0))
    return base


def pv_surplus(seed: int = 3) -> Scenario:
    """The home charger from PV surplus only, a sunny day with cloud transients (1–5 min dips)."""
    site = example_site("residential")
    rng = np.random.default_rng(seed)
    clouds = [(float(s), float(s + rng.uniform(60, 300))) for s in rng.uniform(10 * HOUR, 16 * HOUR, 12)]

    def surplus(t: float) -> np.ndarray:
        h = (t / HOUR) % 24
        sun = max(0.0, math.sin(math.pi * (h - 6.0) / 14.0)) * 7600.0 / 240.0  # 7.6 kW inverter
        if any(a <= t < b for a, b in clouds):
            sun *= 0.2
        house = 6.0
        return np.array([max(0.0, sun - house)] * 2 + [0.0])

    sessions = [Session("HOME-EV1", 8 * HOUR, 19 * HOUR, 30_000.0, ev_max_a=48.0, start_delay_s=20.0)]
    return Scenario(
        "pv-surplus",
        site,
        sessions,
        24 * HOUR,
        building=lambda t: {"service": np.array([40.0, 40.0, 0.0])},
        pv_surplus=surplus,
        pv=PvCharging(mode="pv-only", node="service", enable_s=60.0, disable_s=180.0),
    )


def residential_evening() -> Scenario:
    """Seed scenario 1: the house peaks at 142 A from 18:00 to 20:00 while the car charges at 48 A."""
    site = example_site("residential")
    sessions = [Session("HOME-EV1", 17 * HOUR, 23.5 * HOUR, 60_000.0, ev_max_a=48.0)]

    def house(t: float) -> dict[str, np.ndarray]:
        amps = 142.0 if 18 * HOUR <= t < 20 * HOUR else 50.0
        return {"service": np.array([amps, amps, 0.0])}

    return Scenario("residential-evening", site, sessions, 24 * HOUR, building=house)


def tariff_deadline(seed: int = 4) -> Scenario:
    """Multifamily overnight with deadlines known: cheaper energy after 21:00 (TOU), departure times given."""
    scenario = multifamily_overnight(seed)
    scenario.name = "tariff-deadline"
    return scenario


def faults(seed: int = 5) -> Scenario:
    """Workplace day with every fault kind in turn: a 5 min building-meter dropout, a charger rejecting
    profiles, EVs overdrawing 10 % for 7 s, EVs ignoring a lower pilot for 10 s, a controller restart,
    and persistent disobedience: a charger ignoring every profile, one applying them 60 s late, every
    car 8 % over its pilot, and a charger that ignores profiles and reports half its draw (the EV
    feeder's panel meter reads the truth)."""
    base = workplace_day(seed)
    base.name = "faults"
    office = _profile(860.0, "office")
    base.building = lambda t: {"service": np.full(3, office(t))}
    base.node_meters = True
    base.faults = [
        Fault("ignore", 8 * HOUR, 9 * HOUR, target="WP-07"),
        Fault("meter-dropout", 10 * HOUR, 10 * HOUR + 300),
        Fault("reject", 9 * HOUR, 12 * HOUR, target="WP-05"),
        Fault("late", 9.25 * HOUR, 9.75 * HOUR, target="WP-09", delay_s=60.0),
        Fault("overdraw", 11 * HOUR, 11 * HOUR + 7, target="*", factor=1.1),
        Fault("ignore-pilot", 10.5 * HOUR, 10.5 * HOUR + 10, target="*"),
        Fault("restart", 11.5 * HOUR),
        Fault("overdraw", 11.75 * HOUR, 12.25 * HOUR, target="*", factor=1.08),
        Fault("ignore", 12.5 * HOUR, 13 * HOUR, target="WP-11"),
        Fault("meter-low", 12.5 * HOUR, 13 * HOUR, target="WP-11", factor=0.5),
    ]
    return base


FAULT_CASES: dict[str, list[Fault]] = {
    "ignore": [Fault("ignore", 0.0, 24 * HOUR, target="WP-02")],
    "ignore3": [Fault("ignore", 0.0, 24 * HOUR, target=t) for t in ("WP-02", "WP-05", "WP-08")],
    "overdraw10": [Fault("overdraw", 0.0, 24 * HOUR, target="*", factor=1.10)],
    "overdraw4": [Fault("overdraw", 0.0, 24 * HOUR, target="*", factor=1.04)],
    "late60": [Fault("late", 0.0, 24 * HOUR, target="WP-02", delay_s=60.0)],
    "meter-low": [
        Fault("ignore", 0.0, 24 * HOUR, target="WP-02"),
        Fault("meter-low", 0.0, 24 * HOUR, target="WP-02", factor=0.5),
    ],
    "reject": [Fault("reject", 0.0, 24 * HOUR, target="WP-02")],
}
"""One persistent misbehaviour each, all day on the workplace day (`faults-<case>`): the rows of the
table in docs/load-management.md."""


def fault_case(case: str, seed: int = 5) -> Scenario:
    """The workplace day with one misbehaviour all day long, the EV feeder's panel meter live."""
    base = workplace_day(seed)
    base.name = f"faults-{case}"
    base.node_meters = True
    base.faults = list(FAULT_CASES[case])
    return base


def scale_site(n_ports: int, ports_per_panel: int = 50) -> Site:
    """A synthetic 480Y/277 V site: service → feeders → panels of ≤ 50 ports, mixed 1φ/3φ, phase-rotated."""
    rotations = [["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L3", "L1", "L2"]]
    pairs = [["L1", "L2"], ["L2", "L3"], ["L3", "L1"]]
    n_panels = max(1, math.ceil(n_ports / ports_per_panel))
    per_panel_a = 0.35 * 32 * ports_per_panel  # each feeder shared at about a third of the connected load
    run = {"size": "3/0 AWG", "length_ft": 100}
    rating = 5000.0 * max(1, n_ports // 1000)  # carries 0.8 × 5000 = 4000 A continuously per 1000 ports
    service: dict[str, Any] = {"system": "480Y/277V", "rating_a": rating}
    if n_ports >= 10:
        service["allocation_a"] = min(0.3 * 32 * n_ports, 0.8 * rating)  # a third of the connected load
    data: dict[str, Any] = {
        "name": f"scale-{n_ports}",
        "service": service,
        "panels": [{"id": "MSB", "bus_rating_a": rating}],
        "feeders": [],
        "circuits": [],
        "evse": [],
    }
    for k in range(n_panels):
        data["feeders"].append({"id": f"F{k}", "from_panel": "MSB", "ocpd_a": per_panel_a / 0.8, "conductors": run})
        data["panels"].append({"id": f"P{k}", "fed_by": f"F{k}", "bus_rating_a": per_panel_a * 2})
    for i in range(n_ports):
        three = i % 3 == 0
        lines = rotations[i % 3] if three else pairs[(i // 3) % 3]
        data["circuits"].append(
            {
                "id": f"C{i}",
                "panel": f"P{i // ports_per_panel}",
                "ocpd_a": 40,
                "lines": lines,
                "conductors": {"size": "8 AWG", "length_ft": 50},
            }
        )
        data["evse"].append({"id": f"E{i}", "circuit": f"C{i}", "max_current_a": 32, "phases": 3 if three else 1})
    return Site.model_validate(data)


def scale(n_ports: int = 1000, seed: int = 6, hours: float = 1.0) -> Scenario:
    """Every port busy for an hour: the allocation and feeders are far below the connected load."""
    site = scale_site(n_ports)
    rng = np.random.default_rng(seed)
    sessions = [
        Session(
            e.id,
            float(rng.uniform(0, 60)),
            hours * HOUR + 3600,
            float(rng.uniform(10, 60)) * 1000,
            ev_max_a=float(rng.choice([16.0, 32.0])),
            ev_phases=3 if e.phases == 3 and rng.random() < 0.7 else 1,
            start_delay_s=float(rng.uniform(5, 40)),
            lag_s=float(rng.uniform(1, 6)),
        )
        for e in site.evse
    ]
    return Scenario(f"scale-{n_ports}", site, sessions, hours * HOUR, step_s=2.0)


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "workplace-day": workplace_day,
    "multifamily-overnight": multifamily_overnight,
    "dr-curtailment": dr_curtailment,
    "dr-curtailment-lost": lambda: dr_curtailment(lose_channel=True),
    "pv-surplus": pv_surplus,
    "residential-evening": residential_evening,
    "tariff-deadline": tariff_deadline,
    "faults": faults,
    **{f"faults-{case}": partial(fault_case, case) for case in FAULT_CASES},
    "scale": scale,
}


def get_scenario(name: str) -> Scenario:
    if name.startswith("scale-") and name[6:].isdigit():
        return scale(int(name[6:]))
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; choose one of {', '.join(sorted(SCENARIOS))} or scale-N")
    return SCENARIOS[name]()


def load_sessions(path: Path) -> list[Session]:
    """Sessions from JSON (a list of objects) or CSV with the `Session` field names as columns."""
    text = path.read_text(encoding="utf-8")
    rows: list[dict[str, Any]]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        loaded = json.loads(text)
        rows = loaded["sessions"] if isinstance(loaded, dict) else loaded
    names = set(Session.__dataclass_fields__)
    sessions = []
    for i, row in enumerate(rows, 1):
        unknown = set(row) - names
        if unknown:
            raise ValueError(f"{path}: session {i}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            values: dict[str, Any] = {
                k: (v if k in ("evse", "unit", "id_tag") else float(v)) for k, v in row.items() if v != ""
            }
            for k in ("ev_phases", "connector"):
                if k in values:
                    values[k] = int(values[k])
            sessions.append(Session(**values))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: session {i}: {exc}") from None
    return sessions
