"""Site lookups answer from indexes exactly as a scan of the lists would, and follow changes to the lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.site import Evse, Site, load_site

EXAMPLES = ("residential", "workplace-20", "multifamily-30")


@pytest.mark.parametrize("name", EXAMPLES)
def test_lookups_agree_with_a_scan(examples_dir: Path, name: str) -> None:
    site = load_site(examples_dir / f"{name}.yaml")
    nodes = {"service", *(p.id for p in site.panels), *(f.id for f in site.feeders), *(c.id for c in site.circuits)}
    for panel in site.panels:
        assert site.panel(panel.id) is panel
        assert site.circuits_in(panel.id) == [c for c in site.circuits if c.panel == panel.id]
    for feeder in site.feeders:
        assert site.feeder(feeder.id) is feeder
    for circuit in site.circuits:
        assert site.circuit(circuit.id) is circuit
        assert site.evse_on(circuit.id) == [e for e in site.evse if e.circuit == circuit.id]
    for node in nodes:
        assert site.feeders_from(node) == [f for f in site.feeders if f.from_panel == node]
        assert site.panels_fed_by(node) == [p for p in site.panels if p.fed_by == node]
        assert site.ems_for(node) == [e for e in site.ems if node in e.manages]
    assert site.evse_on("no-such-circuit") == []


def test_an_unknown_id_is_a_key_error(examples_dir: Path) -> None:
    site = load_site(examples_dir / "residential.yaml")
    with pytest.raises(KeyError):
        site.panel("nope")
    with pytest.raises(KeyError):
        site.circuit("nope")


def test_lookups_follow_appended_and_replaced_lists(examples_dir: Path) -> None:
    site = load_site(examples_dir / "workplace-20.yaml")
    circuit = site.circuits[0].id
    before = site.evse_on(circuit)
    extra = Evse(id="NEW-1", circuit=circuit, max_current_a=32)
    site.evse.append(extra)
    assert site.evse_on(circuit) == [*before, extra]
    site.evse = [extra]
    assert site.evse_on(circuit) == [extra]
    copy: Site = site.model_copy(update={"evse": []})
    assert copy.evse_on(circuit) == [] and site.evse_on(circuit) == [extra]


def test_returned_lists_are_copies(examples_dir: Path) -> None:
    site = load_site(examples_dir / "workplace-20.yaml")
    circuit = site.circuits[0].id
    site.evse_on(circuit).clear()
    assert site.evse_on(circuit)
