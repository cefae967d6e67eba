"""Logging set-up for the long-running commands: one line per fault, not one per retry.

A device that is unplugged (a Modbus meter, a VTN, a charger with the wrong id) fails the same way
every few seconds; logging each attempt buries everything else. `RepeatFilter` lets the first record
of a kind through, holds back the repeats for `window_s`, and then lets the next one through with the
number it held back, so the operator sees the fault, that it persists, and how often.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RepeatFilter(logging.Filter):
    """Drop WARNING+ records that repeat one already shown within `window_s`; count what was dropped.

    Records are alike when they come from the same logger with the same message template and the
    same first argument (usually the device or charger id), so two chargers' faults both show."""

    def __init__(self, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic, max_keys: int = 4096):
        super().__init__()
        self.window_s, self.clock, self.max_keys = window_s, clock, max_keys
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # key → (shown at, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, str(record.msg), str(args[0]) if args else "")
        now = self.clock()
        shown = self._seen.get(key)
        if shown is not None and now - shown[0] < self.window_s:
            self._seen[key] = (shown[0], shown[1] + 1)
            return False
        if len(self._seen) >= self.max_keys:  # bounded memory: forget the oldest kinds
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[: self.max_keys // 4]:
                del self._seen[old]
        held = shown[1] if shown is not None else 0
        self._seen[key] = (now, 0)
        if held:
            minutes = self.window_s / 60
            record.msg = f"{record.msg} (repeated {held} more time{'s' if held != 1 else ''} in {minutes:g} min)"
        return True


def configure(level: str | int = "INFO", *, window_s: float = 300.0, fmt: str = FORMAT) -> RepeatFilter:
    """`logging.basicConfig` plus a `RepeatFilter` on the root handlers; returns the filter."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=fmt)
    logging.captureWarnings(True)  # library DeprecationWarnings go through the filter too, once each
    repeat = RepeatFilter(window_s)
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeat)
    return repeat
