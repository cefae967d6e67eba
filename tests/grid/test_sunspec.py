"""SunSpec decoding against register images written by hand from the SunSpec model definitions.

Reference values: the research note's loopback check (grid-building-protocols.md §2.4), where the same
images were decoded by the SunSpec Alliance's own pysunspec2 1.3.7: inverter 103 W 12345, A 20.0,
Hz 60.0, WH 100000, St 4 (MPPT); meter 203 W −4500, TotWhImp 12000.
"""

from __future__ import annotations

import pytest

from evsite.grid import sunspec as ss
from evsite.grid.regmap import load_map


def test_primitive_sentinels_mean_missing() -> None:
    assert ss.int16(0x8000) is None and ss.int16(0xFFFF) == -1 and ss.int16(0x7FFF) == 32767
    assert ss.uint16(0xFFFF) is None and ss.uint16(0) == 0
    assert ss.acc32(0, 0) is None
    assert ss.uint32(0xFFFF, 0xFFFF) is None
    assert ss.float32(0x7FC0, 0x0000) is None  # quiet NaN = not implemented
    assert ss.sunssf(0x8000) is None and ss.sunssf(0x7FFF) is None and ss.sunssf(0xFFFE) == -2


def test_acc32_is_high_word_first_and_rollover_counts_once() -> None:
    assert ss.acc32(0x0001, 0x86A0) == 100_000
    assert ss.accumulator_delta(0xFFFF_FF00, 0x0000_0010) == 0x110


def test_scale_factor_applies_power_of_ten() -> None:
    assert ss.scaled(2000, -2) == pytest.approx(20.0)
    assert ss.scaled(12, 3) == pytest.approx(12_000)
    assert ss.scaled(None, 0) is None and ss.scaled(5, None) is None


def _inverter_103() -> list[int]:
    regs = [0x8000] * 52
    regs[0], regs[1] = 103, 50
    regs[2], regs[3], regs[4], regs[5] = 2000, 667, 667, 666
    regs[6] = 0xFFFE  # A_SF −2
    regs[10], regs[11], regs[12], regs[13] = 2770, 2770, 2770, 0xFFFF  # V_SF −1
    regs[14], regs[15] = 12345, 0  # W, W_SF
    regs[16], regs[17] = 6000, 0xFFFE  # Hz, Hz_SF
    regs[24], regs[25], regs[26] = 0x0001, 0x86A0, 0  # WH acc32 = 100000, WH_SF
    regs[38] = 4  # MPPT
    return regs


def test_inverter_103_decodes_like_pysunspec2() -> None:
    m = ss.decode_inverter_int(_inverter_103())
    assert m.power_w == 12345
    assert m.current_a["L1"] == pytest.approx(6.67)
    assert m.voltage_v == {"L1": pytest.approx(277.0), "L2": pytest.approx(277.0), "L3": pytest.approx(277.0)}
    assert m.frequency_hz == pytest.approx(60.0)
    assert m.energy_export_wh == 100_000
    assert m.status == "mppt"


def test_meter_203_negative_power_and_missing_points() -> None:
    regs = [0x8000] * 107
    regs[0], regs[1] = 203, 105
    regs[18], regs[22] = (-4500) & 0xFFFF, 0
    regs[38], regs[39] = 0, 0  # TotWhExp acc32 zero
    regs[46], regs[47], regs[54] = 0, 12000, 0
    m = ss.decode_meter_int(regs)
    assert m.power_w == -4500
    assert m.energy_import_wh == 12000
    assert m.energy_export_wh is None  # acc32 zero = not implemented
    assert m.current_a == {}  # A_SF not implemented → no currents, not −32768 A


class FakeDevice:
    def __init__(self, image: dict[int, int]) -> None:
        self.image = image

    async def read(self, address: int, count: int) -> list[int]:
        if address not in self.image:
            raise ss.RegistersRefused("illegal data address")
        return [self.image.get(address + i, 0) for i in range(count)]


def _chain(base: int, *models: list[int]) -> dict[int, int]:
    flat = [*ss.SUNS]
    for model in models:
        flat += model
    flat += [0xFFFF, 0]
    return {base + i: v for i, v in enumerate(flat)}


