"""What actions need from outside the database: the clock, settings and the credentials box."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.clock import Clock, system_clock
from server.config import Settings
from server.security.secret_box import SecretBox


@dataclass(frozen=True)
class Services:
    settings: Settings
    box: SecretBox
    clock: Clock = system_clock

    def now(self) -> datetime:
        return self.clock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = system_clock) -> Services:
        return cls(settings=settings, box=SecretBox(settings.secret_key), clock=clock)


@dataclass(frozen=True)
class Actor:
    """The authenticated user on whose behalf an action runs."""

    user_id: int
    account_id: int
    role: str
    name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
