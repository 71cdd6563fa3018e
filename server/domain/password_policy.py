"""Which passwords a user may choose: long enough, not their email or name, not a common one.

The common passwords are `common_passwords.txt` beside this module: the most frequent entries of
public breach corpora and yearly "worst passwords" lists, plus generated season/month + year
patterns that password-spraying tools try first. Matching ignores case, and a password that is
one of them with up to five digits or punctuation marks around it (`Password1!`) counts too.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIN_LENGTH = 8
MAX_LENGTH = 1024
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

TOO_SHORT = f"must have at least {MIN_LENGTH} characters"
TOO_LONG = f"must have at most {MAX_LENGTH:,} characters"
PERSONAL = "must not be your email address or your name"
COMMON = "is one of the most common passwords (attackers try those first); choose another"
REPEATED = "must not be a single character repeated"

# Decoration people add to a common word to pass rules: leading/trailing digits, punctuation.
_DECORATION = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$")
MAX_DECORATION = 5  # `Summer2024!` is `summer` decorated; 6+ random digits around a word are not


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().casefold() for line in lines if line.strip() and not line.startswith("#")
    )


def _folded(text: str) -> str:
    return "".join(text.casefold().split())


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why `password` may not be used (a message for `fields.password`), or None if it may."""
    if len(password) < MIN_LENGTH:
        return TOO_SHORT
    if len(password) > MAX_LENGTH:
        return TOO_LONG
    folded = _folded(password)
    if len(set(folded)) <= 1:
        return REPEATED
    personal = {_folded(email), _folded(email.partition("@")[0]), _folded(name)} - {""}
    if folded in personal:
        return PERSONAL
    common = common_passwords()
    candidates = {password.casefold(), folded}
    core = _DECORATION.match(folded)
    if core and len(folded) - len(core.group(1)) <= MAX_DECORATION:
        candidates.add(core.group(1))
    if candidates & common:
        return COMMON
    return None
