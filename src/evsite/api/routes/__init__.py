"""API resources, one module per area."""