def _common() -> list[int]:
    return [1, 66, *ss.enc_string("ACME", 16), *([0] * 48), 1, 0]


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_discovery_walks_chain_at_each_base(base: int) -> None:
    dev = FakeDevice(_chain(base, _common(), _inverter_103()))
    models = await ss.discover(dev.read)
    assert [(m.model_id, m.address, m.length) for m in models] == [(1, base + 2, 66), (103, base + 70, 50)]
    assert ss.measurement_model(models).model_id == 103
    common = ss.decode_common(await ss.read_model(dev.read, models[0]))
    assert common.manufacturer == "ACME"


async def test_discovery_does_not_hide_a_dead_connection() -> None:
    async def dead(address: int, count: int) -> list[int]:
        raise ConnectionError("connection refused")

    with pytest.raises(ConnectionError):
        await ss.discover(dead)


async def test_discovery_rejects_missing_marker_and_garbage_chain() -> None:
    with pytest.raises(ss.SunSpecError, match="SunS"):
        await ss.discover(FakeDevice({40000: 0x1234, 40001: 0x5678}).read)
    garbage = _chain(40000, _common())
    garbage[40070] = 0  # model id 0 where the end marker should be
    with pytest.raises(ss.SunSpecError, match="garbage"):
        await ss.discover(FakeDevice(garbage).read)
    short = _chain(40000, _common(), [103, 10, *([0] * 10)])
    with pytest.raises(ss.SunSpecError, match="expected"):
        ss.measurement_model(await ss.discover(FakeDevice(short).read))


def test_register_maps_decode_vendor_encodings() -> None:
    # SDM630: IEEE 754 float32, high word first: 230.0 V = 0x4366 0x0000, 1.5 kWh import = 0x3FC0 0x0000.
    sdm = load_map("eastron-sdm630")
    assert sdm.decode_point(sdm.points["voltage_v.L1"], [0x4366, 0x0000]) == pytest.approx(230.0)
    assert sdm.decode_point(sdm.points["energy_import_wh"], [0x3FC0, 0x0000]) == pytest.approx(1500.0)
    # EM24: INT32 least significant word first; V×10 → 2301 = 230.1 V; W×10: −12345 → −1234.5 W.
    em24 = load_map("carlo-gavazzi-em24")
    assert em24.decode_point(em24.points["voltage_v.L1"], [2301, 0]) == pytest.approx(230.1)
    minus = (-12345) & 0xFFFF_FFFF
    assert em24.decode_point(em24.points["power_w"], [minus & 0xFFFF, minus >> 16]) == pytest.approx(-1234.5)


def test_der_model_701_with_scale_factors_and_per_line_values() -> None:
    """Offsets from the SunSpec model 701 definition (ID at 0; W 10, A 14, Hz 17 (uint32), TotWhInj 19 (uint64),
    WL1 41, AL1 45, VL1 47, A_SF 113, V_SF 114, Hz_SF 115, W_SF 116, TotWh_SF 120)."""
    regs = [0x8000] * 155
    regs[0], regs[1] = 701, 153
    regs[3] = 1  # St: on
    regs[10], regs[116] = 5120, 0xFFFF  # W = 5120 × 10^-1 = 512.0 W
    regs[14], regs[113] = 2133, 0xFFFE  # A = 21.33 A
    regs[17], regs[18], regs[115] = 0, 6000, 0xFFFE  # Hz = 60.00
    regs[19:23] = [0, 0, 0x0001, 0x86A0]  # TotWhInj = 100000 × 10^0
    regs[23:27] = [0, 0, 0, 0]  # TotWhAbs not implemented (acc64 zero)
    regs[120] = 0
    regs[41], regs[45], regs[47], regs[114] = 5120, 2133, 2400, 0xFFFF
    regs[70] = regs[93] = 0xFFFF  # VL2, VL3: uint16 "not implemented"
    m = ss.decode_der_measurement(regs)
    assert m.power_w == pytest.approx(512.0) and m.status == "on"
    assert m.current_a == {"L1": pytest.approx(21.33)} and m.voltage_v == {"L1": pytest.approx(240.0)}
    assert m.frequency_hz == pytest.approx(60.0)
    assert m.energy_export_wh == 100_000 and m.energy_import_wh is None
    header = ss.ModelHeader(701, 40070, 153)
    assert ss.measurement_model([ss.ModelHeader(1, 40002, 66), header]) == header
