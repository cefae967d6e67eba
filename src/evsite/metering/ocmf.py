"""Signed meter values in OCMF (Open Charge Metering Format, S.A.F.E. e.V.): parse, check, verify.

An OCMF record is the text ``OCMF|{payload JSON}|{signature JSON}``. The signature covers the payload bytes
exactly as received (re-serialising the JSON would change number formatting and break it), so evsite stores
the whole string verbatim and verifies the original payload substring. Verification needs the meter's public
key (from the charger's documentation, the OCPP 2.0.1 `publicKey` field or the meter label); without one the
record is parsed and checked but its signature is reported as unverified, never as valid.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evsite.errors import InputError

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp192r1": ec.SECP192R1,
    "secp256k1": ec.SECP256K1,
    "brainpool256r1": ec.BrainpoolP256R1,
    "brainpool384r1": ec.BrainpoolP384R1,
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
DEFAULT_ALGORITHM = "ECDSA-secp256r1-SHA256"
END_TX = {"E", "L", "R", "A", "P"}  # end of transaction: normal, local, remote, abort, power failure


class OcmfError(InputError):
    """Text that is not a well-formed OCMF record."""


@dataclass(frozen=True)
class OcmfReading:
    at: datetime
    time_status: str  # U unknown, I informative, S synchronised, R relative
    tx: str  # B begin, C charging, X exception, E/L/R/A/P end, S suspended, T tariff change
    value: Decimal
    unit: str
    status: str  # ST: G = good
    error_flags: str = ""

    @property
    def energy_wh(self) -> Decimal | None:
        if self.unit == "kWh":
            return self.value * 1000
        if self.unit == "Wh":
            return self.value
        return None


@dataclass
class OcmfRecord:
    raw: str
    payload_text: str
    payload: dict[str, Any]
    signature: dict[str, Any]
    readings: list[OcmfReading]

    @property
    def meter_serial(self) -> str | None:
        value = self.payload.get("MS")
        return str(value) if value is not None else None

    @property
    def pagination(self) -> str | None:
        value = self.payload.get("PG")
        return str(value) if value is not None else None


@dataclass
class Verification:
    signature_valid: bool | None  # None: no public key to check with
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Signature checked and valid, and no content problem."""
        return self.signature_valid is True and not self.problems


def unwrap(value: str) -> str:
    """OCMF text from an OCPP signed value: as is, or base64 (OCPP 2.0.1 `signedMeterData`)."""
    text = value.strip()
    if text.startswith("OCMF|"):
        return text
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OcmfError("not OCMF text (no 'OCMF|' prefix, not base64 of it)") from None
    if not decoded.startswith("OCMF|"):
        raise OcmfError("decoded signed data is not OCMF")
    return decoded


