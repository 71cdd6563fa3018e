"""HMAC-SHA256 signatures as the `api` channel and Meta send them: `sha256=<hex>`."""

from __future__ import annotations

import hashlib
import hmac


def sign_sha256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_sha256(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a `sha256=<hex>` header against the body."""
    if not header or not secret:
        return False
    return hmac.compare_digest(sign_sha256(secret, body), header.strip())
