"""Charger passwords for OCPP security profiles 1 and 2 (HTTP Basic auth, 1.6 security whitepaper).

Passwords are stored as PBKDF2-SHA256 hashes (`pbkdf2_sha256$iterations$salt$hash`). A verified
password is remembered by its SHA-256 so that a reconnect storm of a thousand chargers does not
cost a thousand key derivations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

ITERATIONS = 200_000
_verified: dict[tuple[str, bytes], bool] = {}


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    key = (stored, hashlib.sha256(password.encode()).digest())
    if key in _verified:
        return True
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        derived = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    ok = hmac.compare_digest(derived, bytes.fromhex(digest))
    if ok:
        if len(_verified) > 100_000:
            _verified.clear()
        _verified[key] = True
    return ok


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """`Basic base64(user:password)` → (user, password), None when absent or malformed."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
