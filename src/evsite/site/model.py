"""The site model: one validated description of an EV charging site.

The same objects serve the design check (NEC sizing of each circuit) and the run-time controller
(the limit each node must never exceed), so a field here means one thing everywhere. Units are in
field names (`rating_a`, `length_ft`); lengths and temperatures may also be written with a unit
("75 ft", "23 m", "86 °F") and are stored in feet and °C.

Cross-references (a circuit's panel, an EVSE's circuit, duplicate ids) are checked in
`evsite.site.references`, so that a file with many problems reports all of them at once.
"""

from __future__ import annotations

import typing
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from evsite.site.text import short_repr
from evsite.site.units import fahrenheit_to_celsius, metres_to_feet, parse_length_ft, parse_temperature_c

Id = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
"""Element ids are also OCPP charge point ids for EVSE (≤ 48 chars, URL-safe)."""

Amps = Annotated[float, Field(gt=0)]
NonNegAmps = Annotated[float, Field(ge=0)]

# Plausibility bounds: a value outside them is a typo or a hostile file, never a real installation.
MAX_CURRENT_A = 6000.0
"""Largest standard fuse or breaker rating (NEC 240.6(A)); no rating, setting or demand on a site exceeds it."""
MAX_FAULT_CURRENT_A = 300_000.0
"""Highest interrupting rating UL 248-1 provides for low-voltage fuses (300 kA): nothing interrupts more."""
MAX_RUN_M = 3000.0
MAX_RUN_FT = MAX_RUN_M / 0.3048
"""Longest conductor or comms run: 3 km. Longer low-voltage runs drop too much voltage to exist."""
AMBIENT_MIN_C, AMBIENT_MAX_C = -50.0, 90.0
"""Ambient range around a run. Above 90 °C, the rating of the hottest common insulation, no conductor may
carry current (Table 310.15(B)(1)(1) itself stops at 85 °C; the checker reports 85-90 °C as beyond it).
-50 °C is a generous cold bound: the table's lowest band is "10 °C or less"."""

Current = Annotated[float, Field(gt=0, le=MAX_CURRENT_A)]
"""A rating, setting or demand in amperes: positive and at most MAX_CURRENT_A."""


