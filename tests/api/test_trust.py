"""Issue 14, from the network: strict bodies, size limits, auth before parsing, no anonymous audit rows,
security headers, the live stream's token off the URL, CSV injection, set-up token rotation."""

from __future__ import annotations

import ast
import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from evsite.api import SiteRuntime, create_app
from evsite.api.tokens import AuditEntry, Role, TokenStore
from evsite.csvsafe import safe_cell
from evsite.runtime.events import TransactionEvent
from evsite.site import load_site
from tests.api.conftest import RunningApi, sqlite_memory, start_server, stop_server
from tests.api.test_api import assert_problem, plug_in, settle
from tests.conftest import EXAMPLES, ROOT, free_port

STATIC = ROOT / "src" / "evsite" / "api" / "static"


# ------------------------------------------------------------------ strict command bodies


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ('{"limit_a": true}', "body.limit_a", "valid number"),
        ('{"limit_a": "50"}', "body.limit_a", "valid number"),
        ('{"limit_a": 50, "limt_a": 10}', "body.limt_a", "Extra inputs are not permitted"),
        ('{"limit_a": NaN}', "body.limit_a", "finite number"),
        ('{"limit_a": Infinity}', "body.limit_a", "finite number"),
        ('{"limit_a": 50, "duration_s": "600"}', "body.duration_s", "valid number"),
    ],
)
async def test_limit_commands_refuse_coerced_unknown_and_non_finite_values(
    api: RunningApi, body: str, field: str, reason: str
) -> None:
    async with api.client("operator") as operator:
        response = await operator.put("/api/v1/load/limit", content=body, headers={"Content-Type": "application/json"})
        problem = assert_problem(response, 422)
        assert (await operator.get("/api/v1/load/policy")).json()["manual_limit"] is None  # nothing applied
    errors = {e["name"]: e["reason"] for e in problem["errors"]}  # type: ignore[attr-defined]
    assert reason in errors[field], errors
    assert "greater than" not in str(problem["detail"])  # NaN is not "below 0"


async def test_strict_bodies_still_take_what_json_means(api: RunningApi) -> None:
    async with api.client("operator") as operator, api.client("admin") as admin:
        whole = await operator.put("/api/v1/load/limit", json={"limit_a": 50, "until": "2999-01-01T00:00:00Z"})
        assert whole.status_code == 422  # further away than 7 days: the timestamp was parsed and checked
        assert (await operator.put("/api/v1/load/limit", json={"limit_a": 50.5, "duration_s": 60})).status_code == 200
        assert_problem(await operator.put("/api/v1/load/priorities/WP-01/1", json={"priority": 2.0}), 422)
        assert_problem(await operator.put("/api/v1/load/priorities/WP-01/1", json={"priority": True}), 422)
        assert (await operator.put("/api/v1/load/priorities/WP-01/1", json={"priority": 2})).status_code == 200
        assert_problem(await operator.post("/api/v1/chargers/WP-01/remote-start", json={"connector_id": "1"}), 422)
        assert (await admin.post("/api/v1/tokens", json={"name": "wall", "role": "viewer"})).status_code == 201
        assert_problem(await admin.post("/api/v1/tokens", json={"name": "w2", "role": "viewer", "x": 1}), 422)


# ------------------------------------------------------------------ body size and auth before parsing


@pytest.fixture
async def small_limit_api() -> AsyncIterator[tuple[str, str]]:
    engine, db = sqlite_memory()
    app = create_app(SiteRuntime(site=load_site(EXAMPLES / "workplace-20.yaml"), db=db), max_body_bytes=1_000)
    server, task, url = await start_server(app)
    token = await TokenStore(db).create("op", Role.OPERATOR)
    try:
        yield url, token
    finally:
        await stop_server(server, task)
        await engine.dispose()


async def chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


