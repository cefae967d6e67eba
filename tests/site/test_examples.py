"""The shipped examples load, describe the seed scenarios, and survive a dump/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.site import dump_site, load_site, load_site_text
from evsite.site.model import MeterAccuracy, ServiceSystem

EXAMPLES = ["residential", "workplace-20", "multifamily-30"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_and_round_trips(examples_dir: Path, name: str) -> None:
    site = load_site(examples_dir / f"{name}.yaml")
    again = load_site_text(dump_site(site), f"{name}-dump.yaml")
    assert again == site


def test_residential_describes_the_seed_circuit(examples_dir: Path) -> None:
    site = load_site(examples_dir / "residential.yaml")
    assert site.service.system is ServiceSystem.SPLIT_PHASE_120_240
    assert site.service.rating_a == 200
    (evse,) = site.evse
    circuit = site.circuit(evse.circuit)
    assert (evse.max_current_a, circuit.ocpd_a) == (48, 60)
    assert (circuit.conductors.size, circuit.conductors.material.value) == ("6 AWG", "cu")
    assert (circuit.conductors.raceway.type.value, circuit.conductors.raceway.trade_size) == ("emt", "3/4")
    assert [line.value for line in circuit.lines] == ["L1", "L2"]
    assert site.inverters[0].modbus is not None
    assert site.ems, "the home energy management system is part of the scenario"


def test_workplace_has_twenty_ports_on_a_managed_200_a_allocation(examples_dir: Path) -> None:
    site = load_site(examples_dir / "workplace-20.yaml")
    assert len(site.evse) == 20
    assert all(e.max_current_a == 48 for e in site.evse)
    assert site.service.allocation_a == 200
    (ems,) = site.ems
    feeder = next(f for f in site.feeders if f.id in ems.manages)
    assert feeder.ocpd_a == 200
    assert all(e.comms.medium.value == "ethernet" and e.ocpp.version == "1.6" for e in site.evse)
    # phase rotation: every line pair is used
    pairs = {tuple(line.value for line in site.circuit(e.circuit).lines) for e in site.evse}
    assert pairs == {("L1", "L2"), ("L2", "L3"), ("L3", "L1")}


def test_multifamily_has_150_units_30_chargers_two_levels(examples_dir: Path) -> None:
    site = load_site(examples_dir / "multifamily-30.yaml")
    assert len(site.units) == 150
    assert len(site.evse) == 30
    assert {e.level for e in site.evse} == {"P1", "P2"}
    assert site.billing.enabled and site.billing.sells_by_kwh
    assert {m.accuracy for m in site.meters if m.role.value == "panel"} == {MeterAccuracy.C12_20_CLASS_05}
    assert site.tag_unit("TAG-U304") == "U304"


def test_lengths_in_metres_and_feet_agree() -> None:
    base = """
name: t
service: {system: 120/240V-1ph, rating_a: 100}
panels: [{id: P, bus_rating_a: 100}]
circuits:
  - id: C
    panel: P
    ocpd_a: 20
    lines: [L1]
    conductors: {size: 12 AWG, %s}
"""
    in_feet = load_site_text(base % "length_ft: 98.425")
    in_metres = load_site_text(base % "length_m: 30")
    as_text = load_site_text(base % 'length: "30 m"')
    for site in (in_metres, as_text):
        assert site.circuits[0].conductors.length_ft == pytest.approx(in_feet.circuits[0].conductors.length_ft, 1e-4)
    hot = load_site_text(base % "length_ft: 10, ambient_f: 104")
    assert hot.circuits[0].conductors.ambient_c == pytest.approx(40.0)
    hot_text = load_site_text(base % 'length_ft: 10, ambient: "104 °F"')
    assert hot_text.circuits[0].conductors.ambient_c == pytest.approx(40.0)
