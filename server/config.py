"""Settings read from the environment (and an optional `.env` file), named as in the contract."""

from __future__ import annotations

import os
import re
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


_PERIODS = {"s": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_PERIODS["d"] = _PERIODS["day"] = 86400
_RATE = re.compile(r"^(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?$")


@dataclass(frozen=True)
class Rate:
    """At most `count` requests per `period` seconds (a sliding window)."""

    count: int
    period: int

    @classmethod
    def parse(cls, text: str, *, name: str) -> Rate | None:
        """`10/hour`, `600/minute`, `5/30s`, `100/2h`; `off` (or `0`) means no limit."""
        value = text.strip().lower()
        if value in {"off", "0", "none", "unlimited"}:
            return None
        match = _RATE.match(value)
        unit = _PERIODS.get(match.group(3)) if match else None
        if match is None or unit is None or int(match.group(1)) < 1:
            raise ValueError(f"{name}: {text!r} is not a rate like `10/hour` or `off`")
        return cls(int(match.group(1)), int(match.group(2) or 1) * unit)


def _seconds(text: str, *, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60:
        raise ValueError(f"{name}: {text!r} is not a number of seconds from 0 to 60")
    return value


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
    # Abuse limits, shared by all nodes through Redis (None: no limit). See docs/SECURITY.md.
    signup_rate: Rate | None = Rate(10, 3600)  # per client IP
    login_rate: Rate | None = Rate(30, 60)  # per client IP, besides the per-email lockout
    webhook_rate: Rate | None = Rate(600, 60)  # per integration, before the signature check
    # Failed logins: the Nth in a row for an email waits min(base * 2^(N-3), max) seconds.
    login_delay_base: float = 1.0
    login_delay_max: float = 5.0
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
            signup_rate=Rate.parse(
                env.get("RATE_LIMIT_SIGNUP", "10/hour"), name="RATE_LIMIT_SIGNUP"
            ),
            login_rate=Rate.parse(
                env.get("RATE_LIMIT_LOGIN", "30/minute"), name="RATE_LIMIT_LOGIN"
            ),
            webhook_rate=Rate.parse(
                env.get("RATE_LIMIT_WEBHOOK", "600/minute"), name="RATE_LIMIT_WEBHOOK"
            ),
            login_delay_base=_seconds(env.get("LOGIN_DELAY_BASE", "1"), name="LOGIN_DELAY_BASE"),
            login_delay_max=_seconds(env.get("LOGIN_DELAY_MAX", "5"), name="LOGIN_DELAY_MAX"),
        )
