"""Loggers under ``hubspot_tx``, each with a filter that redacts credentials.

hubspot-tx never passes a secret to a log call; the filter is the second line of defence (a
bearer token in an exception message of a dependency, a header dump in a debug hook). Add
:class:`RedactingFilter` to your own handlers to extend it to other libraries' records.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "get_logger"]

_PATTERNS = [
    # Authorization: Bearer xxx / 'Authorization': 'Basic xxx'
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic)\s+)?[^\s'\",}]+"),
        lambda m: f"{m.group(1)}{(m.group(2) + ' ') if m.group(2) else ''}[REDACTED]",
    ),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"), lambda m: "Bearer [REDACTED]"),
    # form or query fields of the OAuth token endpoint
    (
        re.compile(r"(?i)\b(client_secret|refresh_token|access_token|password)=([^&\s'\"]+)"),
        lambda m: f"{m.group(1)}=[REDACTED]",
    ),
]


def redact(text: str) -> str:
    """``text`` with authorization headers, bearer tokens and credential fields masked."""
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's rendered message (the record is rewritten in place)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_filter = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A ``hubspot_tx`` logger carrying the redacting filter (filters do not inherit)."""
    logger = logging.getLogger(name)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return logger
