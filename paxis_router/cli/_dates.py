"""``--since`` / ``--until`` argument types shared by the commands that read a time window."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta


def since_arg(text: str) -> datetime:
    """A date (its midnight) or an ISO datetime; naive means UTC."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or ISO datetime: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def until_arg(text: str) -> datetime:
    """A date includes that whole day; a datetime is the first instant excluded."""
    value = since_arg(text)
    return value + timedelta(days=1) if len(text) == 10 else value
