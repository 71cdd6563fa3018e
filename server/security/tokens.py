"""Random bearer tokens (kept only as a SHA-256) and the signed session cookie that carries one."""

from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadSignature, URLSafeSerializer

TOKEN_PREFIX = "sb_"


def new_token() -> str:
    """A fresh secret token; 256 bits of randomness, so a fast hash is enough to store it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class CookieSigner:
    """Signs the session token into the cookie value, so a tampered cookie is refused unread."""

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="switchboard.session")

    def sign(self, token: str) -> str:
        return self._serializer.dumps(token)

    def unsign(self, value: str) -> str | None:
        try:
            token = self._serializer.loads(value)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None
