"""API tokens: random secrets, of which only a hash is ever stored."""

from __future__ import annotations

import hashlib
import secrets

from pydantic import model_validator

from dispatch.access import Role
from dispatch.validation import Code, Id, Strict

PREFIX = "mst_"


def new_secret() -> str:
    """A fresh bearer token (256 bits of randomness)."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """The stored form of a token. SHA-256 suffices: the secret has full entropy."""
    return hashlib.sha256(secret.encode()).digest()


class TokenCreate(Strict):
    """Body of ``POST /v1/tokens`` (and the CLI's ``muster token create``)."""

    role: Role
    jurisdiction: Code | None = None
    person: Id | None = None
    label: str = ""

    @model_validator(mode="after")
    def _role_shape(self) -> TokenCreate:
        if self.role is Role.VOLUNTEER and self.person is None:
            raise ValueError("a volunteer token must be bound to a person")
        if self.role is not Role.VOLUNTEER and self.person is not None:
            raise ValueError("only volunteer tokens are bound to a person")
        if self.role not in (Role.ADMIN, Role.VOLUNTEER) and self.jurisdiction is None:
            raise ValueError(f"a {self.role.value} token needs a jurisdiction scope")
        return self
