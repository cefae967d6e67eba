"""API tokens with roles, and the audit log of mutating calls, stored in the project database.

Tokens are 256-bit random strings shown once at creation; only their SHA-256 digest is stored.
A fast digest is right here (unlike for passwords) because the secret has full entropy: there is
nothing to brute-force by guessing, and a constant-time lookup by digest keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from evsite.api.runtime import SessionFactory
from evsite.errors import InputError
from evsite.store.base import Base

TOKEN_PREFIX = "evs_"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


def _now() -> datetime:
    return datetime.now(UTC)


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    __tablename__ = "api_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role."""

    name: str
    role: Role


class TokenNameTaken(InputError):
    pass


class TokenStore:
    """Create, verify and revoke tokens; append and read audit entries."""

    def __init__(self, db: SessionFactory) -> None:
        self.db = db

    @staticmethod
    async def create_tables(engine: AsyncEngine) -> None:
        """Bring the database to the current schema, token tables included (alembic migrations)."""
        from evsite.store.db import migrate

        await migrate(engine)

    async def create(self, name: str, role: Role) -> str:
        """A new token (returned once, in clear); raises TokenNameTaken for a duplicate name."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db() as session, session.begin():
            taken = await session.scalar(select(ApiToken.id).where(ApiToken.name == name))
            if taken is not None:
                raise TokenNameTaken(name)
            session.add(ApiToken(name=name, role=role.value, digest=digest(token)))
        return token

    async def rotate(self, name: str, role: Role) -> str:
        """A new token under `name`, revoking the one that held the name before (so at most one is live).

        The old row is kept for the record under `name~ID` (`~` cannot occur in names made over the API).
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db() as session, session.begin():
            old = await session.scalar(select(ApiToken).where(ApiToken.name == name))
            if old is not None:
                old.name = f"{name}~{old.id}"[:64]
                old.revoked_at = old.revoked_at or _now()
                await session.flush()
            session.add(ApiToken(name=name, role=role.value, digest=digest(token)))
        return token

    async def verify(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        async with self.db() as session:
            row = await session.scalar(select(ApiToken).where(ApiToken.digest == digest(token)))
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.name, Role(row.role))

    async def tokens(self) -> list[ApiToken]:
        async with self.db() as session:
            return list(await session.scalars(select(ApiToken).order_by(ApiToken.id)))

    async def revoke(self, name: str) -> bool:
        async with self.db() as session, session.begin():
            row = await session.scalar(select(ApiToken).where(ApiToken.name == name))
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = _now()
        return True

    async def audit(
        self, principal: Principal | None, method: str, path: str, status: int, detail: dict[str, Any] | None
    ) -> None:
        entry = AuditEntry(
            actor=principal.name if principal else "anonymous",
            role=principal.role.value if principal else None,
            method=method,
            path=path[:512],
            status=status,
            detail=json.dumps(detail, default=str) if detail else None,
        )
        async with self.db() as session, session.begin():
            session.add(entry)

    async def audit_log(self, limit: int, actor: str | None = None) -> list[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        async with self.db() as session:
            return list(await session.scalars(query))
