"""What travels between nodes is checked like any other input: subjects and keys, events, setpoint commands."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

pytest.importorskip("nats", reason="nats-py (the [cluster] extra) is not installed")

from evsite.cluster import ClusterSettings
from evsite.cluster.codec import decode, encode
from evsite.cluster.gateway import leader_epoch, parse_command
from evsite.cluster.names import Names, owner_key, token, untoken
from evsite.errors import InputError
from evsite.runtime.events import ChargerConnected, MeterSample, SetpointResult, SiteSignal


@pytest.mark.parametrize("cp_id", ["WP-01", "a.b", "*", ">", "with space", "ünï", "=41", "x" * 48])
def test_any_id_becomes_one_safe_token_and_back(cp_id: str) -> None:
    tok = token(cp_id)
    assert untoken(tok) == cp_id
    assert all(c.isalnum() or c in "-_=" for c in tok)  # no `.`, `*`, `>` or space: one subject token
    assert owner_key("Site A", cp_id).count(".") == 1


def test_ids_that_look_encoded_do_not_collide_with_encoded_ones() -> None:
    assert token("=41") != token("A")
    assert len({token(x) for x in ["a.b", "a_b", "a-b", "=612e62"]}) == 4


def test_namespace_is_checked() -> None:
    with pytest.raises(ValueError):
        Names("bad.name")
    with pytest.raises(ValueError):
        ClusterSettings("nats://127.0.0.1:4222", namespace="Evsite>")
    with pytest.raises(ValueError):
        ClusterSettings("nats://127.0.0.1:4222", lease_s=0.5)


def test_events_round_trip() -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    for event in (
        MeterSample("WP-01", 1, at, energy_wh=1500.0, power_w=3900.0, current_a={"L1": 16.2}, transaction_id=7),
        ChargerConnected("WP-01", False, at),
        SiteSignal("dr_limit", "MSB", {"L1": 100.0}, "ven", at, until=at),
    ):
        assert decode(encode(event)) == event


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"type": "SetpointResult"}',  # not a forwarded kind
        b'{"type": "MeterSample", "source": "x", "connector_id": 1}',  # no time
        b'{"type": "MeterSample", "source": "x", "connector_id": 1, "at": "2026-12-07T12:00:00"}',  # naive
        b'{"type": "MeterSample", "source": "x", "connector_id": "1", "at": "2026-12-07T12:00:00Z"}',
        b'{"type": "MeterSample", "source": "x", "connector_id": 1, "at": "2026-12-07T12:00:00Z",'
        b' "current_a": {"L1": "9"}}',
        b'{"type": "MeterSample", "source": "x", "connector_id": 1, "at": "2026-12-07T12:00:00Z", "evil": 1}',
        b'{"type": "SiteSignal", "kind": "free_power", "node": "MSB", "current_a": {}, "source": "x",'
        b' "at": "2026-12-07T12:00:00Z"}',
        b'{"type": "ChargerConnected", "charge_point_id": "x", "connected": true, "at": "2026-12-07T12:00:00Z",'
        b' "pad": "' + b"x" * 20_000 + b'"}',
    ],
)
def test_malformed_events_are_refused(raw: bytes) -> None:
    with pytest.raises(InputError):
        decode(raw)


def test_setpoint_results_are_not_forwarded() -> None:
    # The leader learns a setpoint's fate from the command's reply; a forwarded copy would be counted twice.
    with pytest.raises(InputError):
        decode(encode(SetpointResult("WP-01", 1, 16.0, True)))  # type: ignore[arg-type]


def test_commands_are_checked() -> None:
    assert parse_command(b'{"connector_id": 1, "limit_a": 16, "epoch": 3}') == (1, 16.0, 3)
    for bad in (
        b'{"connector_id": 1, "limit_a": 16}',
        b'{"connector_id": 1, "limit_a": -1, "epoch": 3}',
        b'{"connector_id": 1, "limit_a": 1e9, "epoch": 3}',
        b'{"connector_id": true, "limit_a": 16, "epoch": 3}',
        b'{"connector_id": 1, "limit_a": 16, "epoch": 0}',
        b'{"connector_id": 1, "limit_a": "16", "epoch": 3}',
        b'{"connector_id": 1, "limit_a": 16, "epoch": 3, "x": 1}',
        b"\xff",
        b"{" + b" " * 2000 + b"}",
    ):
        with pytest.raises(InputError):
            parse_command(bad)


def test_leader_epoch_is_the_creating_revision() -> None:
    assert leader_epoch(orjson.dumps({"node": "a"}), 5) == 5  # the create itself
    assert leader_epoch(orjson.dumps({"node": "a", "epoch": 5}), 9) == 5  # a renewal carries it
    assert leader_epoch(orjson.dumps({"node": "a", "epoch": 99}), 9) == 9  # no epoch from the future
    assert leader_epoch(b"junk", 9) == 9


def test_credentials_in_a_nats_url_are_not_shown() -> None:
    from evsite.cluster.node import redacted

    assert redacted("nats://evsite:s3cret@nats.example:4222") == "nats://***@nats.example:4222"
    assert redacted("nats://token@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"
    assert redacted("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