class Strict(BaseModel):
    """Base for every site element: unknown fields are errors, numbers are finite and never yes/no."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_yes_no_numbers(cls, data: Any) -> Any:
        """pydantic reads `true` as 1 in a number field: `rating_a: true` would be a 1 A service."""
        if isinstance(data, dict):
            numeric = _numeric_fields(cls)
            for key, value in data.items():
                if isinstance(value, bool) and key in numeric:
                    raise ValueError(f"{key} {value!r} is yes/no; {key} takes a number")
        return data


@cache
def _numeric_fields(model: type[BaseModel]) -> frozenset[str]:
    """Fields of `model` that hold a number (int, float or Decimal, optional or not)."""
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, UnionType) else (annotation,)
        bare = [typing.get_args(arg)[0] if typing.get_origin(arg) is Annotated else arg for arg in args]
        if any(arg in (int, float, Decimal) for arg in bare):
            names.add(name)
    return frozenset(names)


# --------------------------------------------------------------------------- enums


class ServiceSystem(StrEnum):
    """Nominal voltage systems found at EV sites in North America."""

    SPLIT_PHASE_120_240 = "120/240V-1ph"
    WYE_208_120 = "208Y/120V"
    WYE_480_277 = "480Y/277V"
    NETWORK_120_208 = "120/208V-1ph"

    @property
    def line_to_line_v(self) -> float:
        return {"120/240V-1ph": 240.0, "208Y/120V": 208.0, "480Y/277V": 480.0, "120/208V-1ph": 208.0}[self.value]

    @property
    def line_to_neutral_v(self) -> float:
        return {"120/240V-1ph": 120.0, "208Y/120V": 120.0, "480Y/277V": 277.0, "120/208V-1ph": 120.0}[self.value]

    @property
    def lines(self) -> tuple[str, ...]:
        """Ungrounded conductors the service provides."""
        return ("L1", "L2") if self in (self.SPLIT_PHASE_120_240, self.NETWORK_120_208) else ("L1", "L2", "L3")

    @property
    def is_three_phase(self) -> bool:
        return len(self.lines) == 3


class Line(StrEnum):
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class Material(StrEnum):
    CU = "cu"
    AL = "al"


class RacewayType(StrEnum):
    EMT = "emt"
    RMC = "rmc"
    IMC = "imc"
    PVC40 = "pvc40"
    PVC80 = "pvc80"
    FMC = "fmc"
    LFMC = "lfmc"
    ENT = "ent"
    CABLE = "cable"  # NM, MC or similar cable assembly: no raceway fill applies
    NONE = "none"


class Location(StrEnum):
    INDOOR = "indoor"
    OUTDOOR = "outdoor"


class Connection(StrEnum):
    HARDWIRED = "hardwired"
    NEMA_14_50 = "nema-14-50"
    NEMA_14_30 = "nema-14-30"
    NEMA_6_50 = "nema-6-50"
    NEMA_6_30 = "nema-6-30"
    NEMA_6_20 = "nema-6-20"
    NEMA_5_20 = "nema-5-20"
    NEMA_5_15 = "nema-5-15"
    NEMA_14_60 = "nema-14-60"

    @property
    def is_receptacle(self) -> bool:
        return self is not Connection.HARDWIRED


class CommsMedium(StrEnum):
    ETHERNET = "ethernet"
    WIFI = "wifi"
    CELLULAR = "cellular"
    PLC = "plc"
    RS485 = "rs485"
    NONE = "none"


class MeterAccuracy(StrEnum):
    """Meter accuracy as billing rules see it (ANSI C12.1 / C12.20, NIST HB 44 §3.40)."""

    INFORMATIONAL = "informational"
    C12_1 = "c12.1"  # ±2 % class under ANSI C12.1
    C12_20_CLASS_05 = "c12.20-0.5"
    C12_20_CLASS_02 = "c12.20-0.2"

    @property
    def revenue_grade(self) -> bool:
        return self is not MeterAccuracy.INFORMATIONAL

    @property
    def tolerance_pct(self) -> float:
        """Accuracy bound used for reconciliation; informational meters assumed ±5 %."""
        return {"informational": 5.0, "c12.1": 2.0, "c12.20-0.5": 0.5, "c12.20-0.2": 0.2}[self.value]


class MeterRole(StrEnum):
    SITE = "site"
    PANEL = "panel"
    EVSE = "evse"
    BUILDING = "building"
    PV = "pv"


class ListingStandard(StrEnum):
    UL_2594 = "UL 2594"  # AC EVSE
    UL_2202 = "UL 2202"  # DC charging equipment
    UL_9741 = "UL 9741"  # bidirectional EV charging equipment
    UL_1741 = "UL 1741"  # inverters incl. SB
    UL_2231 = "UL 2231"  # personnel protection (CCID)
    UL_916 = "UL 916"  # energy management equipment
    UL_3141 = "UL 3141"  # power control systems
    CSA_C22_2_280 = "CSA C22.2 No. 280"


# --------------------------------------------------------------------------- wiring


class Raceway(Strict):
    """The raceway a run of conductors is pulled through (Chapter 9 fill applies)."""

    type: RacewayType = RacewayType.EMT
    trade_size: str | None = Field(default=None, description='Trade size, e.g. "3/4" or "1-1/4".')
    # Issue 17: where the raceway runs (wet-location insulation, burial depth, rooftop temperature adder).
    location: Literal["indoor", "outdoor", "underground", "rooftop"] = "indoor"
    burial_depth_in: float | None = Field(
        default=None, ge=0, le=600, description="Cover over the raceway or cable, inches (underground, 300.5)."
    )
    burial_location: Literal[
        "general",
        "trench-under-2in-concrete",
        "under-building",
        "under-4in-slab",
        "street-driveway-parking",
        "dwelling-driveway",
        "airport-runway",
    ] = Field(default="general", description="The Table 300.5 row the underground run is in.")
    height_above_roof_in: float | None = Field(
        default=None, ge=0, le=1200, description="Bottom of the raceway above the roof, inches (rooftop)."
    )

    @field_validator("trade_size", mode="before")
    @classmethod
    def _trade_size_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(int(value)) if float(value).is_integer() else str(value)
        if isinstance(value, str):
            return value.replace('"', "").replace("in", "").strip()
        return value


def _in_range(key: str, written: Any, value: float, unit: str, bounds: tuple[float, float], what: str) -> float:
    """`value` (converted from what the file wrote) when plausible; else an error that quotes the file.

    The message starts with the key as written so the loader can point at that line. A lower bound of 0
    is exclusive: nothing on a site is zero feet long.
    """
    low, high = bounds
    slack = 1e-9 * max(abs(low), abs(high))  # "3 km" through pint lands a rounding error above 3000 m
    if not (low < value <= high + slack if low == 0 else low - slack <= value <= high + slack):  # NaN: false
        span = f"more than 0 and at most {high:,.0f}" if low == 0 else f"between {low:g} and {high:g}"
        raise ValueError(f"{key} {short_repr(written)} is {value:.4g} {unit}; {what} must be {span} {unit}")
    return min(max(value, low), high)


def _normalise_length(data: Any, key: str) -> Any:
    """Let a run's length be written as `length_ft`, `length_m` or `length: "75 ft"`."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    what, bounds = "a run's length (up to 3 km)", (0.0, MAX_RUN_FT)
    if "length" in data:
        written = data.pop("length")
        data[f"{key}_ft"] = _in_range("length", written, parse_length_ft(written), "ft", bounds, what)
    if f"{key}_m" in data:
        metres = data.pop(f"{key}_m")
        if isinstance(metres, int | float) and not isinstance(metres, bool):
            feet = metres_to_feet(float(metres))
            data[f"{key}_ft"] = _in_range(f"{key}_m", metres, feet, "ft", bounds, what)
        else:
            data[f"{key}_ft"] = metres  # let the float validator explain the problem
    return data


