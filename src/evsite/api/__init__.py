"""REST API, live stream and dashboard of a running evsite site."""

from evsite.api.runtime import SiteRuntime

__all__ = ["SiteRuntime", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # FastAPI is imported only when the app is wanted
        from evsite.api.app import create_app

        return create_app
    raise AttributeError(name)
