"""Checks shared by the settings models and the commands: secrets, time zones, times, durations.

Each raises ValueError (for pydantic to report with the key path) or, for
secrets read outside config.yaml, ConfigError naming where the value came from.
"""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import ConfigError, Problem

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MIN_SECRET_BYTES = 32
SECRET_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def check_secret(value: bytes, where: str, what: str = "the secret key") -> bytes:
    """Refuse a secret (signing key, API token) short enough to guess or brute-force."""
    if len(value) < MIN_SECRET_BYTES:
        problem = Problem(where, f"{what} is {len(value)} bytes; at least {MIN_SECRET_BYTES} are needed")
        raise ConfigError([problem], hint=SECRET_HINT)
    return value


def check_timezone(v: str) -> str:
    """Refuse a time zone name the IANA database does not know."""
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Paris)") from exc
    return v


def check_hhmm(v: str) -> str:
    if not _HHMM.match(str(v)):
        raise ValueError(f"expected a time as HH:MM, got {v!r}")
    return str(v)


def parse_duration(v: str) -> timedelta:
    """'90s', '15m', '1h', '2d' -> timedelta."""
    m = _DURATION.match(v)
    if not m:
        raise ValueError(f"expected a duration such as 30m, 1h or 2d, got {v!r}")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})
