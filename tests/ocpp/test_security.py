"""Security profiles 1 (HTTP Basic auth) and 2 (TLS + Basic auth) from the OCPP 1.6 security whitepaper."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from evsite.ocpp import certs
from evsite.ocpp.auth import basic_auth_header, hash_password, parse_basic_auth, verify_password
from evsite.ocpp.server import CentralSystem, ServerSettings
from evsite.site import Site
from evsite.site.model import OcppSettings
from evsite.store.ocpp import OcppStore

from .conftest import RawClient

PASSWORD = "0123456789abcdef-secret"


def test_password_hash_round_trip() -> None:
    stored = hash_password(PASSWORD, iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password("wrong", stored)
    assert not verify_password(PASSWORD, "md5$whatever")
    assert parse_basic_auth(basic_auth_header("CP-1", "pa:ss")) == ("CP-1", "pa:ss")
    assert parse_basic_auth("Basic !!!") is None and parse_basic_auth(None) is None


@pytest.fixture
def secured(workplace: Site) -> Site:
    workplace.evse[0].ocpp = OcppSettings(security_profile=1, password_hash=hash_password(PASSWORD, 1000))
    workplace.evse[1].ocpp = OcppSettings(security_profile=2, password_hash=hash_password(PASSWORD, 1000))
    return workplace


async def test_basic_auth_profile_1(store: OcppStore, secured: Site) -> None:
    async with CentralSystem(store, secured, settings=ServerSettings(port=0)) as cs:
        base = f"ws://127.0.0.1:{cs.port}/ocpp/WP-01"
        for headers in (
            None,
            {"Authorization": basic_auth_header("WP-01", "wrong")},
            {"Authorization": basic_auth_header("WP-99", PASSWORD)},
        ):
            with pytest.raises(InvalidStatus) as refused:
                await connect(base, subprotocols=["ocpp1.6"], additional_headers=headers, open_timeout=5)
            assert refused.value.response.status_code == 401
            assert "Basic" in refused.value.response.headers["WWW-Authenticate"]
        headers = {"Authorization": basic_auth_header("WP-01", PASSWORD)}
        async with connect(base, subprotocols=["ocpp1.6"], additional_headers=headers, open_timeout=5) as ws:
            answer = await RawClient(ws).call("Heartbeat", {})
            assert answer[0] == 3
        # A profile-2 charger is never accepted over plain WebSocket.
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                f"ws://127.0.0.1:{cs.port}/ocpp/WP-02",
                subprotocols=["ocpp1.6"],
                additional_headers={"Authorization": basic_auth_header("WP-02", PASSWORD)},
                open_timeout=5,
            )
        assert refused.value.response.status_code == 403


async def test_tls_profile_2(store: OcppStore, secured: Site, tmp_path: Path) -> None:
    paths = certs.generate(tmp_path / "pki", ["127.0.0.1", "localhost"])
    settings = ServerSettings(port=0, ssl=certs.server_context(paths["cert"], paths["key"]))
    async with CentralSystem(store, secured, settings=settings) as cs:
        client_ssl = certs.client_context(paths["ca"])
        headers = {"Authorization": basic_auth_header("WP-02", PASSWORD)}
        async with connect(
            f"wss://127.0.0.1:{cs.port}/ocpp/WP-02",
            subprotocols=["ocpp1.6"],
            ssl=client_ssl,
            additional_headers=headers,
            open_timeout=5,
        ) as ws:
            assert (await RawClient(ws).call("Heartbeat", {}))[0] == 3
        with pytest.raises(InvalidStatus) as refused:
            await connect(
                f"wss://127.0.0.1:{cs.port}/ocpp/WP-02", subprotocols=["ocpp1.6"], ssl=client_ssl, open_timeout=5
            )
        assert refused.value.response.status_code == 401


async def test_client_certificate_profile_3(store: OcppStore, workplace: Site, tmp_path: Path) -> None:
    workplace.evse[2].ocpp = OcppSettings(security_profile=3)
    pki = certs.generate(tmp_path / "pki", ["127.0.0.1"])
    mine = certs.issue_charger_cert(pki["ca"], pki["ca_key"], "WP-03", tmp_path / "chargers")
    other = certs.issue_charger_cert(pki["ca"], pki["ca_key"], "WP-04", tmp_path / "chargers")
    settings = ServerSettings(port=0, ssl=certs.server_context(pki["cert"], pki["key"], client_ca=pki["ca"]))
    async with CentralSystem(store, workplace, settings=settings) as cs:
        target = f"wss://127.0.0.1:{cs.port}/ocpp/WP-03"
        with_cert = certs.client_context(pki["ca"], mine["cert"], mine["key"])
        async with connect(target, subprotocols=["ocpp1.6"], ssl=with_cert, open_timeout=5) as ws:
            assert (await RawClient(ws).call("Heartbeat", {}))[0] == 3
        for context in (certs.client_context(pki["ca"]), certs.client_context(pki["ca"], other["cert"], other["key"])):
            with pytest.raises(InvalidStatus) as refused:
                await connect(target, subprotocols=["ocpp1.6"], ssl=context, open_timeout=5)
            assert refused.value.response.status_code == 403
        # A profile-0 charger on the same TLS port needs no client certificate.
        async with connect(
            f"wss://127.0.0.1:{cs.port}/ocpp/WP-05",
            subprotocols=["ocpp1.6"],
            ssl=certs.client_context(pki["ca"]),
            open_timeout=5,
        ) as ws:
            assert (await RawClient(ws).call("Heartbeat", {}))[0] == 3
