"""The site model and its YAML loader."""

from evsite.site.load import Problem, SiteFileError, SiteLimits, dump_site, load_site, load_site_text
from evsite.site.model import Circuit, Evse, Feeder, Panel, Service, ServiceSystem, Site

__all__ = [
    "Circuit",
    "Evse",
    "Feeder",
    "Panel",
    "Problem",
    "Service",
    "ServiceSystem",
    "Site",
    "SiteFileError",
    "SiteLimits",
    "dump_site",
    "load_site",
    "load_site_text",
]
