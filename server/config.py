"""Settings read from the environment (and an optional `.env` file), named as in the contract."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DATA_DIR = Path(os.environ.get("SWITCHBOARD_DATA_DIR", "data"))


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse `KEY=value` lines; the real environment always wins over the file."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _secret_key(data_dir: Path) -> str:
    """Generate the key once and keep it, so sessions and encrypted credentials survive restarts."""
    path = data_dir / "secret_key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key)
    return key


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told from outside."""

    database_url: str
    redis_url: str | None
    public_url: str
    secret_key: str
    smtp_url: str | None
    email_from: str
    twilio_api_base: str
    messenger_api_base: str
    allowed_origins: frozenset[str]
    allow_signup: bool
    metrics_token: str | None
    data_dir: Path
    # Argon2 cost: "standard" in production; tests may pick "fast" to keep the suite quick.
    password_hash_profile: str = "standard"
    # Namespace of this installation's Redis keys and channels (several may share one Redis).
    redis_prefix: str = "switchboard"
    # ISO 3166 region for phone numbers written without a country code (`US`: `(415) 555-0100`);
    # unset, stored CRM phone numbers must be international (`+1 415 555 0100`).
    phone_region: str | None = None
    max_body_bytes: int = 1024 * 1024
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: `.env` overlaid by the process environment)."""
        if env is None:
            env = {**_read_dotenv(Path(".env")), **os.environ}
        data_dir = Path(env.get("SWITCHBOARD_DATA_DIR", str(DATA_DIR)))
        public_url = env.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
        origins = {_origin_of(public_url)}
        origins.update(
            o.strip().rstrip("/") for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'switchboard.db'}"
        return cls(
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            public_url=public_url,
            secret_key=env.get("SECRET_KEY") or _secret_key(data_dir),
            smtp_url=env.get("SMTP_URL") or None,
            email_from=env.get("EMAIL_FROM", "switchboard@localhost"),
            twilio_api_base=env.get("TWILIO_API_BASE", "https://api.twilio.com").rstrip("/"),
            messenger_api_base=env.get("MESSENGER_API_BASE", "https://graph.facebook.com").rstrip(
                "/"
            ),
            allowed_origins=frozenset(origins),
            allow_signup=_flag(env.get("ALLOW_SIGNUP", "true")),
            metrics_token=env.get("METRICS_TOKEN") or None,
            data_dir=data_dir,
            password_hash_profile=env.get("PASSWORD_HASH_PROFILE", "standard"),
            redis_prefix=env.get("REDIS_PREFIX", "switchboard"),
            phone_region=env.get("PHONE_DEFAULT_REGION", "").strip().upper() or None,
        )
