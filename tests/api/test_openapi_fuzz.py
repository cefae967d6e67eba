"""Schemathesis over our own OpenAPI document: no input may make the server answer 5xx.

Runs against the app on a real socket, authenticated as admin so generated requests reach the
handlers rather than stopping at the 401 check, then once more without a token (everything but
the health check must be a 401). Bounded to a few examples per operation (a few hundred requests,
about 10 s). Every error answer must be a problem document, every answer must carry the security
headers, and the process may not grow by more than `RSS_BOUND` over the run.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from evsite.api import SiteRuntime
from evsite.api.tokens import Role, TokenStore
from evsite.site import load_site
from tests.api.conftest import RecordingActions, ThreadedApi, sqlite_memory
from tests.conftest import EXAMPLES

EXAMPLES_PER_OPERATION = 6  # per generation mode (valid and invalid input)
ANONYMOUS_EXAMPLES = 2
RSS_BOUND = 64 << 20
PUBLIC = {"/api/v1/health"}
UVICORN_REFUSAL = "Invalid HTTP request received."  # uvicorn's own answer to a request it cannot parse


def rss() -> int:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.slow
def test_no_server_errors_on_any_generated_request() -> None:
    engine, db = sqlite_memory()
    runtime = SiteRuntime(site=load_site(EXAMPLES / "workplace-20.yaml"), db=db, actions=RecordingActions())
    with ThreadedApi(runtime) as server:
        token = server.run(TokenStore(db).create("fuzz-admin-7f3c", Role.ADMIN))
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        headers = {"Authorization": f"Bearer {token}"}
        calls: list[str] = []
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 25, "the OpenAPI document lost operations"
        rss_before = rss()

        for operation, mode in itertools.product(operations, list(schemathesis.GenerationMode)):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def exercise(case: schemathesis.Case) -> None:
                response = case.call(base_url=server.url, headers=headers, timeout=10)
                calls.append(f"{case.method} {response.status_code}")
                label = f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}"
                if response.status_code >= 500:
                    failures.append(f"{label}: {response.text[:300]}")
                content_type = response.headers.get("content-type", [""])[0]
                if response.status_code == 400 and response.text == UVICORN_REFUSAL:
                    return  # malformed HTTP (a generated header or URL) refused by uvicorn before the app runs
                if response.status_code >= 400 and not content_type.startswith("application/problem+json"):
                    failures.append(f"{label}: not problem+json ({content_type})")
                if response.headers.get("x-content-type-options") != ["nosniff"]:
                    failures.append(f"{label}: no security headers")

            try:
                exercise()
            except Unsatisfiable:  # an operation without parameters has no invalid input to generate
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label

        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
            @settings(
                max_examples=ANONYMOUS_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
            )
            def anonymous(case: schemathesis.Case) -> None:
                response = case.call(base_url=server.url, timeout=10)
                expected = 200 if case.path in PUBLIC else 401
                if response.status_code != expected:
                    failures.append(f"anonymous {case.method} {case.formatted_path} -> {response.status_code}")

            anonymous()
        grown = rss() - rss_before
        server.run(engine.dispose())
    assert grown < RSS_BOUND, f"the process grew by {grown >> 20} MiB over the run"
    assert not failures, "\n".join(failures[:20])
    statuses = Counter(int(c.rsplit(" ", 1)[1]) // 100 for c in calls)
    assert statuses[2] >= 50, f"too few requests got past validation and auth: {statuses}"
    assert statuses[4] >= 50, f"too few invalid requests were generated: {statuses}"
    assert len(calls) >= 200, f"only {len(calls)} requests were generated"
