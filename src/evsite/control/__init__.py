"""The site load manager: constraint tree, allocation policies, signals, fail-safe, live loop and replay.

Pure core (no I/O): `tree`, `allocate`, `mpc`, `signals`, `failsafe`, `controller`.
Run time: `loop.ControlLoop` (event bus in, `ChargerCommands` out). Simulation: `replay`, `scenarios`.
"""
