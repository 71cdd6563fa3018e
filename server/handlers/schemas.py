"""Request bodies. Strict types: a string where a number belongs is a 422, not a guess."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from server.domain.password_policy import MAX_LENGTH, MIN_LENGTH, password_problem

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 4096


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not EMAIL.match(value):
        raise ValueError("is not an email address")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


Email = Annotated[str, AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
Password = Annotated[str, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
# Ids are 32-bit integers in the database (PostgreSQL `integer`).
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class NewPassword(Body):
    """A body that sets a user's password: the policy sees the email and name given with it
    (declared before `password`), so its complaint is a `fields.password` of the same 422."""

    @field_validator("password", check_fields=False)
    @classmethod
    def _password_policy(cls, value: str, info: ValidationInfo) -> str:
        email, name = info.data.get("email", ""), info.data.get("name", "")
        problem = password_problem(value, email=email, name=name)
        if problem is not None:
            raise PydanticCustomError("password_policy", problem)
        return value


class SignupIn(NewPassword):
    company_name: Name
    name: Name
    email: Email
    password: Password


class LoginIn(Body):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class UserIn(NewPassword):
    name: Name
    email: Email
    password: Password
    role: Literal["admin", "agent"] = "agent"


class TokenIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_not_blank)] | None = (
        None
    )


class AvailabilityIn(Body):
    available: bool


class ChannelSettings(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    assigned_to_me: bool | None = None
    message_assigned_to_me: bool | None = None
    message_assigned_to_others: bool | None = None
    message_unassigned: bool | None = None


class NotificationSettingsIn(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    desktop: ChannelSettings | None = None
    email: ChannelSettings | None = None

    def changes(self) -> dict[str, dict[str, bool]]:
        result: dict[str, dict[str, bool]] = {}
        for channel in ("desktop", "email"):
            settings = getattr(self, channel)
            if settings is not None:
                result[channel] = {k: v for k, v in settings.model_dump().items() if v is not None}
        return result


class IntegrationIn(Body):
    provider: Annotated[str, Field(min_length=1, max_length=50)]
    name: Name
    config: dict[str, Any]
    shared_with: Annotated[list[Id], Field(max_length=10_000)] = []


class IntegrationPatch(Body):
    name: Name | None = None
    config: dict[str, Any] | None = None
    shared_with: Annotated[list[Id], Field(max_length=10_000)] | None = None


class MessageIn(Body):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]


class AssignIn(Body):
    user_id: Id
    version: Id | None = None


class VersionIn(Body):
    version: Id | None = None


class NotificationsReadIn(Body):
    # Omitted or null: all of mine.
    ids: Annotated[list[Id], Field(max_length=1000)] | None = None


class ApiWebhookContact(Body):
    id: Annotated[str, Field(min_length=1, max_length=200)]
    name: Annotated[str, Field(max_length=200)] | None = None


class ApiWebhookIn(Body):
    message_id: Annotated[str, Field(min_length=1, max_length=200)]
    contact: ApiWebhookContact
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    # ISO-8601; strict mode would refuse strings for datetimes, so it is parsed by hand.
    sent_at: str | None = None


# CRM -----------------------------------------------------------------------------------------

MAX_NOTE = 250_000  # above what an automatic note can grow to, so any note can be saved back


def _currency(value: str) -> str:
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValueError("must be a three-letter ISO 4217 code, like EUR")
    return value.upper()


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
PhoneText = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_not_blank)]


class PersonIn(Body):
    name: Name
    email: Email | None = None
    phone: PhoneText | None = None
    # Extension: more than one of each.
    emails: Annotated[list[Email], Field(max_length=20)] = []
    phones: Annotated[list[PhoneText], Field(max_length=20)] = []


class LeadIn(Body):
    title: Title
    person_id: Id | None = None


class DealIn(Body):
    title: Title
    value: Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)] | None = None
    currency: Annotated[str, AfterValidator(_currency)] | None = None
    person_id: Id | None = None


class LinkIn(Body):
    target: Literal["person", "lead", "deal"]
    target_id: Id | None = None
    # The fields of a new person, lead or deal (as its POST takes them): create and link at once.
    create: dict[str, Any] | None = None


class NoteIn(Body):
    content: Annotated[str, Field(min_length=1, max_length=MAX_NOTE), AfterValidator(_not_blank)]
