"""OCPP 2.0.1 (OCPP-J, subprotocol `ocpp2.0.1`): validation, smart-charging profiles and the station session."""
