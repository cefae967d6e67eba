"""Every named replay scenario: the load manager's built-in ones and the synthetic multifamily month.

The month comes from the billing data generator (`evsite.metering.month`), which sits above the
load manager; naming all scenarios here, above both, lets neither import the other.
"""

from __future__ import annotations

from evsite.control import scenarios as builtin
from evsite.control.scenarios import Scenario

MULTIFAMILY_MONTH = "multifamily-month"


def names() -> list[str]:
    """Every scenario name `get_scenario` knows (plus `scale-N` for any N)."""
    return sorted([*builtin.SCENARIOS, MULTIFAMILY_MONTH])


def get_scenario(name: str) -> Scenario:
    """A scenario by name; KeyError naming the choices when there is none."""
    if name == MULTIFAMILY_MONTH:
        from evsite.metering.month import DEFAULT_SEED, control_scenario  # SQLAlchemy: load only when asked

        return control_scenario(DEFAULT_SEED)
    if name in builtin.SCENARIOS or (name.startswith("scale-") and name[6:].isdigit()):
        return builtin.get_scenario(name)
    raise KeyError(f"unknown scenario {name!r}; choose one of {', '.join(names())} or scale-N")
