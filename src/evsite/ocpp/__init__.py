"""OCPP central system: WebSocket server, connection semantics, validation and 1.6 handlers."""
