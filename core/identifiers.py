"""Identifiers that enter from outside (API bodies, paths, the CLI), checked in one place."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

SERIES_KEY_MAX = 128
# Letters and digits of any script, then also space . : @ + - _ (no control characters, no
# slashes, no NUL, no surrogates): a name such as "weekly-sync" or "+14155550100".
SERIES_KEY_PATTERN = r"^[\w+][\w .:@+\-]*$"
SERIES_KEY_RULE = (
    f"1-{SERIES_KEY_MAX} characters: letters, digits, space and . : @ + - _ "
    "(starting with a letter, digit, _ or +)"
)
_SERIES_KEY = re.compile(SERIES_KEY_PATTERN)

SeriesKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SERIES_KEY_MAX, pattern=SERIES_KEY_PATTERN),
]

# E.164: a plus, then 2 to 15 digits (no leading zero).
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
# DTMF sent after the call is answered: digits, * and #, w = a half-second pause.
DTMF_PATTERN = r"^[0-9*#w]{1,64}$"


def valid_series_key(key: str) -> bool:
    """True when `key` may name a series (the rule of `SeriesKey`)."""
    return (
        0 < len(key) <= SERIES_KEY_MAX
        and _SERIES_KEY.fullmatch(key) is not None
        and key.isprintable()
        and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in key)
    )
