"""OCMF records signed with a key generated here, verified over the verbatim payload."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evsite.metering import ocmf

# Payload as a meter would emit it: the number formatting ("0.000") matters for the signature.
PAYLOAD = (
    '{"FV":"1.0","GI":"ExampleCharge Share 40","GS":"SN-0001","GV":"1.2.3","PG":"T12",'
    '"MV":"ExampleMeter","MM":"EM-1","MS":"MS-778899","MF":"2.0","IS":true,"IL":"VERIFIED","IF":["RFID_PLAIN"],'
    '"IT":"ISO14443","ID":"TAG-U101","CT":"EVSEID","CI":"MF-P1-01",'
    '"RD":[{"TM":"2026-10-14T15:30:00,000-0700 S","TX":"B","RV":1000.000,"RI":"1-b:1.8.0","RU":"kWh",'
    '"RT":"AC","EF":"","ST":"G"},'
    '{"TM":"2026-10-14T16:45:00,000-0700 S","TX":"E","RV":1009.000,"RI":"1-b:1.8.0","RU":"kWh",'
    '"RT":"AC","EF":"","ST":"G"}]}'
)


def sign(payload: str, key: ec.EllipticCurvePrivateKey, algorithm: str = "ECDSA-secp256r1-SHA256") -> str:
    digest = hashes.SHA384() if algorithm.endswith("SHA384") else hashes.SHA256()
    signature = key.sign(payload.encode(), ec.ECDSA(digest)).hex()
    return f'OCMF|{payload}|{{"SA":"{algorithm}","SD":"{signature}"}}'


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def hex_der(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()
    )


def test_valid_record_verifies_and_reads_registers(key: ec.EllipticCurvePrivateKey) -> None:
    record = ocmf.parse(sign(PAYLOAD, key))
    assert record.payload_text == PAYLOAD  # verbatim, not re-serialised
    assert record.meter_serial == "MS-778899" and record.pagination == "T12"
    assert [r.energy_wh for r in record.readings] == [Decimal("1000000.000"), Decimal("1009000.000")]
    result = ocmf.verify(record, hex_der(key))
    assert result.ok and result.signature_valid is True
    assert ocmf.session_problems([record], Decimal(1_000_000), Decimal(1_009_000)) == []


def test_tampered_payload_or_wrong_key_fails(key: ec.EllipticCurvePrivateKey) -> None:
    text = sign(PAYLOAD, key)
    tampered = ocmf.parse(text.replace('"RV":1009.000', '"RV":1008.000'))
    assert ocmf.verify(tampered, hex_der(key)).signature_valid is False
    other = ec.generate_private_key(ec.SECP256R1())
    assert ocmf.verify(ocmf.parse(text), hex_der(other)).signature_valid is False
    # the same numbers written differently ("1009.0") are a different payload: the signature no longer matches
    reformatted = ocmf.parse(text.replace('"RV":1009.000', '"RV":1009.0'))
    assert ocmf.verify(reformatted, hex_der(key)).signature_valid is False


def test_without_a_key_the_signature_is_unverified_not_valid(key: ec.EllipticCurvePrivateKey) -> None:
    result = ocmf.verify(ocmf.parse(sign(PAYLOAD, key)), None)
    assert result.signature_valid is None and not result.ok


def test_base64_signed_meter_data_and_pem_key(key: ec.EllipticCurvePrivateKey) -> None:
    wrapped = base64.b64encode(sign(PAYLOAD, key).encode()).decode()  # OCPP 2.0.1 signedMeterData
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ocmf.verify(ocmf.parse(wrapped), pem).ok


def test_secp384r1_record() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    text = sign(PAYLOAD, key, "ECDSA-secp384r1-SHA384")
    assert ocmf.verify(ocmf.parse(text), hex_der(key)).ok


def test_bad_status_and_register_mismatch_are_problems(key: ec.EllipticCurvePrivateKey) -> None:
    payload = PAYLOAD.replace('"ST":"G"}]', '"ST":"M"}]')  # M: manipulation detected
    record = ocmf.parse(sign(payload, key))
    result = ocmf.verify(record, hex_der(key))
    assert result.signature_valid is True and not result.ok
    assert any("meter status M" in p for p in result.problems)
    problems = ocmf.session_problems([record], Decimal(1_000_000), Decimal(1_009_500))
    assert problems == ["signed end register 1009000.000 Wh differs from the OCPP stop 1009500 Wh"]


def test_malformed_text_is_a_clear_error() -> None:
    with pytest.raises(ocmf.OcmfError, match="not OCMF"):
        ocmf.parse("hello")
    with pytest.raises(ocmf.OcmfError, match="payload is not JSON"):
        ocmf.parse("OCMF|{oops|{}")