async def test_bodies_over_the_configured_limit_get_413_declared_or_streamed(small_limit_api: tuple[str, str]) -> None:
    url, token = small_limit_api
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as client:
        fits = await client.put("/api/v1/load/limit", content=b'{"limit_a": 20}' + b" " * 900)
        assert fits.status_code == 200, fits.text
        declared = await client.put("/api/v1/load/limit", content=b'{"limit_a": 20}' + b" " * 2_000)
        body = assert_problem(declared, 413)
        assert "1000 bytes" in str(body["detail"])
        streamed = await client.put("/api/v1/load/limit", content=chunks(1_536))  # chunked: no Content-Length
        assert_problem(streamed, 413)
        assert (await client.get("/api/v1/load/policy")).json()["manual_limit"]["limit_a"] == 20


async def test_a_streamed_body_without_a_valid_token_gets_a_readable_401(small_limit_api: tuple[str, str]) -> None:
    url, _ = small_limit_api
    async with httpx.AsyncClient(base_url=url, timeout=5) as anonymous:
        # Refused on the headers alone; the small body is drained unparsed so the client reads its 401.
        # (A body the server would have to buffer whole: tests/api/test_body_limits.py.)
        response = await anonymous.put("/api/v1/load/limit", content=chunks(768))
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = await anonymous.put("/api/v1/load/limit", json={"limit_a": 1}, headers={"Authorization": "Bearer x"})
        assert_problem(wrong, 401)


# ------------------------------------------------------------------ audit and failed authentication