def _normalise_ambient(data: Any) -> Any:
    """Let ambient temperature be written as `ambient_c`, `ambient_f` or `ambient: "86 °F"`."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    bounds, what = (AMBIENT_MIN_C, AMBIENT_MAX_C), "the ambient temperature"
    if "ambient" in data:
        written = data.pop("ambient")
        data["ambient_c"] = _in_range("ambient", written, parse_temperature_c(written), "°C", bounds, what)
    if "ambient_f" in data:
        value = data.pop("ambient_f")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number:
            celsius = fahrenheit_to_celsius(float(value))
            data["ambient_c"] = _in_range("ambient_f", value, celsius, "°C", bounds, what)
        else:
            data["ambient_c"] = value
    return data


class ConductorRun(Strict):
    """Conductors of one feeder or branch circuit, from OCPD to load."""

    material: Material = Material.CU
    size: str = Field(description='Conductor size, e.g. "6 AWG", "1/0 AWG", "250 kcmil".')
    insulation: str = Field(default="THHN", description="Insulation type, e.g. THHN, THWN-2, XHHW-2, NM-B.")
    termination_c: Literal[60, 75, 90] = Field(
        default=60, description="Lowest temperature rating of the terminations at either end (110.14(C))."
    )
    length_ft: float = Field(
        gt=0, le=MAX_RUN_FT, description='One-way length in feet, up to 3 km (or write `length: "23 m"`).'
    )
    raceway: Raceway = Field(default_factory=Raceway)
    ambient_c: float = Field(
        default=30.0, ge=AMBIENT_MIN_C, le=AMBIENT_MAX_C, description="Ambient temperature around the run."
    )
    current_carrying_conductors: int = Field(
        default=2, ge=1, le=200, description="Current-carrying conductors in the raceway (310.15(C)(1))."
    )
    parallel_sets: int = Field(default=1, ge=1, le=20)
    neutral: bool = False
    egc: str | None = Field(default=None, description='Equipment grounding conductor, e.g. "10 AWG Cu".')
    other_conductors: list[str] = Field(
        default_factory=list,
        description='Other conductors sharing the raceway, for fill: e.g. ["2x12 THHN"].',
    )
    # Issue 17: a raceway several runs share; its type and size replace `raceway`, and its contents are
    # counted once across the runs for fill and the 310.15(C)(1) adjustment.
    raceway_id: str | None = Field(default=None, description="Id of a shared raceway in `raceways[]`.")

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data: Any) -> Any:
        return _normalise_ambient(_normalise_length(data, "length"))

    @field_validator("size")
    @classmethod
    def _size_known(cls, value: str) -> str:
        from evsite.site.conductors import normalise_size

        return normalise_size(value)

    @field_validator("insulation")
    @classmethod
    def _insulation_upper(cls, value: str) -> str:
        return value.strip().upper()


class SharedRaceway(Raceway):
    """A raceway that several feeders or circuits are pulled through (issue 17).

    Fill (Chapter 9) and the adjustment for more than three current-carrying conductors (310.15(C)(1))
    are worked out from what the runs that name it put in it, not from counts typed per run."""

    id: Id

    def as_raceway(self) -> Raceway:
        return Raceway.model_validate(self.model_dump(exclude={"id"}))


# --------------------------------------------------------------------------- service and distribution


class Transformer(Strict):
    """The utility transformer, for the available fault current at the PCC (IEEE 519 I_SC)."""

    kva: Amps
    impedance_pct: float = Field(gt=0, le=20, description="Nameplate %Z.")


class ExistingLoad(Strict):
    """Measured existing demand for NEC 220.87 (12 months, or 30 days of 15-minute data)."""

    max_demand_kva: float | None = Field(default=None, ge=0)
    max_demand_a: float | None = Field(default=None, ge=0, le=MAX_CURRENT_A)
    basis: Literal["12-month", "30-day"] = "12-month"
    interval_data: str | None = Field(default=None, description="Path to interval demand data (CSV).")
    has_renewables_or_peak_shaving: bool = False

    @model_validator(mode="after")
    def _one_value(self) -> ExistingLoad:
        if self.max_demand_kva is None and self.max_demand_a is None and self.interval_data is None:
            raise ValueError("give max_demand_a, max_demand_kva or interval_data")
        return self


class DwellingLoad(Strict):
    """Inputs of the NEC 220.82 optional calculation for a single dwelling served by the service."""

    floor_area_ft2: float = Field(gt=0)
    small_appliance_circuits: int = Field(default=2, ge=2)
    laundry_circuits: int = Field(default=1, ge=0)
    appliances_va: float = Field(default=0, ge=0, description="Nameplate of fastened-in-place appliances (not EVSE).")
    cooling_va: float = Field(default=0, ge=0)
    heat_pump_va: float = Field(default=0, ge=0)
    space_heat_va: float = Field(default=0, ge=0)
    space_heat_units: int = Field(default=1, ge=1)


class Service(Strict):
    """The utility service, or the allocation of it that serves this site."""

    system: ServiceSystem
    rating_a: Current = Field(description="Service (main OCPD / service conductor) rating.")
    allocation_a: Current | None = Field(
        default=None, description="Part of the service allotted to the site's EV load, if less."
    )
    available_fault_current_a: float | None = Field(default=None, gt=0, le=MAX_FAULT_CURRENT_A)
    transformer: Transformer | None = None
    existing_load: ExistingLoad | None = None
    dwelling: DwellingLoad | None = Field(default=None, description="Single-dwelling loads for NEC 220.82.")
    max_demand_current_a: Current | None = Field(
        default=None, description="I_L for IEEE 519: maximum demand load current at the PCC."
    )
    minimum_power_factor: float | None = Field(default=None, gt=0, le=1)
    pcc: Literal["service", "transformer-primary"] = "service"

    @model_validator(mode="after")
    def _allocation_within_rating(self) -> Service:
        if self.allocation_a is not None and self.allocation_a > self.rating_a:
            raise ValueError(f"allocation_a {self.allocation_a:g} A exceeds rating_a {self.rating_a:g} A")
        return self

    @property
    def limit_a(self) -> float:
        """The current this site may draw: the allocation when given, else the service rating."""
        return self.allocation_a if self.allocation_a is not None else self.rating_a


class Panel(Strict):
    """A panelboard or switchboard. `fed_by` names a feeder, or `service` for the service panel."""

    id: Id
    name: str | None = None
    kind: Literal["panelboard", "switchboard", "load-center"] = "panelboard"
    fed_by: str = "service"
    bus_rating_a: Current
    main_ocpd_a: Current | None = None
    location: Location = Location.INDOOR
    level: str | None = Field(default=None, description="Floor or parking level, for the diagram.")
    # Issue 17, short circuit: the lowest interrupting rating of its devices, or its short-circuit current rating.
    interrupting_rating_a: float | None = Field(
        default=None, gt=0, le=MAX_FAULT_CURRENT_A, description="Interrupting rating / SCCR in amperes (110.9, 110.10)."
    )


class Feeder(Strict):
    """A feeder from a panel (or the service) to another panel."""

    id: Id
    from_panel: str = Field(description="Panel id the feeder leaves from, or `service`.")
    ocpd_a: Current
    phases: Literal[1, 3] = 3
    conductors: ConductorRun
    noncontinuous_load_va: float = Field(default=0, ge=0)
    continuous_load_va: float = Field(default=0, ge=0, description="Non-EV continuous load on the feeder.")


class Circuit(Strict):
    """A branch circuit from a panel to one or more EVSE (several only under an EMS, 625.42)."""

    id: Id
    panel: str
    ocpd_a: Current
    lines: list[Line] = Field(min_length=1, max_length=3, description="Lines the circuit is connected to.")
    conductors: ConductorRun
    gfci: bool = Field(default=False, description="GFCI (or SPGFCI) protection on the circuit.")
    ocpd_type: Literal["breaker", "fuse"] = "breaker"
    position: int | None = Field(
        default=None, ge=1, le=168, description="First pole position in the panel (panel schedule)."
    )

    @field_validator("lines")
    @classmethod
    def _distinct_lines(cls, value: list[Line]) -> list[Line]:
        if len(set(value)) != len(value):
            raise ValueError("a circuit cannot use the same line twice")
        return value


# --------------------------------------------------------------------------- EVSE


class Connector(Strict):
    id: int = Field(ge=1, le=8)
    type: Literal["J1772", "NACS", "CCS1", "CCS2", "CHAdeMO", "Type2"] = "J1772"
    max_current_a: Current | None = None


class EvseComms(Strict):
    """How the EVSE reaches the controller: decides the low-voltage permit and separation rules."""

    medium: CommsMedium = CommsMedium.ETHERNET
    cable: str | None = Field(default=None, description="e.g. Cat6, Cat6 outdoor-rated, RS-485 shielded pair.")
    routing: Literal["separate-raceway", "shared-raceway", "none"] = "separate-raceway"
    cable_listed_for_power_raceway: bool = False
    length_ft: float | None = Field(default=None, gt=0, le=MAX_RUN_FT)

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data: Any) -> Any:
        return _normalise_length(data, "length")


class OcppSettings(Strict):
    """How the EVSE talks OCPP to evsite."""

    version: Literal["1.6", "2.0.1"] = "1.6"
    security_profile: Literal[0, 1, 2, 3] = 0
    password_hash: str | None = Field(default=None, description="Hash of the Basic-auth password (profile 1/2).")


class Evse(Strict):
    """One charger (EVSE). Its id is the OCPP charge point identity."""

    id: Id
    circuit: str
    make: str | None = None
    model: str | None = None
    listing: list[ListingStandard] = Field(
        default_factory=list, description="Standards the EVSE is listed to; none given is a 625.5 finding."
    )
    max_current_a: Current = Field(description="Nameplate maximum output (input) current.")
    adjustable_setting_a: Current | None = None
    adjustment_access: Literal["restricted", "unrestricted"] = "unrestricted"
    connectors: list[Connector] = Field(default_factory=lambda: [Connector(id=1)], min_length=1)
    phases: Literal[1, 3] = 1
    dc: bool = False
    power_kw: float | None = Field(default=None, gt=0, description="Nameplate output power (DC equipment).")
    bidirectional: bool = False
    interconnection: Literal["none", "standby-702", "interactive-705"] = "none"
    connection: Connection = Connection.HARDWIRED
    location: Location = Location.INDOOR
    dwelling: bool = False
    smart: bool = True
    comms: EvseComms = Field(default_factory=EvseComms)
    meter_accuracy: MeterAccuracy = MeterAccuracy.INFORMATIONAL
    meter_id: str | None = Field(default=None, description="External submeter that meters this EVSE.")
    meter_type_approved: bool | None = Field(
        default=None,
        description="Built-in meter type-approved (NTEP/CTEP, NIST HB 44 §3.40) for sale by kWh; None = not recorded.",
    )
    ocpp: OcppSettings = Field(default_factory=OcppSettings)
    harmonics_pct: dict[int, float] | None = Field(
        default=None,
        description="Input current spectrum, % of fundamental by order; defaults apply if absent.",
    )
    power_factor: float = Field(default=0.99, gt=0, le=1)
    standby_w: float = Field(
        default=0.0, ge=0, le=200, description="The model's own draw when idle (datasheet), W; billing reconciliation."
    )
    disconnect: Literal["none", "integral", "within-sight", "remote-lockable"] = "none"
    level: str | None = None

    @model_validator(mode="after")
    def _setting_within_nameplate(self) -> Evse:
        if self.adjustable_setting_a is not None and self.adjustable_setting_a > self.max_current_a:
            raise ValueError(
                f"adjustable_setting_a {self.adjustable_setting_a:g} A exceeds max_current_a {self.max_current_a:g} A"
            )
        ids = [c.id for c in self.connectors]
        if len(set(ids)) != len(ids):
            raise ValueError("connector ids must be unique within an EVSE")
        return self

    @property
    def rated_current_a(self) -> float:
        """Current used for sizing: the adjusted setting only where access to it is restricted (625.42(B))."""
        if self.adjustable_setting_a is not None and self.adjustment_access == "restricted":
            return self.adjustable_setting_a
        return self.max_current_a


# --------------------------------------------------------------------------- energy management, devices


class EnergyManagementSystem(Strict):
    """An EMS per NEC 750.30 that caps the load on one or more nodes (625.42(A), 220.70)."""

    id: Id
    manages: list[str] = Field(min_length=1, description="Node ids (service, panel, feeder or circuit).")
    setpoint_a: Current = Field(description="Maximum current the EMS permits on the managed node(s).")
    listed: bool = True
    listing: ListingStandard | None = ListingStandard.UL_916
    marked: bool = True
    kind: Literal["evsite", "integral", "external"] = "evsite"
    # Issue 17: the EMS as designed (equipment schedule, 750.30(C) label, behaviour when the EMS is lost).
    product: str | None = Field(default=None, max_length=120, description="Make and model of the listed EMS.")
    fallback_a: Current | None = Field(
        default=None,
        description="Current each managed charger falls back to if this EMS is lost (integral/external EMS); "
        "evsite's own EMS installs the fail-safe profiles it computes.",
    )
    label: str | None = Field(default=None, max_length=300, description="Field marking text (625.42(A), 750.30(C)).")


class ModbusEndpoint(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    register_map: str = Field(default="sunspec", description="`sunspec` or a map name in evsite/grid/maps.")
    poll_s: float = Field(default=2.0, gt=0)
    stale_after_s: float = Field(default=10.0, gt=0)


class Meter(Strict):
    id: Id
    role: MeterRole
    measures: str = Field(description="Node id the meter measures: service, a panel, feeder, circuit or EVSE.")
    accuracy: MeterAccuracy = MeterAccuracy.C12_20_CLASS_05
    type_approved: bool = Field(default=False, description="NTEP/NIST HB 44 §3.40 approval for sale by kWh.")
    serial: str | None = None
    installed: date | None = None
    last_tested: date | None = None
    modbus: ModbusEndpoint | None = None
    ct_ratio: str | None = None
    # Issue 17: the metering chain (a meter fed by current transformers is only as good as the chain).
    ct_accuracy_class: Literal["0.15", "0.3", "0.6", "1.2"] | None = Field(
        default=None, description="CT metering accuracy class (IEEE C57.13; 0.15 per C57.13.6)."
    )
    ct_system_tested: bool = Field(
        default=False, description="Meter and CTs certified together as a system to the meter's ANSI C12.20 class."
    )


class Inverter(Strict):
    """A PV inverter, read (and optionally export-limited) over Modbus TCP."""

    id: Id
    panel: str
    ac_rating_kw: Amps
    phases: Literal[1, 3] = 1
    modbus: ModbusEndpoint | None = None
    export_limit_control: bool = False


class Battery(Strict):
    id: Id
    panel: str
    capacity_kwh: Amps
    power_kw: Amps
    modbus: ModbusEndpoint | None = None


class BuildingLoad(Strict):
    """Non-EV load on a panel; its peak drives load shedding and the existing-load calculation."""

    id: Id
    panel: str
    peak_kw: float = Field(ge=0)
    continuous: bool = False
    metered_by: str | None = None
    profile: Literal["residential", "office", "multifamily", "flat"] = "flat"


# --------------------------------------------------------------------------- grid programs, tariffs, tenants


class OpenAdr3(Strict):
    """OpenADR 3 settings: OAuth2 client credentials, targets, programs and reporting.

    The secret comes from the environment (`client_secret_env`), never from the site file."""

    client_id: str = Field(min_length=1, max_length=4096)
    client_secret_env: str | None = Field(default=None, description="Environment variable holding the secret.")
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint; default: 3.0.1 `<vtn_url>/auth/token`, 3.1.0 `/auth/server`."
    )
    targets: dict[str, list[str]] = Field(
        default_factory=dict,
        description="This site's targets (type → values, e.g. GROUP: [site-17]); 3.1.0 sends the values only.",
    )
    programs: list[str] = Field(default_factory=list, description="Program names to follow (empty: every one visible).")
    report_interval_s: float = Field(default=60.0, gt=0, description="How often reports go back during an event.")
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class DemandResponse(Strict):
    """Utility demand response over OpenADR 2.0b or 3 (this site is the VEN)."""

    program: str = "OpenADR 2.0b"
    version: Literal["2.0b", "3.0.1", "3.1.0"] = Field(
        default="2.0b", description="Protocol: 2.0b (XML, openleadr) or OpenADR 3 (REST/JSON) 3.0.1 or 3.1.0."
    )
    openadr3: OpenAdr3 | None = Field(default=None, description="Required when version is 3.0.1 or 3.1.0.")
    vtn_url: str
    ven_name: str
    ven_id: str | None = None
    poll_interval_s: float = Field(default=10.0, gt=0)
    simple_levels_pct: dict[int, float] = Field(
        default_factory=lambda: {0: 100.0, 1: 75.0, 2: 50.0, 3: 0.0},
        description="SIMPLE signal level → % of the normal EV limit (0 means J1772 minimum).",
    )
    default_opt: Literal["optIn", "optOut"] = "optIn"
    max_event_hours: float | None = Field(
        default=None, gt=0, description="Site policy: opt out of events longer than this (None: accept any length)."
    )

    @model_validator(mode="after")
    def _version_settings(self) -> DemandResponse:
        if self.version != "2.0b" and self.openadr3 is None:
            raise ValueError(f"OpenADR {self.version} needs an `openadr3` section (client_id, targets, ...)")
        return self


class MqttIntegration(Strict):
    """MQTT bridge (state, commands, Home Assistant discovery). Secrets come from the environment."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_env: str | None = Field(default=None, description="Environment variable holding the password.")
    tls: bool = False
    topic_prefix: str = Field(default="evsite", pattern=r"^[^#+\s]+$")
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+\s]+$")
    publish_interval_s: float = Field(default=5.0, gt=0)


