"""The site: its model, live state per node and line, the design-check report and the one-line diagram."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from evsite.api import auth, deps
from evsite.api.problems import PROBLEM_RESPONSES, not_configured
from evsite.api.views import SiteState, site_state

router = APIRouter(prefix="/api/v1/site", tags=["site"], responses=PROBLEM_RESPONSES)


@router.get("", dependencies=[auth.viewer], summary="The site model as loaded")
async def get_site(request: Request) -> dict[str, Any]:
    return deps.runtime(request).site.model_dump(mode="json", exclude_none=True)


@router.get("/state", dependencies=[auth.viewer], summary="Live limit, measured and allocated current per node/line")
async def get_state(request: Request) -> SiteState:
    return site_state(deps.live(request))


@router.get(
    "/design-check",
    dependencies=[auth.viewer],
    summary="The NEC design-check report for the site",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
async def design_check(request: Request, format: Literal["json", "html"] = Query("json")) -> Response:
    report = deps.runtime(request).design_report
    if report is None:
        raise not_configured("the design check (evsite.code)")
    result = report(deps.runtime(request).site, format)
    if inspect.isawaitable(result):
        result = await result
    if format == "html":
        return HTMLResponse(str(result))
    if isinstance(result, str | bytes):
        return Response(result, media_type="application/json")
    from fastapi.responses import JSONResponse

    return JSONResponse(result)


@router.get(
    "/oneline.svg",
    dependencies=[auth.viewer],
    summary="One-line diagram (SVG)",
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def oneline(request: Request) -> Response:
    render = deps.runtime(request).oneline_svg
    if render is None:
        raise not_configured("the one-line diagram (evsite.code.oneline)")
    return Response(render(deps.runtime(request).site), media_type="image/svg+xml")
