"""`evsite calc …`: one-circuit calculators (no site file), text by default, `--json` for scripts.

A bad argument (unknown size, negative current, a termination rating the tables lack) exits 2 with one
line on stderr; the arithmetic behind every number is printed with it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand


class OneLineErrors(TyperCommand):
    """Report a bad option (missing, not a number, unknown) as one `error:` line and exit 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as exc:  # typer vendors click: match its usage errors by shape, not by class
            if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message"):
                raise
            typer.echo(f"error: {exc.format_message()}", err=True)
            raise typer.Exit(2) from None


calc_app = typer.Typer(
    name="calc",
    help="Quick NEC 2023 / IEEE 519-2022 calculators for one circuit (no site file).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (snake_case keys, numbers as numbers).")]
AmbientC = Annotated[float | None, typer.Option("--ambient-c", help="Ambient temperature, °C (default 30).")]
AmbientF = Annotated[float | None, typer.Option("--ambient-f", help="Ambient temperature, °F.")]
LengthFt = Annotated[float | None, typer.Option("--length-ft", help="One-way length, feet.")]
LengthM = Annotated[float | None, typer.Option("--length-m", help="One-way length, metres.")]
TerminationC = Annotated[
    int, typer.Option("--termination-c", help="Lowest termination rating at either end, °C (60, 75 or 90).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(calc_app, name="calc")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _run(compute: Callable[[], Any], as_json: bool, title: str, keys: tuple[str, ...]) -> None:
    """Run a calculator; print its result as JSON or as text with the arithmetic; exit 2 on bad input."""
    from evsite.code.sizing import CalcError

    try:
        result = compute()
    except CalcError as exc:
        _fail(str(exc))
        return
    data = result if isinstance(result, dict) else result.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print_text(title, data, keys)
    if any(f.get("status") == "fail" for f in data.get("findings", [])):
        raise typer.Exit(1)  # like `evsite check`: a failing rule is a non-zero exit for scripts


_UNIT_SUFFIXES = {"a": " A", "pct": " %", "v": " V", "va": " VA", "kw": " kW", "c": " °C", "in2": " in²", "ft": " ft"}
_WORDS = {"ocpd": "OCPD", "egc": "EGC", "gfci": "GFCI", "tdd": "TDD", "thd": "THD", "isc": "Isc", "il": "IL"}


def text_label(key: str) -> tuple[str, str]:
    """`continuous_a` → ("continuous", " A"): a label a person reads, and the unit to put after the number."""
    if key == "continuous_a":
        return "continuous load × 125 %", " A"
    words = key.split("_")
    unit = ""
    if len(words) > 1 and words[-1] in _UNIT_SUFFIXES:
        unit = _UNIT_SUFFIXES[words.pop()]
    if words == ["kw"]:
        return "power", " kW"
    return " ".join(_WORDS.get(w, w) for w in words), unit


def _print_text(title: str, data: dict[str, Any], keys: tuple[str, ...]) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{title}[/]")
    for key in keys:
        if key in data:
            value = data[key]
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
            if isinstance(value, bool):
                shown = "yes" if value else "no"
            if isinstance(value, float):
                shown = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
            label, unit = text_label(key)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            console.print(f"  {label}: [cyan]{shown}{unit if number else ''}[/]")
    if data.get("steps"):
        console.print("[bold]arithmetic[/]")
        for step in data["steps"]:
            console.print(f"  {step}", markup=False)
    colours = {"fail": "red", "warn": "yellow", "pass": "green", "info": "blue"}
    for finding in data.get("findings", []):
        colour = colours.get(finding["status"], "white")
        console.print(f"  [{colour}]{finding['status'].upper():4}[/] {finding['rule']}: ", end="")
        console.print(finding["message"], markup=False)
        if finding.get("fix"):
            console.print(f"       fix: {finding['fix']}", markup=False)


def _ambient(ambient_c: float | None, ambient_f: float | None) -> float:
    if ambient_c is not None and ambient_f is not None:
        _fail("give --ambient-c or --ambient-f, not both")
    if ambient_f is not None:
        return (ambient_f - 32.0) * 5.0 / 9.0
    return 30.0 if ambient_c is None else ambient_c


def _length(length_ft: float | None, length_m: float | None) -> float | None:
    if length_ft is not None and length_m is not None:
        _fail("give --length-ft or --length-m, not both")
    return length_m / 0.3048 if length_m is not None else length_ft


@calc_app.command(cls=OneLineErrors)
def branch(
    amps: Annotated[float, typer.Option(help="EVSE maximum current (nameplate or restricted setting), A.")],
    volts: Annotated[float, typer.Option(help="Circuit voltage (line to line), V.")],
    phases: Annotated[int, typer.Option(help="1 or 3.")] = 1,
    material: Annotated[str, typer.Option(help="cu or al.")] = "cu",
    insulation: Annotated[str, typer.Option(help="THHN, THWN-2, XHHW-2, ...")] = "THHN",
    termination_c: TerminationC = 60,
    ambient_c: AmbientC = None,
    ambient_f: AmbientF = None,
    ccc: Annotated[int, typer.Option(help="Current-carrying conductors in the raceway.")] = 2,
    length_ft: LengthFt = None,
    length_m: LengthM = None,
    raceway: Annotated[str, typer.Option(help="emt, rmc, imc, pvc40, pvc80, fmc, lfmc, ent, cable.")] = "emt",
    adjustable_restricted: Annotated[
        bool, typer.Option("--adjustable-restricted", help="The current setting is restricted (625.42(B)).")
    ] = False,
    location: Annotated[str, typer.Option(help="indoor or outdoor.")] = "indoor",
    dwelling: Annotated[bool, typer.Option("--dwelling", help="Dwelling unit (210.8(F)).")] = False,
    connection: Annotated[str, typer.Option(help="hardwired, nema-14-50, nema-6-50, ...")] = "hardwired",
    conductor: Annotated[str | None, typer.Option(help='Check this conductor, e.g. "6 AWG Cu".')] = None,
    ocpd: Annotated[int | None, typer.Option(help="Check this OCPD rating, A.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Size an EVSE branch circuit: OCPD, conductor, EGC, raceway, voltage drop, disconnect, GFCI."""
    from evsite.code.sizing import size_branch

    ambient = _ambient(ambient_c, ambient_f)
    length = _length(length_ft, length_m)
    _run(
        lambda: size_branch(
            amps, volts, phases, material, insulation, termination_c, ambient, ccc, length, raceway,
            adjustable_restricted, location, dwelling, connection, True, "circuit", conductor, ocpd,
        ),
        as_json,
        f"EVSE branch circuit: {amps:g} A at {volts:g} V",
        ("continuous_a", "ocpd_a", "conductor", "conductor_ampacity_a", "ampacity_column_c", "egc", "raceway",
         "fill_pct", "voltage_drop_v", "voltage_drop_pct", "disconnect_required", "gfci_required"),
    )  # fmt: skip


@calc_app.command("ampacity", cls=OneLineErrors)
def ampacity_cmd(
    conductor: Annotated[str, typer.Option(help='Conductor, e.g. "12 AWG Cu".')],
    material: Annotated[str | None, typer.Option(help="cu or al (if not in --conductor).")] = None,
    insulation: Annotated[str, typer.Option(help="THHN, THWN-2, XHHW-2, ...")] = "THHN",
    ccc: Annotated[int, typer.Option(help="Current-carrying conductors in the raceway.")] = 2,
    ambient_c: AmbientC = None,
    ambient_f: AmbientF = None,
    termination_c: TerminationC = 60,
    as_json: JsonOpt = False,
) -> None:
    """Ampacity after ambient correction and bundling adjustment, limited by the terminations."""
    from evsite.code.sizing import ampacity

    ambient = _ambient(ambient_c, ambient_f)
    _run(
        lambda: ampacity(conductor, material, insulation, termination_c, ambient, ccc),
        as_json,
        f"Ampacity of {conductor}",
        ("table_ampacity_a", "correction_factor", "adjustment_factor", "derated_a", "termination_ampacity_a",
         "ampacity_a", "max_ocpd_a"),
    )  # fmt: skip


@calc_app.command(cls=OneLineErrors)
def vd(
    amps: Annotated[float, typer.Option(help="Load current, A.")],
    volts: Annotated[float, typer.Option(help="System voltage (line to line), V.")],
    conductor: Annotated[str | None, typer.Option(help='Conductor, e.g. "6 AWG Cu".')] = None,
    material: Annotated[str | None, typer.Option(help="cu or al (if not in --conductor).")] = None,
    phases: Annotated[int, typer.Option(help="1 or 3.")] = 1,
    length_ft: LengthFt = None,
    length_m: LengthM = None,
    pf: Annotated[float | None, typer.Option(help="Power factor: use Table 9 R and X instead of K.")] = None,
    raceway: Annotated[str, typer.Option(help="Table 9 raceway: steel, pvc or al.")] = "pvc",
    max_pct: Annotated[float | None, typer.Option(help="Find the smallest conductor within this drop, %.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Voltage drop (K method, or Table 9 with --pf); with --max-pct, the smallest conductor that meets it."""
    from evsite.code.sizing import min_conductor_for_drop, voltage_drop

    length = _length(length_ft, length_m)
    if length is None:
        _fail("give the one-way length with --length-ft or --length-m")
        return
    if conductor is None and max_pct is None:
        _fail("give --conductor, or --max-pct to find the smallest conductor")

    def compute() -> dict[str, Any]:
        data: dict[str, Any] = {}
        if conductor is not None:
            data = voltage_drop(conductor, material, amps, volts, phases, length, pf, raceway).to_dict()
        if max_pct is not None:
            sizing = min_conductor_for_drop(
                material or _material_of(conductor), amps, volts, phases, length, max_pct, pf, raceway
            )
            found = sizing.to_dict()
            data["min_conductor"] = found["min_conductor"]
            data["max_pct"] = max_pct
            data["min_conductor_voltage_drop_v"] = found["voltage_drop_v"]
            data["min_conductor_voltage_drop_pct"] = found["voltage_drop_pct"]
            data.setdefault("method", found["method"])
            data["steps"] = [*data.get("steps", []), *found["steps"]]
        return data

    _run(
        compute,
        as_json,
        f"Voltage drop: {amps:g} A at {volts:g} V, {phases}φ, {length:g} ft",
        ("conductor", "method", "voltage_drop_v", "voltage_drop_pct", "min_conductor", "max_pct"),
    )


def _material_of(conductor: str | None) -> str:
    from evsite.code.calc.common import conductor_size

    return "cu" if conductor is None else conductor_size(conductor)[1]


_CONDUCTOR_ITEM = re.compile(r"^\s*(\d+)\s*[x×]\s*(.+?)\s+([A-Za-z][A-Za-z0-9/-]*)\s*$")


def parse_conductor_list(text: str) -> list[tuple[int, str, str]]:
    """ "3x6 THHN,1x10 THHN" → [(3, "6", "THHN"), (1, "10", "THHN")]."""
    from evsite.code.sizing import CalcError

    items = []
    for part in text.split(","):
        match = _CONDUCTOR_ITEM.match(part)
        if not match:
            raise CalcError(f"cannot read {part.strip()!r}; expected COUNTxSIZE INSULATION, e.g. '3x6 THHN'")
        items.append((int(match[1]), match[2], match[3]))
    return items


@calc_app.command(cls=OneLineErrors)
def fill(
    conductors: Annotated[str, typer.Option(help='Conductors, e.g. "3x6 THHN,1x10 THHN" (EGC included).')],
    raceway: Annotated[str, typer.Option(help="emt, rmc, imc, pvc40, pvc80, fmc, lfmc, ent.")] = "emt",
    trade_size: Annotated[str | None, typer.Option(help='Check this trade size, e.g. "3/4".')] = None,
    as_json: JsonOpt = False,
) -> None:
    """Raceway fill per Chapter 9 Tables 1, 4 and 5: minimum trade size and percent fill."""
    from evsite.code.sizing import conduit_fill

    _run(
        lambda: conduit_fill(parse_conductor_list(conductors), raceway, trade_size),
        as_json,
        f"Raceway fill: {conductors} in {raceway.upper()}",
        ("total_area_in2", "conductor_count", "allowed_pct", "min_trade_size", "raceway", "fill_pct", "fits"),
    )


@calc_app.command(cls=OneLineErrors)
def egc(
    ocpd: Annotated[float, typer.Option(help="Rating of the OCPD ahead of the circuit, A.")],
    material: Annotated[str, typer.Option(help="EGC material: cu or al.")] = "cu",
    phase_installed: Annotated[str | None, typer.Option(help='Installed phase conductor, e.g. "6 AWG Cu".')] = None,
    phase_min: Annotated[str | None, typer.Option(help='Minimum phase conductor, e.g. "8 AWG Cu".')] = None,
    as_json: JsonOpt = False,
) -> None:
    """Equipment grounding conductor per Table 250.122, upsized per 250.122(B)."""
    from evsite.code.sizing import egc_size

    _run(
        lambda: egc_size(ocpd, material, phase_installed, phase_min),
        as_json,
        f"EGC for a {ocpd:g} A OCPD",
        ("egc", "table_egc", "ratio"),
    )


@calc_app.command(cls=OneLineErrors)
def load(
    service_a: Annotated[float, typer.Option(help="Service rating (or feeder ampacity), A.")],
    add_va: Annotated[float, typer.Option(help="New load to add, VA (e.g. EVSE nameplate).")],
    volts: Annotated[float, typer.Option(help="Service voltage (line to line), V.")],
    max_demand_a: Annotated[float | None, typer.Option(help="Highest demand of the last 12 months, A.")] = None,
    max_demand_kva: Annotated[float | None, typer.Option(help="… or in kVA.")] = None,
    phases: Annotated[int, typer.Option(help="1 or 3.")] = 1,
    ems_setpoint_a: Annotated[float | None, typer.Option(help="EMS limit on the new EV load, A (625.42(A)).")] = None,
    new_load_continuous: Annotated[
        bool, typer.Option("--new-load-continuous", help="Add the new load at 125 % (AHJ practice for EVSE).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """220.87 existing-load method: 125 % of 12-month maximum demand plus the new load vs the service."""
    from evsite.code.sizing import existing_load_220_87

    _run(
        lambda: existing_load_220_87(
            service_a, max_demand_a, max_demand_kva, add_va, volts, phases, ems_setpoint_a, new_load_continuous
        ),
        as_json,
        f"220.87 existing load: {service_a:g} A service",
        ("existing_load_a", "new_load_a", "total_a", "fits", "headroom_a"),
    )


@calc_app.command(cls=OneLineErrors)
def dwelling(
    area_ft2: Annotated[float, typer.Option(help="Living area, ft².")],
    volts: Annotated[float, typer.Option(help="Service voltage, V.")] = 240.0,
    small_appliance_circuits: Annotated[int, typer.Option(help="20 A small-appliance circuits.")] = 2,
    laundry_circuits: Annotated[int, typer.Option(help="Laundry circuits.")] = 1,
    appliances_va: Annotated[float, typer.Option(help="Fastened-in-place appliances, nameplate VA total.")] = 0.0,
    evse_va: Annotated[float, typer.Option(help="EVSE nameplate VA (220.57: at least 7200).")] = 0.0,
    cooling_va: Annotated[float, typer.Option(help="Air conditioning, VA.")] = 0.0,
    heat_pump_va: Annotated[float, typer.Option(help="Heat pump without supplemental heat, VA.")] = 0.0,
    space_heat_va: Annotated[float, typer.Option(help="Electric space heat, VA.")] = 0.0,
    space_heat_units: Annotated[int, typer.Option(help="Separately controlled heating units.")] = 1,
    service_a: Annotated[float | None, typer.Option(help="Service rating to compare with, A.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """220.82 optional calculation for one dwelling unit."""
    from evsite.code.sizing import dwelling_220_82

    _run(
        lambda: dwelling_220_82(
            area_ft2, volts, small_appliance_circuits, laundry_circuits, appliances_va, evse_va, cooling_va,
            heat_pump_va, space_heat_va, space_heat_units, service_a,
        ),
        as_json,
        "220.82 dwelling load",
        ("general_va", "general_demand_va", "hvac_va", "total_va", "total_a", "fits"),
    )  # fmt: skip


def parse_harmonics(text: str) -> dict[int, float]:
    """ "5=40,7=24" → {5: 40.0, 7: 24.0}."""
    from evsite.code.sizing import CalcError

    result: dict[int, float] = {}
    for part in text.split(","):
        order, sep, amps = part.partition("=")
        try:
            result[int(order)] = float(amps)
        except ValueError:
            raise CalcError(f"cannot read {part.strip()!r}; expected ORDER=AMPS, e.g. '5=40'") from None
        if not sep:
            raise CalcError(f"cannot read {part.strip()!r}; expected ORDER=AMPS, e.g. '5=40'")
    return result


@calc_app.command(cls=OneLineErrors)
def harmonics(
    volts: Annotated[float, typer.Option(help="Bus voltage at the PCC, V.")],
    isc_a: Annotated[float, typer.Option(help="Maximum short-circuit current at the PCC, A.")],
    il_a: Annotated[float, typer.Option(help="Maximum demand load current I_L, A.")],
    harmonics: Annotated[str, typer.Option("--harmonics", help='Harmonic currents, A: "5=40,7=24,11=16".')],
    fundamental_a: Annotated[float | None, typer.Option(help="Fundamental current for THDi, A.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """IEEE 519-2022 at the PCC: TDD and individual harmonics (Table 2), voltage limits (Table 1)."""
    from evsite.code.sizing import evaluate_harmonics

    _run(
        lambda: evaluate_harmonics(volts, isc_a, il_a, parse_harmonics(harmonics), fundamental_a),
        as_json,
        "IEEE 519-2022 harmonic limits",
        ("isc_over_il", "row", "tdd_limit_pct", "tdd_pct", "thd_i_pct", "individual_pct", "individual_limits_pct",
         "thd_v_limit_pct", "individual_v_limit_pct", "pass"),
    )  # fmt: skip


@calc_app.command(cls=OneLineErrors)
def level(
    volts: Annotated[float, typer.Option(help="Supply voltage, V.")],
    amps: Annotated[float, typer.Option(help="Charging current, A.")],
    as_json: JsonOpt = False,
) -> None:
    """SAE J1772 AC charging level and power."""
    from evsite.code.sizing import j1772_level

    _run(
        lambda: j1772_level(volts, amps),
        as_json,
        "SAE J1772",
        ("level", "kw", "max_amps_for_level", "within_level", "pilot_duty_pct"),
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(calc_app())