class BacnetIntegration(Strict):
    """evsite as a BACnet/IP device for the building automation system."""

    device_id: int = Field(default=599, ge=0, le=4194302, description="Device instance, unique on the internetwork.")
    device_name: str | None = None
    address: str = Field(default="0.0.0.0:47808", description="Local IP[:port] (or IP/prefix) to bind.")
    demand_limit_max_kw: float | None = Field(
        default=None, gt=0, description="Highest writable demand limit; default: the EV capacity of the service."
    )
    cov_increment_kw: float = Field(default=1.0, gt=0)


class Integrations(Strict):
    mqtt: MqttIntegration | None = None
    bacnet: BacnetIntegration | None = None


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TouPeriod(Strict):
    name: str
    start: time
    end: time
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    months: list[int] = Field(default_factory=lambda: list(range(1, 13)))
    rate_per_kwh: Decimal = Field(ge=0)


class Tariff(Strict):
    """How energy is priced to users; money is Decimal throughout."""

    kind: Literal["flat", "tou"] = "flat"
    currency: str = "USD"
    energy_rate_per_kwh: Decimal = Field(default=Decimal("0"), ge=0)
    tou_periods: list[TouPeriod] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    holiday_period: str | None = Field(default=None, description="TOU period that applies all day on holidays.")
    demand_charge_per_kw: Decimal = Field(default=Decimal("0"), ge=0)
    demand_interval_minutes: Literal[5, 15, 30, 60] = Field(
        default=15, description="Demand interval the utility measures peak kW over."
    )
    demand_window: Literal["block", "rolling"] = Field(
        default="block", description="Fixed clock intervals, or a window sliding with time (some utilities)."
    )
    demand_ratchet_pct: Decimal = Field(
        default=Decimal("0"), ge=0, le=100, description="Billed demand is at least this % of an earlier peak."
    )
    capacity_limit_kw: Decimal | None = Field(
        default=None, gt=0, description="Capacity tariff: subscribed power the load manager never lets the site exceed."
    )
    session_fee: Decimal = Field(default=Decimal("0"), ge=0)
    idle_fee_per_hour: Decimal = Field(default=Decimal("0"), ge=0)
    idle_grace_minutes: int = Field(default=0, ge=0)
    tax_pct: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    rounding: Literal["line-item", "statement"] = "line-item"
    minimum_power_factor: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _tou_has_periods(self) -> Tariff:
        if self.kind == "tou" and not self.tou_periods:
            raise ValueError("a time-of-use tariff needs tou_periods")
        return self


