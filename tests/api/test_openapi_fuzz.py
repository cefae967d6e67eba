"""Schemathesis over our own OpenAPI document: no input may make the server answer 5xx.

Runs against the app on a real socket, authenticated as admin so generated requests reach the
handlers rather than stopping at the 401 check. Bounded to a few examples per operation
(a few hundred requests in all). Every error answer must be a problem document.
"""

from __future__ import annotations

import itertools
from collections import Counter

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
                if response.status_code >= 400 and not content_type.startswith("application/problem+json"):
                    failures.append(f"{label}: not problem+json ({content_type})")

            try:
                exercise()
            except Unsatisfiable:  # an operation without parameters has no invalid input to generate
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
        server.run(engine.dispose())
    assert not failures, "\n".join(failures[:20])
    statuses = Counter(int(c.rsplit(" ", 1)[1]) // 100 for c in calls)
    assert statuses[2] >= 50, f"too few requests got past validation and auth: {statuses}"
    assert statuses[4] >= 50, f"too few invalid requests were generated: {statuses}"
    assert len(calls) >= 200, f"only {len(calls)} requests were generated"
