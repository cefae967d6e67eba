"""Submetering and per-unit billing: sessions, meter fitness, integrity, tariffs, statements.

The synthetic month (`evsite.metering.month`) is also a load-manager replay scenario,
`multifamily-month`; `evsite.sim.scenarios` names it next to the built-in ones.
"""
