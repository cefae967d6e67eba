"""Design-time rules: NEC 2023 tables and checks, IEEE 519-2022, permits and metering."""
