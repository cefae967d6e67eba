"""The base of every request body the API accepts: strict types, no unknown fields, finite numbers.

Lax parsing turned `{"limit_a": true}` into 1 A and `"50"` into 50 A and ignored misspelt fields;
a command that changes what chargers draw must say exactly what it means or be refused (422).
Timestamps and enumerations still arrive as JSON strings, so those fields opt out of strict mode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Command(BaseModel):
    """A request body: booleans and strings are not numbers, unknown fields are errors, NaN/inf are refused."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


Timestamp = Annotated[datetime, Field(strict=False)]
"""An ISO 8601 string in the body (strict mode would only take a datetime object)."""