async def test_anonymous_requests_write_no_audit_rows_and_are_counted(
    api: RunningApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evsite.api.guard")
    async with api.client() as anonymous:
        for n in range(100):
            await anonymous.post(f"/api/v1/nothing-here-{n}", json={"n": n})
            await anonymous.delete(f"/api/v1/tokens/x{n}")
        for n in range(100):
            await anonymous.put("/api/v1/load/limit", json={"limit_a": 1}, headers={"Authorization": f"Bearer evs_{n}"})
    async with api.client("operator") as operator:
        await operator.put("/api/v1/load/limit", json={"limit_a": 100})
    async with api.client("viewer") as viewer:
        metrics = (await viewer.get("/metrics")).text.splitlines()
    assert api.runtime.db is not None
    async with api.runtime.db() as session:
        rows = await session.execute(select(AuditEntry.actor, func.count()).group_by(AuditEntry.actor))
    assert dict(rows.all()) == {"test-operator": 1}
    assert 'evsite_api_auth_failures_total{reason="missing"} 200' in metrics
    assert 'evsite_api_auth_failures_total{reason="invalid"} 100' in metrics
    warnings = [r for r in caplog.records if r.name == "evsite.api.guard"]
    assert 1 <= len(warnings) <= 2  # rate-limited: one report per minute, not one per request


# ------------------------------------------------------------------ security headers


def assert_security_headers(response: httpx.Response) -> str:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    return csp


async def test_dashboard_and_api_answers_carry_security_headers(api: RunningApi) -> None:
    async with api.client() as anonymous, api.client("viewer") as viewer:
        for path in ("/dashboard/", "/dashboard/dashboard.js", "/dashboard/dashboard.css"):
            response = await anonymous.get(path)
            assert response.status_code == 200
            csp = assert_security_headers(response)
            assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
        for response in (
            await anonymous.get("/api/v1/health"),
            await anonymous.get("/api/v1/site"),
            await viewer.get("/api/v1/site/state"),
            await viewer.get("/api/v1/nope"),
        ):
            assert assert_security_headers(response).startswith("default-src 'none'")
            assert response.headers["cache-control"] == "no-store"


class _InlineCode(HTMLParser):
    """Finds what a `script-src 'self'; style-src 'self'` policy would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.blocked.append("inline <script>")
        if tag == "style":
            self.blocked.append("<style> element")
        self.blocked += [f"{name} on <{tag}>" for name in names if name == "style" or name.startswith("on")]


def test_the_dashboard_has_no_inline_code_the_policy_would_block() -> None:
    page = _InlineCode()
    page.feed((STATIC / "index.html").read_text())
    assert page.blocked == []
    script = (STATIC / "dashboard.js").read_text()
    assert 'style="' not in script and "style='" not in script and "<style" not in script
    assert "?token=" not in script


# ------------------------------------------------------------------ live stream


async def test_live_stream_takes_its_token_from_a_header_or_subprotocol_never_the_url(api: RunningApi) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/api/v1/live"
    token = api.tokens["viewer"]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(f"{ws_url}?token={token}", open_timeout=5) as ws:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "never in the URL" in closed.value.rcvd.reason
    async with websockets.connect(
        ws_url,
        subprotocols=["evsite.v1", f"evsite.bearer.{token}"],
        open_timeout=5,  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "evsite.v1"  # the token is not echoed back
        assert (await asyncio.wait_for(ws.recv(), 3))[:20].startswith('{"type":')
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(ws_url, subprotocols=["evsite.v1", "evsite.bearer.evs_no"]) as ws:  # type: ignore[list-item]
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


# ------------------------------------------------------------------ CSV injection


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e3", "-1e3"),
        ("TAG-A", "TAG-A"),
        (-4.0, -4.0),
        (None, None),
    ],
)
def test_formula_cells_are_neutralised_and_numbers_kept(cell: object, written: object) -> None:
    assert safe_cell(cell) == written


async def test_sessions_csv_does_not_carry_a_formula_from_an_id_tag(api: RunningApi) -> None:
    plug_in(api, "WP-02", 16.0, 202, tag='=HYPERLINK("x")')
    api.runtime.bus.publish(TransactionEvent("WP-02", 1, 202, "stopped", "@x", 9_000.0, reason="Local"))
    await settle()
    async with api.client("viewer") as viewer:
        exported = await viewer.get("/api/v1/sessions.csv")
    row = next(csv.DictReader(io.StringIO(exported.text)))
    assert row["id_tag"] == '\'=HYPERLINK("x")'
    assert not any(value.startswith(("=", "+", "@")) for value in row.values())


def test_every_csv_writer_in_evsite_goes_through_the_safe_writer() -> None:
    """A new `csv.writer`/`csv.DictWriter` outside evsite.csvsafe would write cells unchecked."""
    offenders = []
    for path in sorted((ROOT / "src" / "evsite").rglob("*.py")):
        if path.name == "csvsafe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"writer", "DictWriter"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "csv"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------------ the set-up token


async def test_setup_token_rotation_leaves_one_live_token() -> None:
    engine, db = sqlite_memory()
    await TokenStore.create_tables(engine)
    store = TokenStore(db)
    first = await store.rotate("serve-admin", Role.ADMIN)
    second = await store.rotate("serve-admin", Role.ADMIN)
    assert await store.verify(first) is None
    principal = await store.verify(second)
    assert principal is not None and principal.name == "serve-admin" and principal.role is Role.ADMIN
    live = [t.name for t in await store.tokens() if t.revoked_at is None]
    assert live == ["serve-admin"]
    assert len(await store.tokens()) == 2  # the old one is kept, revoked, for the record
    await engine.dispose()


async def test_live_stream_under_serve_closes_on_a_big_client_frame() -> None:
    from evsite.runtime.stack import EmbeddedApiServer

    engine, db = sqlite_memory()
    port = free_port()
    server = EmbeddedApiServer(create_app(SiteRuntime(site=load_site(EXAMPLES / "workplace-20.yaml"), db=db)),
                               "127.0.0.1", port)  # fmt: skip
    await server.start()
    try:
        token = await TokenStore(db).create("wall", Role.VIEWER)
        headers = {"Authorization": f"Bearer {token}"}
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/live", additional_headers=headers) as ws:
            await asyncio.wait_for(ws.recv(), 3)
            await ws.send("x" * 1_000)  # small frames are read and dropped
            await ws.send("x" * 100_000)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(5):  # the state keeps coming while the connection stays open
                    while True:
                        await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        await server.stop()
        await engine.dispose()
