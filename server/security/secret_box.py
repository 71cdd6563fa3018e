"""Encryption of stored provider credentials with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) over JSON, keyed by HKDF(SECRET_KEY)."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"switchboard.credentials"
        ).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except InvalidToken as exc:
            raise RuntimeError(
                "stored credentials cannot be decrypted: SECRET_KEY changed?"
            ) from exc
        return value if isinstance(value, dict) else {}