class TagAssignment(Strict):
    """An id tag held by a unit from `since` (tags move between tenants; history is kept)."""

    tag: str = Field(min_length=1, max_length=20)
    since: date | None = None
    until: date | None = None


class Unit(Strict):
    """A tenant, dwelling unit or cost centre that sessions are billed to."""

    id: Id
    name: str | None = None
    tags: list[TagAssignment | str] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _tags_as_assignments(cls, value: list[TagAssignment | str]) -> list[TagAssignment | str]:
        return [TagAssignment(tag=t) if isinstance(t, str) else t for t in value]


class Billing(Strict):
    enabled: bool = False
    sells_by_kwh: bool = Field(default=False, description="Energy sold to users by the kWh (NIST HB 44 §3.40).")
    statement_day: int = Field(default=1, ge=1, le=28, description="Day of the next month statements are issued.")
    due_days: int = Field(default=21, ge=0, le=90, description="Days from issue to the due date.")
    payee: str | None = Field(default=None, max_length=200, description="Who is paid (default: the site name).")
    payee_address: str | None = Field(default=None, max_length=300)


# --------------------------------------------------------------------------- jurisdiction and run time


class Amendments(Strict):
    """Local amendments and AHJ practice that change how rules apply."""

    evse_at_100pct_in_220_82: bool = False
    enforce_voltage_drop: bool = False
    voltage_drop_branch_pct: float = Field(default=3.0, gt=0)
    voltage_drop_total_pct: float = Field(default=5.0, gt=0)
    appliance_disconnect_422_31b: bool = False
    power_quality_study_at_chargers: int = Field(default=10, ge=1)


