"""Run-time plumbing shared by the OCPP server, the load manager, integrations and the API."""
