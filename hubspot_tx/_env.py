"""Configuration from the environment: the one place that reads the ``HUBSPOT_*`` variables.

``HubSpot()``, ``SmtpPool()``, the CLI, the worker and the examples all read them here, so a
variable means the same thing to each of them, and the line ``hubspot-tx sandbox`` prints
(``export HUBSPOT_BASE_URL=... HUBSPOT_SMTP_PASSWORD=...``) is all a program needs.
Nothing heavy is imported at module level: ``hubspot-tx --help`` renders :data:`VARIABLES`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from .smtp.credentials import SmtpCredentials

__all__ = [
    "ACCESS_TOKEN",
    "ALLOW_UNSAFE_REDIS",
    "BASE_URL",
    "CA_FILE",
    "REDIS_URL",
    "SMTP_HOST",
    "SMTP_PASSWORD",
    "SMTP_PORT",
    "SMTP_USER",
    "VARIABLES",
    "get",
    "smtp_credentials",
    "smtp_port",
    "ssl_context",
    "tls_advice",
]

ACCESS_TOKEN = "HUBSPOT_ACCESS_TOKEN"
BASE_URL = "HUBSPOT_BASE_URL"
CA_FILE = "HUBSPOT_CA_FILE"
SMTP_HOST = "HUBSPOT_SMTP_HOST"
SMTP_PORT = "HUBSPOT_SMTP_PORT"
SMTP_USER = "HUBSPOT_SMTP_USER"
SMTP_PASSWORD = "HUBSPOT_SMTP_PASSWORD"
REDIS_URL = "HUBSPOT_TX_REDIS_URL"
ALLOW_UNSAFE_REDIS = "HUBSPOT_TX_ALLOW_UNSAFE_REDIS"

VARIABLES: dict[str, str] = {
    ACCESS_TOKEN: "private-app access token (or --access-token), for HUBSPOT_BASE_URL or HubSpot's",
    BASE_URL: "API root (default https://api.hubapi.com)",
    CA_FILE: "CA bundle trusted besides the system store (e.g. the sandbox's): REST, SMTP",
    SMTP_USER: "SMTP user name, the token id: SmtpPool(), relay, worker",
    SMTP_PASSWORD: "SMTP password: SmtpPool(), relay, worker",
    SMTP_HOST: "SMTP host (default smtp.hubapi.com); --host / --region name another server",
    SMTP_PORT: "SMTP port of that host (default 587, 465 with --tls implicit)",
    REDIS_URL: "Redis of the distributed relay (default redis://127.0.0.1:6379/0)",
    ALLOW_UNSAFE_REDIS: "1: run the distributed relay on a Redis that can lose writes (may resend)",
}
"""Every variable hubspot-tx reads, with what it means (shown by ``hubspot-tx --help``)."""


def get(name: str) -> str | None:
    """The variable's value; ``None`` when it is unset or empty."""
    return os.environ.get(name) or None


def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's trust store, plus ``ca_file`` (or
    ``$HUBSPOT_CA_FILE``) when given.

    Raises:
        ValueError: the CA file does not exist or is not a CA bundle (the message names it and
            the variable it came from).
    """
    import ssl

    context = ssl.create_default_context()
    path = ca_file or get(CA_FILE)
    if path is None:
        return context
    origin = f"${CA_FILE}" if ca_file is None else "ca_file"
    if os.path.isdir(path):
        raise ValueError(f"CA file {path} ({origin}) is a folder, not a PEM file")
    if not os.path.isfile(path):
        raise ValueError(f"CA file {path} ({origin}) does not exist")
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"CA file {path} ({origin}) is not a PEM CA bundle: {exc}") from None
    return context


def smtp_port() -> int | None:
    """``$HUBSPOT_SMTP_PORT`` as a number, or ``None`` when unset."""
    value = get(SMTP_PORT)
    if value is None:
        return None
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError(f"${SMTP_PORT} must be a port number, not {value!r}")
    return port


def smtp_credentials() -> SmtpCredentials | None:
    """``$HUBSPOT_SMTP_USER`` and ``$HUBSPOT_SMTP_PASSWORD``, or ``None`` when neither is set.

    Raises:
        ValueError: only one of them is set.
    """
    user, password = get(SMTP_USER), get(SMTP_PASSWORD)
    if user is None and password is None:
        return None
    if user is None or password is None:
        raise ValueError(f"set both ${SMTP_USER} (the token id) and ${SMTP_PASSWORD}, or neither")
    from .smtp.credentials import SmtpCredentials

    return SmtpCredentials(user, password)


def tls_advice(ca_file: str | None, *, custom_context: bool = False) -> str:
    """What to do about a certificate that did not verify, given what was trusted."""
    if custom_context:
        return "the SSL context passed in does not trust the server's certificate"
    if ca_file is not None:
        return (
            f"the server's certificate is signed neither by a system CA nor by {ca_file}: "
            f"check that file (${CA_FILE} / --ca-file) is this server's CA"
        )
    return (
        f"if the server's CA is private (e.g. the sandbox's), set ${CA_FILE} to its PEM file "
        "(CLI: --ca-file)"
    )
