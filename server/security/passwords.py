"""Argon2id password hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHERS = {
    # argon2-cffi's defaults (RFC 9106's low-memory profile).
    "standard": PasswordHasher(),
    # Only for test suites that create hundreds of users; never use it in production.
    "fast": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
}

# Verified against when the email is unknown, so that a miss costs as much time as a hit.
_DUMMY_HASH = _HASHERS["standard"].hash("switchboard-dummy-password")


def hash_password(password: str, *, profile: str = "standard") -> str:
    return _HASHERS.get(profile, _HASHERS["standard"]).hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; compares against a dummy hash when there is no user."""
    try:
        return _HASHERS["standard"].verify(password_hash or _DUMMY_HASH, password) and bool(
            password_hash
        )
    except (VerificationError, InvalidHashError):
        return False