class Jurisdiction(Strict):
    ahj: str | None = None
    nec_edition: Literal[2023] = 2023
    amendments: Amendments = Field(default_factory=Amendments)
    low_voltage_permit: Literal["required", "class-2-exempt", "not-required"] = "required"
    # Issue 17, permit package: what the cover sheet states about the code in force.
    adopted_code: str | None = Field(
        default=None, max_length=200, description="The code the AHJ enforces, e.g. a state code based on the NEC."
    )
    notes: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=50, description="Local amendments and AHJ requirements, shown on the cover."
    )


# --------------------------------------------------------------------------- permit package (issue 17)


_Date = date  # the field below is named `date`, which would shadow the type inside the class


class Revision(Strict):
    """One row of the drawing set's revision table."""

    rev: str = Field(min_length=1, max_length=8)
    date: _Date
    description: str = Field(max_length=200)


class Permit(Strict):
    """Who prepared the permit package and what it covers (cover sheet and title block)."""

    project: str | None = Field(default=None, max_length=200, description="Project title; defaults to the site name.")
    scope: str | None = Field(default=None, max_length=2000, description="Scope of work; derived when absent.")
    preparer: str | None = Field(default=None, max_length=120)
    license: str | None = Field(default=None, max_length=60, description="Preparer's license number.")
    firm: str | None = Field(default=None, max_length=120)
    revisions: list[Revision] = Field(default_factory=list, max_length=50)


