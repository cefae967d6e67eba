"""`GET /api/v1/cluster` outside a cluster: a problem saying the part is not running (the route's cluster
behaviour is tested against real NATS in tests/cluster)."""

from __future__ import annotations

from tests.api.conftest import RunningApi


async def test_cluster_route_without_a_cluster_is_not_configured(api: RunningApi) -> None:
    async with api.client("viewer") as client:
        response = await client.get("/api/v1/cluster")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "evsite serve --cluster" in response.json()["detail"]
        assert "evsite_cluster_" not in (await client.get("/metrics")).text
    async with api.client() as anonymous:
        assert (await anonymous.get("/api/v1/cluster")).status_code == 401
