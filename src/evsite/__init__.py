"""evsite: plan, permit and run smart EV charging sites from one site model."""

from evsite.site import Site, SiteFileError, load_site, load_site_text

__version__ = "0.1.0"

__all__ = ["Site", "SiteFileError", "__version__", "load_site", "load_site_text"]