def parse(text: str) -> OcmfRecord:
    """Split an OCMF record into its verbatim payload text, parsed payload, signature and readings."""
    raw = unwrap(text)
    decoder = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal)
    body = raw[len("OCMF|") :]
    try:
        payload, end = decoder.raw_decode(body)
    except json.JSONDecodeError as exc:
        raise OcmfError(f"payload is not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(payload, dict) or body[end : end + 1] != "|":
        raise OcmfError("expected OCMF|{payload}|{signature}")
    try:
        signature = json.loads(body[end + 1 :])
    except json.JSONDecodeError as exc:
        raise OcmfError(f"signature is not JSON: {exc.msg}") from None
    if not isinstance(signature, dict) or "SD" not in signature:
        raise OcmfError("signature object has no SD (signature data)")
    readings = [_reading(r) for r in payload.get("RD", [])]
    return OcmfRecord(raw, body[:end], payload, signature, readings)


def _reading(item: dict[str, Any]) -> OcmfReading:
    try:
        stamp, _, status = str(item["TM"]).partition(" ")
        at = datetime.strptime(stamp.replace(",", "."), "%Y-%m-%dT%H:%M:%S.%f%z")
        return OcmfReading(
            at=at,
            time_status=status or "U",
            tx=str(item.get("TX", "")),
            value=Decimal(item["RV"]),
            unit=str(item.get("RU", "")),
            status=str(item.get("ST", "")),
            error_flags=str(item.get("EF", "")),
        )
    except (KeyError, ValueError) as exc:
        raise OcmfError(f"bad reading {item!r}: {exc}") from None


def load_public_key(key: str | bytes) -> ec.EllipticCurvePublicKey:
    """A public key as PEM, hex DER (as meter labels print it) or base64 DER (OCPP 2.0.1 `publicKey`)."""
    data = key.encode() if isinstance(key, str) else key
    if data.lstrip().startswith(b"-----BEGIN"):
        loaded = serialization.load_pem_public_key(data)
    else:
        text = data.decode().strip()
        try:
            der = bytes.fromhex(text)
        except ValueError:
            der = base64.b64decode(text)
        loaded = serialization.load_der_public_key(der)
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise OcmfError("OCMF signatures are ECDSA: the public key must be an elliptic-curve key")
    return loaded


def _signature_bytes(signature: dict[str, Any]) -> bytes:
    encoding = str(signature.get("SE", "hex")).lower()
    data = str(signature["SD"])
    return base64.b64decode(data) if encoding == "base64" else bytes.fromhex(data)


def verify(record: OcmfRecord, public_key: str | bytes | ec.EllipticCurvePublicKey | None) -> Verification:
    """Check a record's content and, with a key, its ECDSA signature over the verbatim payload."""
    problems = content_problems(record)
    if public_key is None:
        return Verification(None, problems)
    algorithm = str(record.signature.get("SA", DEFAULT_ALGORITHM))
    try:
        kind, curve_name, hash_name = algorithm.split("-")
        curve = CURVES[curve_name]
        digest = HASHES[hash_name]
    except (ValueError, KeyError):
        return Verification(False, [*problems, f"unsupported signature algorithm {algorithm}"])
    if kind != "ECDSA":
        return Verification(False, [*problems, f"unsupported signature algorithm {algorithm}"])
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    if not isinstance(key.curve, curve):
        return Verification(False, [*problems, f"public key is on {key.curve.name}, signature says {curve_name}"])
    try:
        key.verify(_signature_bytes(record.signature), record.payload_text.encode("utf-8"), ec.ECDSA(digest()))
    except (InvalidSignature, ValueError):
        return Verification(False, [*problems, "signature does not match the payload"])
    return Verification(True, problems)


def content_problems(record: OcmfRecord) -> list[str]:
    """Rules a verifier applies besides the signature: status good, no error flags, readings present."""
    problems = []
    if not record.readings:
        problems.append("no readings (RD)")
    if not record.pagination:
        problems.append("no pagination counter (PG)")
    for r in record.readings:
        if r.status != "G":
            problems.append(f"meter status {r.status or '?'} at {r.at.isoformat()} (G required)")
        if r.error_flags:
            problems.append(f"error flags {r.error_flags} at {r.at.isoformat()}")
    return problems


def session_problems(records: list[OcmfRecord], start_wh: Decimal | None, stop_wh: Decimal | None) -> list[str]:
    """A transaction's signed records against each other and against the OCPP registers."""
    problems = []
    serials = {r.meter_serial for r in records}
    if len(serials) > 1:
        problems.append(f"signed records come from several meters: {sorted(str(s) for s in serials)}")
    pages = [r.pagination for r in records if r.pagination and r.pagination[1:].isdigit()]
    numbers = [int(p[1:]) for p in pages if p.startswith("T")]
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        problems.append(f"transaction pagination is not consecutive: {numbers} (records missing or added)")
    readings = [r for rec in records for r in rec.readings]
    if readings:
        if readings[0].tx != "B":
            problems.append(f"first signed reading is TX={readings[0].tx}, not B (begin)")
        if readings[-1].tx not in END_TX and stop_wh is not None:
            problems.append(f"last signed reading is TX={readings[-1].tx}, not an end")
        first, last = readings[0].energy_wh, readings[-1].energy_wh
        if start_wh is not None and first is not None and abs(first - start_wh) >= 1:
            problems.append(f"signed begin register {first} Wh differs from the OCPP start {start_wh} Wh")
        if stop_wh is not None and last is not None and readings[-1].tx in END_TX and abs(last - stop_wh) >= 1:
            problems.append(f"signed end register {last} Wh differs from the OCPP stop {stop_wh} Wh")
    return problems
