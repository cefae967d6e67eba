"""Building-facing integrations: BACnet/IP device and MQTT / Home Assistant bridge."""