class PvCharging(Strict):
    """Charging from PV surplus: the EV load on `node` follows the current the site would export.

    `pv-only`: EVs charge only from surplus (on once it has covered 6 A for `enable_s`, off once it
    has fallen short for `disable_s`); `min+pv`: at least 6 A always, plus the surplus.
    """

    mode: Literal["off", "pv-only", "min+pv"] = "off"
    node: str = "service"
    enable_s: float = Field(default=60.0, ge=0)
    disable_s: float = Field(default=180.0, ge=0)
    step_a: float = Field(default=0.5, ge=0)
    raise_band_a: float = Field(default=1.0, ge=0)


class Control(Strict):
    """Run-time settings of the site controller."""

    policy: Literal["fair", "mpc"] = "fair"
    cycle_s: float = Field(default=2.0, gt=0, le=60)
    safety_margin_a: float = Field(default=2.0, ge=0)
    accept_unknown_chargers: bool = False
    unknown_charger_status: Literal["Pending", "Accepted"] = "Pending"
    heartbeat_interval_s: int = Field(default=300, ge=10)
    meter_value_interval_s: int = Field(default=60, ge=1)
    call_timeout_s: float = Field(default=30.0, gt=0)
    pv_charging: PvCharging = Field(default_factory=PvCharging)
    manage_demand: bool = Field(
        default=False,
        description="Hold the EV load under the month's billed demand peak (tariff demand charge) unless "
        "cars' departures need more; a capacity limit applies whenever it is set.",
    )


