"""The FastAPI application: REST resources, the live stream, `/metrics` and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from evsite import __version__
from evsite.api import auth, guard, metrics, problems
from evsite.api.live import LiveState, run_tasks, stop_tasks
from evsite.api.routes import chargers, load, ops, sessions, signals, site, stream
from evsite.api.runtime import SiteRuntime
from evsite.api.tokens import TokenStore

STATIC = Path(__file__).parent / "static"


class Health(BaseModel):
    status: str
    version: str
    site: str
    parts: dict[str, bool]


def create_app(runtime: SiteRuntime, max_body_bytes: int = guard.DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """An app serving `runtime`. Without a database it keeps tokens in memory (tests, design-time use).

    Request bodies over `max_body_bytes` are refused with 413 before they are read.
    """
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if runtime.db is None:
            engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
            runtime.db = async_sessionmaker(engine, expire_on_commit=False)
        bind = runtime.db.kw.get("bind")
        if bind is not None:
            await TokenStore.create_tables(bind)
        app.state.tokens = TokenStore(runtime.db)
        app.state.live = live = LiveState(runtime)
        tasks = await run_tasks(live)
        try:
            yield
        finally:
            await stop_tasks(tasks)
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="evsite API",
        version=__version__,
        summary="Live state, actions and reports of an evsite charging site.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    app.state.auth_failures = failures = guard.AuthFailures()
    problems.install(app)

    def tokens() -> TokenStore | None:
        return getattr(app.state, "tokens", None)

    app.add_middleware(auth.AuditMiddleware, store=tokens)
    # Added last, so it runs first: nothing reaches the audit or a route before the size and token checks.
    app.add_middleware(guard.RequestGuard, store=tokens, failures=failures, max_body_bytes=max_body_bytes)
    for module in (site, chargers, sessions, load, signals, ops, stream):
        app.include_router(module.router)

    @app.get("/api/v1/health", tags=["operations"], summary="Liveness, and which parts of evsite run (no token)")
    async def health(request: Request) -> Health:
        return Health(status="ok", version=__version__, site=runtime.site.name, parts=dict(runtime.parts))

    @app.get(
        "/metrics",
        tags=["operations"],
        dependencies=[auth.viewer],
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
        responses=problems.PROBLEM_RESPONSES,
    )
    async def prometheus(request: Request) -> PlainTextResponse:
        text = metrics.render(request.app.state.live, request.app.state.auth_failures)
        return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    app.mount("/dashboard", StaticFiles(directory=STATIC, html=True), name="dashboard")
    return app
