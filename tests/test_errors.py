"""One exception tree: everything evsite raises on purpose is an EvsiteError, and keeps the base its callers catch."""

from __future__ import annotations

import pytest

from evsite.api.problems import ApiProblem
from evsite.api.tokens import TokenNameTaken
from evsite.bms.mqtt import CommandError
from evsite.code.calc.common import CalcError
from evsite.errors import ChargerError, ConfigurationError, DeviceError, EvsiteError, InputError, StoreError
from evsite.grid import modbus, regmap, sunspec
from evsite.metering.billing import BillingError
from evsite.metering.ocmf import OcmfError
from evsite.metering.tariffs import TariffError
from evsite.metering.tenants import UnknownTag
from evsite.ocpp.errors import CallErrorReceived, CallTimeout, NotConnected, OcppError
from evsite.site.conductors import ConductorSizeError
from evsite.site.load import SiteFileError, load_site_text
from evsite.site.units import UnitError
from evsite.store.samples import to_epoch


@pytest.mark.parametrize(
    ("error", "kind", "builtin"),
    [
        (SiteFileError, ConfigurationError, ValueError),
        (UnitError, ConfigurationError, ValueError),
        (ConductorSizeError, ConfigurationError, ValueError),
        (TariffError, ConfigurationError, ValueError),
        (regmap.MapError, ConfigurationError, ValueError),
        (CalcError, InputError, ValueError),
        (CommandError, InputError, ValueError),
        (OcmfError, InputError, ValueError),
        (BillingError, InputError, ValueError),
        (TokenNameTaken, InputError, ValueError),
        (UnknownTag, EvsiteError, LookupError),
        (OcppError, ChargerError, Exception),
        (CallErrorReceived, OcppError, Exception),
        (CallTimeout, ChargerError, Exception),
        (NotConnected, ChargerError, Exception),
        (modbus.DeviceError, DeviceError, Exception),
        (sunspec.SunSpecError, DeviceError, Exception),
        (sunspec.RegistersRefused, DeviceError, Exception),
        (ApiProblem, EvsiteError, Exception),
    ],
)
def test_every_error_sits_under_evsite_error(error: type[Exception], kind: type[Exception], builtin: type) -> None:
    assert issubclass(error, kind) and issubclass(error, EvsiteError) and issubclass(error, builtin)


def test_a_bad_site_file_is_caught_as_an_evsite_error() -> None:
    with pytest.raises(EvsiteError) as caught:
        load_site_text("name: x\nservice: {system: 208Y/120V, rating_a: -1}\npanels: []\n", "bad.yaml")
    assert isinstance(caught.value, SiteFileError) and "bad.yaml:" in str(caught.value)


def test_the_store_refuses_a_naive_time_with_a_store_error() -> None:
    from datetime import datetime

    with pytest.raises(StoreError, match="naive datetime"):
        to_epoch(datetime(2026, 1, 1))
