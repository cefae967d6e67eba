"""Compact storage of OCPP meter values: one row per MeterValue element, typed integer columns.

A charger reports, every minute of every session, the same few sampled values (energy register,
power, current per line, voltage). Stored one row per sampled value with its seven-part text key,
a year for 30 chargers took 2.7 GB in SQLite. Here:

- a **series** (charger, connector, transaction) is stored once and referred to by a small integer;
- a **layout** (the element's sampled values in order: measurand, phase, location, context, unit,
  format, decimals and the column each is kept in) is stored once per shape;
- the **sample** row holds integer epoch seconds (+ microseconds) and the values we bill and control
  on as integers in fixed sub-units (mWh, dW, cA, dV), which is exact for what meters send;
- everything else — signed data (OCMF), measurands without a column, a value with more decimals than
  its column keeps, or one whose text is not the plain rendering of its number ("+12", "1E3") — is
  kept verbatim in `ocpp_sample_texts`.

Decoding gives back every sampled value with its exact text, so nothing a charger sent is lost and
billing reads the same register values as before. Rows are written with INSERT … ON CONFLICT DO
NOTHING on (series, time, layout): a resent element is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from evsite.errors import StoreError
from evsite.store import models as m
from evsite.store.base import table_of

ENERGY = "Energy.Active.Import.Register"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TEXT = "text"
INT32 = 2**31 - 1
INT64 = 2**63 - 1


SERIES = table_of(m.SampleSeries)
LAYOUTS = table_of(m.SampleLayout)
SAMPLES = table_of(m.Sample)
TEXTS = table_of(m.SampleText)


@dataclass(frozen=True)
class Column:
    """A typed column: its name, sub-units per unit as sent (10**exponent), and its integer range."""

    name: str
    exponents: Mapping[str, int]  # unit as sent → power of ten to the stored integer
    bound: int


COLUMNS: dict[str, Column] = {
    c.name: c
    for c in (
        Column("energy_mwh", {"": 3, "Wh": 3, "kWh": 6}, INT64),
        Column("power_dw", {"": 1, "W": 1, "kW": 4}, INT64),
        Column("current_l1_ca", {"": 2, "A": 2}, INT32),
        Column("current_l2_ca", {"": 2, "A": 2}, INT32),
        Column("current_l3_ca", {"": 2, "A": 2}, INT32),
        Column("voltage_dv", {"": 1, "V": 1}, INT32),
        Column("offered_ca", {"": 2, "A": 2}, INT32),
    )
}
OUTLET = ("", "Outlet")


def column_for(measurand: str, phase: str, location: str, unit: str, fmt: str) -> str | None:
    """The typed column a sampled value belongs in, if any (the charger's own outlet meter, raw values)."""
    if fmt != "Raw" or location not in OUTLET:
        return None
    if measurand == ENERGY and phase == "":
        name = "energy_mwh"
    elif measurand == "Power.Active.Import" and phase == "":
        name = "power_dw"
    elif measurand == "Current.Import" and phase in ("", "L1", "L2", "L3"):
        name = f"current_{(phase or 'L1').lower()}_ca"
    elif measurand == "Voltage":
        name = "voltage_dv"
    elif measurand == "Current.Offered" and phase == "":
        name = "offered_ca"
    else:
        return None
    return name if unit in COLUMNS[name].exponents else None


# --------------------------------------------------------------------------- numbers ↔ text


def to_epoch(at: datetime) -> tuple[int, int]:
    """An aware datetime as (whole seconds since 1970-01-01 UTC, microseconds)."""
    if at.tzinfo is None:
        raise StoreError(f"naive datetime {at!r}: evsite stores aware UTC times only")
    delta = at - EPOCH
    return delta.days * 86_400 + delta.seconds, delta.microseconds


def from_epoch(at_s: int, at_us: int = 0) -> datetime:
    return EPOCH + timedelta(seconds=at_s, microseconds=at_us)


def scaled(text: str, exponent: int, bound: int) -> tuple[int, int] | None:
    """(integer in sub-units, decimals written) when `text` is a number the column holds exactly."""
    if text.isascii() and text.isdigit():  # the common case: a plain integer
        number, decimals = int(text) * 10**exponent, 0
    else:
        try:
            value = Decimal(text)
        except (InvalidOperation, ValueError):
            return None
        if not value.is_finite():
            return None
        exp = value.as_tuple().exponent
        assert isinstance(exp, int)
        decimals = max(0, -exp)
        try:
            with localcontext() as ctx:
                ctx.prec = 60
                sub = value.scaleb(exponent)
                if sub != sub.to_integral_value() or abs(sub) > bound:
                    return None  # more precision or range than the column keeps: stored as text
        except ArithmeticError:  # beyond Decimal's exponent range
            return None
        number = int(sub)
    return (number, decimals) if -bound <= number <= bound else None


def render(number: int, exponent: int, decimals: int) -> str:
    """The plain text of an integer in sub-units with `decimals` places: render(1630, 2, 1) == "16.3"."""
    if decimals == 0 and number % 10**exponent == 0:  # the common case: a whole number of units
        return str(number // 10**exponent)
    digits = str(abs(number)).rjust(exponent + 1, "0")
    whole, frac = (digits[:-exponent], digits[-exponent:]) if exponent else (digits, "")
    frac = frac[:decimals] if decimals <= exponent else frac + "0" * (decimals - exponent)
    return ("-" if number < 0 else "") + whole + ("." + frac if frac else "")


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Field:
    """One sampled value's descriptor within a layout, and where its value is kept."""

    measurand: str
    phase: str
    location: str
    context: str
    unit: str
    format: str
    slot: str  # a COLUMNS name, or "text"
    decimals: int = 0

    def value(self, row: Mapping[Any, Any], text: str | None) -> str:
        """The sampled value's text: verbatim if kept, else rendered from its column."""
        if text is not None:
            return text
        column = COLUMNS[self.slot]
        return render(row[self.slot], column.exponents[self.unit], self.decimals)


@dataclass(frozen=True)
class Layout:
    id: int
    fields: tuple[Field, ...]

    @classmethod
    def parse(cls, layout_id: int, text: str) -> Layout:
        return cls(layout_id, tuple(Field(*f) for f in json.loads(text)))


def layout_key(fields: Sequence[Field]) -> str:
    return json.dumps(
        [[f.measurand, f.phase, f.location, f.context, f.unit, f.format, f.slot, f.decimals] for f in fields],
        separators=(",", ":"),
    )


# --------------------------------------------------------------------------- encoding

SeriesKey = tuple[str, int, int | None]


@dataclass
class Encoded:
    """One MeterValue element ready to store, before its series and layout have ids."""

    series: SeriesKey
    at_s: int
    at_us: int
    layout: str
    size: int
    values: dict[str, int] = field(default_factory=dict)
    texts: list[tuple[int, str]] = field(default_factory=list)


def encode(rows: Iterable[Mapping[str, Any]]) -> list[Encoded]:
    """Group per-sampled-value rows (as the OCPP server builds them) into compact elements.

    Consecutive rows of the same series and timestamp are one element. Row keys: charger_id,
    connector_id, transaction_id, timestamp, measurand, phase, location, context, unit, format, value.
    """
    out: list[Encoded] = []
    group: list[Mapping[str, Any]] = []
    key: tuple[Any, ...] | None = None
    for row in rows:
        this = (row["charger_id"], row["connector_id"], row.get("transaction_id"), row["timestamp"])
        if key is not None and this != key:
            out.append(_element(group))
            group = []
        key = this
        group.append(row)
    if group:
        out.append(_element(group))
    return out


def _element(rows: list[Mapping[str, Any]]) -> Encoded:
    first = rows[0]
    at_s, at_us = to_epoch(first["timestamp"])
    fields: list[Field] = []
    values: dict[str, int] = {}
    texts: list[tuple[int, str]] = []
    for position, row in enumerate(rows):
        measurand = row.get("measurand") or ENERGY
        phase, location = row.get("phase") or "", row.get("location") or ""
        context, unit, fmt = row.get("context") or "", row.get("unit") or "", row.get("format") or "Raw"
        text = str(row["value"])
        slot, decimals = column_for(measurand, phase, location, unit, fmt), 0
        if slot is not None and slot not in values:
            column = COLUMNS[slot]
            exponent = column.exponents[unit]
            number = scaled(text, exponent, column.bound)
            if number is None:
                slot = None
            else:
                values[slot], decimals = number
                if render(number[0], exponent, decimals) != text:
                    texts.append((position, text))  # a number we hold exactly, written unusually
        else:
            slot = None
        if slot is None:
            texts.append((position, text))
        fields.append(Field(measurand, phase, location, context, unit, fmt, slot or TEXT, decimals))
    series = (first["charger_id"], int(first["connector_id"]), first.get("transaction_id"))
    return Encoded(series, at_s, at_us, layout_key(fields), len(fields), values, texts)


# --------------------------------------------------------------------------- writing


def insert_ignore(conn: Connection, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


@dataclass
class Ids:
    """Series and layout ids, as known to this process (only committed ones go into the cache)."""

    series: dict[SeriesKey, int] = field(default_factory=dict)
    layouts: dict[str, int] = field(default_factory=dict)

    def update(self, other: Ids) -> None:
        self.series.update(other.series)
        self.layouts.update(other.layouts)


class SampleWriter:
    """Stores sampled-value rows compactly; caches series and layout ids once they are committed.

    Callers run `write` inside their own transaction and call `remember` with its result after the
    commit, so a rolled-back transaction never leaves an id in the cache that the database lacks.
    """

    def __init__(self) -> None:
        self.ids = Ids()

    def remember(self, new: Ids) -> None:
        self.ids.update(new)

    def known(self, elements: Sequence[Encoded]) -> bool:
        return all(e.series in self.ids.series and e.layout in self.ids.layouts for e in elements)

    def rows(
        self, elements: Sequence[Encoded], ids: Ids | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Sample and text rows for elements whose series and layout ids are known."""
        series = self.ids.series if ids is None else {**self.ids.series, **ids.series}
        layouts = self.ids.layouts if ids is None else {**self.ids.layouts, **ids.layouts}
        samples: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        empty = dict.fromkeys(COLUMNS)
        for e in elements:
            key = {"series_id": series[e.series], "at_s": e.at_s, "at_us": e.at_us, "layout_id": layouts[e.layout]}
            samples.append(key | empty | e.values)
            texts.extend(key | {"position": position, "value": text} for position, text in e.texts)
        return samples, texts

    def write(self, conn: Connection, rows: Iterable[Mapping[str, Any]], pending: Ids | None = None) -> Ids:
        """Store rows in the connection's transaction; returns the ids it created or looked up (`pending`)."""
        return self.write_elements(conn, encode(rows), pending)

    def write_elements(self, conn: Connection, elements: Sequence[Encoded], pending: Ids | None = None) -> Ids:
        pending = pending if pending is not None else Ids()
        self._resolve(conn, elements, pending)
        samples, texts = self.rows(elements, pending)
        for table, batch in ((SAMPLES, samples), (TEXTS, texts)):
            if batch:
                conn.execute(insert_ignore(conn, table), batch)
        return pending

    def _resolve(self, conn: Connection, elements: Sequence[Encoded], pending: Ids) -> None:
        for e in elements:
            if e.series not in self.ids.series and e.series not in pending.series:
                pending.series[e.series] = series_id(conn, e.series)
            if e.layout not in self.ids.layouts and e.layout not in pending.layouts:
                pending.layouts[e.layout] = layout_id(conn, e.layout, e.size)


def series_id(conn: Connection, key: SeriesKey) -> int:
    """The id of a series, created if new."""
    charger, connector, tx = key
    tx_match = SERIES.c.transaction_id.is_(None) if tx is None else SERIES.c.transaction_id == tx
    where = (SERIES.c.charger_id == charger, SERIES.c.connector_id == connector, tx_match)
    found = conn.execute(select(SERIES.c.id).where(*where)).scalar()
    if found is not None:
        return int(found)
    values = {"charger_id": charger, "connector_id": connector, "transaction_id": tx}
    return int(conn.execute(SERIES.insert().values(**values).returning(SERIES.c.id)).scalar_one())


def layout_id(conn: Connection, key: str, size: int) -> int:
    """The id of a layout, created if new (layouts are unique by their text)."""
    conn.execute(insert_ignore(conn, LAYOUTS).values(fields=key, size=size))
    return int(conn.execute(select(LAYOUTS.c.id).where(LAYOUTS.c.fields == key)).scalar_one())


# --------------------------------------------------------------------------- reading


def load_layouts(conn: Connection) -> dict[int, Layout]:
    return {r.id: Layout.parse(r.id, r.fields) for r in conn.execute(select(LAYOUTS.c.id, LAYOUTS.c.fields))}


def texts_for(conn: Connection, series_ids: Iterable[int]) -> dict[tuple[int, int, int, int], dict[int, str]]:
    """Verbatim values of the given series: (series, at_s, at_us, layout) → {position: text}."""
    out: dict[tuple[int, int, int, int], dict[int, str]] = {}
    ids = sorted(set(series_ids))
    for i in range(0, len(ids), 500):
        rows = conn.execute(select(TEXTS).where(TEXTS.c.series_id.in_(ids[i : i + 500])))
        for r in rows:
            out.setdefault((r.series_id, r.at_s, r.at_us, r.layout_id), {})[r.position] = r.value
    return out


def decode(
    sample: Mapping[Any, Any],
    series: Mapping[Any, Any],
    layout: Layout,
    texts: Mapping[int, str] | None,
) -> list[dict[str, Any]]:
    """A stored element back into its sampled values, in the order the charger sent them."""
    texts = texts or {}
    at = from_epoch(sample["at_s"], sample["at_us"])
    out = []
    for position, f in enumerate(layout.fields):
        value = f.value(sample, texts.get(position))
        try:
            number: float | None = float(value) if f.format == "Raw" else None
        except ValueError:
            number = None
        out.append(
            {
                "id": sample["id"],
                "charger_id": series["charger_id"],
                "connector_id": series["connector_id"],
                "transaction_id": series["transaction_id"],
                "timestamp": at,
                "measurand": f.measurand,
                "phase": f.phase,
                "location": f.location,
                "context": f.context,
                "unit": f.unit,
                "format": f.format,
                "value": value,
                "value_num": number,
            }
        )
    return out


def read_values(
    conn: Connection,
    charger: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every stored sampled value (optionally of one charger, meter time in [start, end)), in arrival order."""
    stmt = select(SERIES)
    if charger is not None:
        stmt = stmt.where(SERIES.c.charger_id == charger)
    series = {r.id: r._mapping for r in conn.execute(stmt)}
    if not series:
        return []
    query = select(SAMPLES).order_by(SAMPLES.c.id)
    if charger is not None:
        query = query.where(SAMPLES.c.series_id.in_(list(series)))
    if start is not None:
        query = query.where(SAMPLES.c.at_s >= to_epoch(start)[0])
    if end is not None:
        query = query.where(SAMPLES.c.at_s <= to_epoch(end)[0])
    layouts = load_layouts(conn)
    texts = texts_for(conn, series)
    out: list[dict[str, Any]] = []
    lo = to_epoch(start) if start is not None else None
    hi = to_epoch(end) if end is not None else None
    for r in conn.execute(query):
        row = r._mapping
        at = (row["at_s"], row["at_us"])
        if (lo is not None and at < lo) or (hi is not None and at >= hi):
            continue
        key = (row["series_id"], row["at_s"], row["at_us"], row["layout_id"])
        out.extend(decode(row, series[row["series_id"]], layouts[row["layout_id"]], texts.get(key)))
    return out


def value_count(conn: Connection) -> int:
    """How many sampled values are stored (the old one-row-per-value count)."""
    query = select(func.coalesce(func.sum(LAYOUTS.c.size), 0)).join(SAMPLES, SAMPLES.c.layout_id == LAYOUTS.c.id)
    return int(conn.execute(query).scalar_one())
