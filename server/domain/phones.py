"""Phone numbers: kept as given plus E.164, so that any way of writing a number finds it.

A number parses with the server's default region (`PHONE_DEFAULT_REGION`, e.g. `US`) when it is
written nationally (`(415) 555-0100`); without one, only international numbers (leading `+`)
parse. Searches are more forgiving than storage: a term's digits also match inside stored E.164
numbers, so `14155550100` or `(415) 555-0100` find `+14155550100` with no region at all.
"""

from __future__ import annotations

import re

import phonenumbers

# What a search term may consist of to be read as (part of) a phone number.
_PHONE_TERM = re.compile(r"^[\d\s+\-().]+$")


def to_e164(value: str, *, region: str | None) -> str | None:
    """The number as E.164 (`+14155550100`), or None if it is not a possible phone number."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def digits(value: str) -> str:
    return "".join(c for c in value if c.isascii() and c.isdigit())


def search_digits(term: str, *, region: str | None) -> list[str]:
    """The digit strings a phone-like term should be found inside stored E.164 numbers by.

    The term's own digits, those without leading zeros (international `00`, national trunk `0`
    prefixes) and, where it parses, its E.164 digits: `0044 20 7946 0018` and `020 7946 0018`
    find `+442079460018` without a region, and `555-0100` every number containing those digits.
    """
    if not _PHONE_TERM.match(term):
        return []
    own = digits(term)
    found = (own, own.lstrip("0"), digits(to_e164(term, region=region) or ""))
    return list(dict.fromkeys(d for d in found if len(d) >= 3))
