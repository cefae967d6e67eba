"""REST API, live stream and dashboard of a running evsite site."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evsite.api.app import create_app
    from evsite.api.runtime import SiteRuntime

__all__ = ["SiteRuntime", "create_app"]


def __getattr__(name: str) -> object:
    # Loaded on first use: FastAPI and the store are not needed by `evsite check` or `--help`.
    if name == "create_app":
        from evsite.api.app import create_app

        return create_app
    if name == "SiteRuntime":
        from evsite.api.runtime import SiteRuntime

        return SiteRuntime
    raise AttributeError(f"module 'evsite.api' has no attribute {name!r}")
