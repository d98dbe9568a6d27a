"""The web inbox: a page at ``/`` and its three static files under ``/_sandbox/inbox/``.

A small vanilla-JS front end over the inspection API (``/_sandbox/v1``): no build step, no
framework, nothing fetched from the network. Only the files named in :data:`FILES` are served,
so no path, however encoded, reaches anything else in the package.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from aiohttp import web

__all__ = ["FILES", "routes"]

FILES = {
    "inbox.js": "text/javascript",
    "inbox.css": "text/css",
}
_VERSION_MARK = "__VERSION__"

# The shell loads only its own files; the message's HTML goes to a sandboxed iframe from the
# inspection API, which sends its own, stricter policy.
_SHELL_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _file(name: str) -> tuple[bytes, str]:
    """A static file's bytes and its ETag (read once: the files ship with the package)."""
    body = resources.files(__package__).joinpath("inbox", name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@cache
def _version() -> str:
    return hashlib.sha256("".join(_file(n)[1] for n in sorted(FILES)).encode()).hexdigest()[:12]


@cache
def _index() -> tuple[bytes, str]:
    # The assets' URLs carry the version, so the browser may keep them for good.
    body, _ = _file("index.html")
    body = body.replace(_VERSION_MARK.encode(), _version().encode())
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _send(
    request: web.Request, body: bytes, etag: str, content_type: str, cache: str
) -> web.Response:
    headers = {**_SHELL_HEADERS, "ETag": etag, "Cache-Control": cache}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


async def index(request: web.Request) -> web.Response:
    body, etag = _index()
    return _send(request, body, etag, "text/html", "no-cache")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name not in FILES:
        raise web.HTTPNotFound(text=f"no inbox file {name!r}")
    body, etag = _file(name)
    # A versioned URL (the one the page uses) never changes meaning: cache it for a year.
    versioned = request.query.get("v") == _version()
    cache = "public, max-age=31536000, immutable" if versioned else "no-cache"
    return _send(request, body, etag, FILES[name], cache)


def routes() -> list[web.RouteDef]:
    """The inbox page (``/``) and its static files."""
    return [
        web.get("/", index),
        web.get("/_sandbox/inbox/{file}", static),
    ]