class Site(Strict):
    """A whole EV charging site."""

    name: str
    description: str | None = None
    timezone: str = "America/Los_Angeles"
    address: str | None = None
    service: Service
    panels: list[Panel] = Field(min_length=1)
    feeders: list[Feeder] = Field(default_factory=list)
    circuits: list[Circuit] = Field(default_factory=list)
    evse: list[Evse] = Field(default_factory=list)
    ems: list[EnergyManagementSystem] = Field(default_factory=list)
    meters: list[Meter] = Field(default_factory=list)
    inverters: list[Inverter] = Field(default_factory=list)
    batteries: list[Battery] = Field(default_factory=list)
    building_loads: list[BuildingLoad] = Field(default_factory=list)
    demand_response: DemandResponse | None = None
    integrations: Integrations = Field(default_factory=Integrations)
    tariff: Tariff | None = None
    units: list[Unit] = Field(default_factory=list)
    billing: Billing = Field(default_factory=Billing)
    jurisdiction: Jurisdiction = Field(default_factory=Jurisdiction)
    permit: Permit = Field(default_factory=Permit)
    raceways: list[SharedRaceway] = Field(default_factory=list, description="Raceways shared by several runs.")
    control: Control = Field(default_factory=Control)
    created: datetime | None = None

    _index: _SiteIndex | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _shared_raceways(self) -> Site:
        """A run in a shared raceway takes the raceway's type and size (the loader has checked the ids)."""
        if self.raceways:
            shared = {r.id: r for r in self.raceways}
            runs: list[Feeder | Circuit] = [*self.feeders, *self.circuits]
            for run in runs:
                rid = run.conductors.raceway_id
                if rid is not None and rid in shared:
                    run.conductors.raceway = shared[rid].as_raceway()
        return self

    # ---- lookups used by the checker and the controller: dict lookups, built once per version of the lists
    def _lookups(self) -> _SiteIndex:
        """The index for the current lists, rebuilt only when a list was replaced or changed length.

        Scanning the lists on every lookup made the tree walk quadratic: 300,000 circuits took minutes.
        """
        index = self._index
        if index is None or not index.matches(self):
            index = self._index = _SiteIndex(self)
        return index

    def panel(self, panel_id: str) -> Panel:
        """The panel with this id; KeyError when there is none."""
        return self._lookups().panels[panel_id]

    def feeder(self, feeder_id: str) -> Feeder:
        """The feeder with this id; KeyError when there is none."""
        return self._lookups().feeders[feeder_id]

    def circuit(self, circuit_id: str) -> Circuit:
        """The circuit with this id; KeyError when there is none."""
        return self._lookups().circuits[circuit_id]

    def evse_on(self, circuit_id: str) -> list[Evse]:
        return list(self._lookups().evse_on.get(circuit_id, ()))

    def circuits_in(self, panel_id: str) -> list[Circuit]:
        return list(self._lookups().circuits_in.get(panel_id, ()))

    def feeders_from(self, source: str) -> list[Feeder]:
        return list(self._lookups().feeders_from.get(source, ()))

    def panels_fed_by(self, feeder_or_service: str) -> list[Panel]:
        return list(self._lookups().panels_fed_by.get(feeder_or_service, ()))

    def ems_for(self, node_id: str) -> list[EnergyManagementSystem]:
        return list(self._lookups().ems_for.get(node_id, ()))

    def tag_unit(self, tag: str, on: date | None = None) -> str | None:
        """The unit holding `tag` on date `on` (latest assignment when `on` is None)."""
        for unit in self.units:
            for assignment in unit.tags:
                assert isinstance(assignment, TagAssignment)
                if assignment.tag != tag:
                    continue
                if on is None:
                    return unit.id
                starts_ok = assignment.since is None or assignment.since <= on
                ends_ok = assignment.until is None or on < assignment.until
                if starts_ok and ends_ok:
                    return unit.id
        return None


class _SiteIndex:
    """Dicts over a site's element lists, with the lists they were built from to tell when they are stale.

    Elements are looked up by id and grouped by the id they refer to, in file order; the first element
    with an id wins, as a scan would find it (the loader refuses duplicate ids anyway).
    """

    def __init__(self, site: Site) -> None:
        self.sources: tuple[list[Any], ...] = (site.panels, site.feeders, site.circuits, site.evse, site.ems)
        self.lengths = tuple(len(items) for items in self.sources)
        self.panels: dict[str, Panel] = {}
        self.feeders: dict[str, Feeder] = {}
        self.circuits: dict[str, Circuit] = {}
        self.evse_on: dict[str, list[Evse]] = {}
        self.circuits_in: dict[str, list[Circuit]] = {}
        self.feeders_from: dict[str, list[Feeder]] = {}
        self.panels_fed_by: dict[str, list[Panel]] = {}
        self.ems_for: dict[str, list[EnergyManagementSystem]] = {}
        for panel in site.panels:
            self.panels.setdefault(panel.id, panel)
            self.panels_fed_by.setdefault(panel.fed_by, []).append(panel)
        for feeder in site.feeders:
            self.feeders.setdefault(feeder.id, feeder)
            self.feeders_from.setdefault(feeder.from_panel, []).append(feeder)
        for circuit in site.circuits:
            self.circuits.setdefault(circuit.id, circuit)
            self.circuits_in.setdefault(circuit.panel, []).append(circuit)
        for evse in site.evse:
            self.evse_on.setdefault(evse.circuit, []).append(evse)
        for ems in site.ems:
            for node in dict.fromkeys(ems.manages):  # an EMS listed once per node, as a scan would
                self.ems_for.setdefault(node, []).append(ems)

    def matches(self, site: Site) -> bool:
        """True while the site still holds the same lists at the same lengths."""
        current: tuple[list[Any], ...] = (site.panels, site.feeders, site.circuits, site.evse, site.ems)
        return all(a is b and len(b) == n for a, b, n in zip(self.sources, current, self.lengths, strict=True))
