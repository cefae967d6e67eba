"""The EMS as designed (issue 17): the site must stay within the EMS setpoint with every charger at its fallback."""

from __future__ import annotations

from evsite.code.findings import Status
from evsite.code.rules.context import SiteIndex
from evsite.code.rules.ems_design import fallback_currents
from evsite.control.failsafe import safe_default_limits
from evsite.site.model import Site
from tests.code_check.helpers import check_dict, example_dict, one, one_circuit


def _five_on_a_managed_panel(**ems: object) -> dict:
    """Five 48 A chargers at 240 V on panel P (one line pair), the panel managed to 160 A."""
    data = one_circuit({"max_current_a": 48, "listing": ["UL 2594"]})
    base = data["circuits"][0]
    data["circuits"] = [{**base, "id": f"C{i}"} for i in range(5)]
    data["evse"] = [{"id": f"EV{i}", "circuit": f"C{i}", "max_current_a": 48, "listing": ["UL 2594"]} for i in range(5)]
    data["service"]["rating_a"] = 400
    data["panels"][0].update({"bus_rating_a": 400, "main_ocpd_a": 400})
    data["ems"] = [{"id": "EMS", "kind": "external", "manages": ["P"], "setpoint_a": 160, **ems}]
    return data


def test_external_ems_without_a_fallback_fails_at_nameplate():
    # 5 × 48 A = 240 A on each line with the EMS lost > 160 A: the design rests on a limit nobody enforces.
    f = one(check_dict(_five_on_a_managed_panel()), "panel P", "Design with the EMS lost")
    assert f.status is Status.FAIL
    assert f.inputs["fallback_worst_line_a"] == 240
    assert f.fix is not None and "at most 32 A" in f.fix  # 160 A / 5 chargers


def test_external_ems_with_a_stated_fallback_passes():
    f = one(check_dict(_five_on_a_managed_panel(fallback_a=16)), "panel P", "Design with the EMS lost")
    assert f.status is Status.PASS and f.inputs["fallback_worst_line_a"] == 80


def test_evsite_ems_uses_the_fail_safe_profiles_the_ocpp_server_installs():
    site = Site.model_validate(example_dict("workplace-20"))
    installed = safe_default_limits(site)
    got = fallback_currents(SiteIndex.build(site))
    assert {k: v[0] for k, v in got.items()} == {k: v for k, v in installed.items() if k in got}
    assert all(v[1].startswith("evsite fail-safe profile") for v in got.values())
    f = one(check_dict(example_dict("workplace-20")), "feeder F-EV", "Design with the EMS lost")
    assert f.status is Status.PASS and f.inputs["fallback_worst_line_a"] <= 160
