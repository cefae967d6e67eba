"""Grid-facing integrations: Modbus TCP meters and PV inverters (SunSpec), OpenADR 2.0b VEN."""
