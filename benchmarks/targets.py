"""The speed targets, each computed from one results.json: ratios within one run.

``TARGETS`` are issue 20's (relay speed on any machine): every bound a ratio to a peer measured
in the same run, so that they hold or fail alike on a fast or a slow machine. ``OTHER_TARGETS``
are issue 8's REST, decode and footprint targets, still reported. Each target names a figure the
harness measured and a bound; ``evaluate`` gives its value and whether it is met (``None`` when
the rows it needs are missing from that run), on the asyncio run or, with ``loop="uvloop"``, on
the uvloop run of the same comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from _common import Json, summarise

SDK_10 = "hubspot_tx SmtpPool, 10 connections"


class Missing(LookupError):
    """A row or table the target needs is not in this run."""


@dataclass(frozen=True)
class Target:
    what: str
    bound: str  # e.g. ">= 1.8x"
    figure: Callable[[Json], float]
    unit: str = "x"

    def evaluate(self, data: Json, loop: str = "asyncio") -> tuple[float | None, bool | None]:
        try:
            value = self.figure(on_loop(data, loop))
        except Missing:
            return None, None
        op, limit = self.bound.split(maxsplit=1)
        bound = float(limit.removesuffix(" ms").removesuffix("x"))
        return value, (value >= bound if op == ">=" else value <= bound)


def on_loop(data: Json, loop: str) -> Json:
    """``data`` with only the comparisons run on ``loop`` (those with no ``loop`` field ran on
    asyncio)."""
    comparisons = [c for c in data["comparisons"] if c.get("loop", "asyncio") == loop]
    return {**data, "comparisons": comparisons}


def _comparison(data: Json, cid: str) -> Json:
    comparisons: list[Json] = data["comparisons"]
    for comp in comparisons:
        if comp["id"] == cid and "error" not in comp:
            return comp
    raise Missing(cid)


def _row(data: Json, cid: str, table: str, name: str) -> Json:
    """The summary (medians) of the row called ``name`` in the table whose title starts with
    ``table`` (or in the comparison's first table if ``table`` is empty)."""
    for t in _comparison(data, cid)["tables"]:
        if t["kind"] == "bench" and t["title"].startswith(table):
            for row in t["rows"]:
                if row["name"] == name:
                    return summarise(row)
    raise Missing(f"{cid}/{table}/{name}")


def _plain(data: Json, cid: str, table: str, name: str) -> float:
    for t in _comparison(data, cid)["tables"]:
        if t["kind"] == "plain" and t["title"].startswith(table):
            for row in t["rows"]:
                if row[0] == name:
                    return float(row[1])
    raise Missing(f"{cid}/{table}/{name}")


def speed(cid: str, sdk: str, peer: str, table: str = "") -> Callable[[Json], float]:
    """SDK rate / peer rate."""
    return lambda d: (
        _row(d, cid, table, sdk)["rate_median"] / _row(d, cid, table, peer)["rate_median"]
    )


def cpu(cid: str, sdk: str, peer: str, table: str = "") -> Callable[[Json], float]:
    """SDK CPU per operation / peer CPU per operation."""
    return lambda d: (
        _row(d, cid, table, sdk)["cpu_ms_median"] / _row(d, cid, table, peer)["cpu_ms_median"]
    )


def _latency_share(d: Json) -> float:
    limit = _comparison(d, "C").get("limit_msgs_per_s")
    if not limit:
        raise Missing("C limit")
    return float(_row(d, "C", "", SDK_10)["rate_median"]) / float(limit)


def _best_sdk_cpu_ratio(d: Json) -> float:
    """hubspot-sdk's CPU per request over ours, with whichever HTTP client serves it best."""
    table = "GET smtp-tokens/{id}, sequential"
    ours = _row(d, "D", table, "hubspot_tx HubSpot")["cpu_ms_median"]
    theirs = min(
        _row(d, "D", table, f"hubspot-sdk AsyncHubSpot ({client}), 2026-03 paths")["cpu_ms_median"]
        for client in ("httpx", "aiohttp")
    )
    return float(theirs / ours)


def _plain_last(cid: str, table: str, name: str) -> Callable[[Json], float]:
    """The last column (a ratio) of the row called ``name`` in a plain table."""

    def figure(d: Json) -> float:
        for t in _comparison(d, cid)["tables"]:
            if t["kind"] == "plain" and t["title"].startswith(table):
                for row in t["rows"]:
                    if row[0] == name:
                        return float(row[-1])
        raise Missing(f"{cid}/{table}/{name}")

    return figure


A_SOURCE = "Postfix smtp-source -s 10 -d (C)"
A_SMTPLIB = "smtplib.SMTP.sendmail, 1 persistent connection (thread)"
A_SDK_1 = "hubspot_tx SmtpPool, 1 connection"
A_SDK_10_LF = "hubspot_tx SmtpPool, 10 connections, LF bytes (EmailMessage.as_bytes())"
B_SENDMAIL = "aiosmtplib SMTP.sendmail, 10 persistent connections"
D_NAIVE = "naive aiohttp + msgspec Struct"
D_OFFICIAL = "hubspot-api-client (sync, urllib3)"
STARTUP = "Start-up, whole process"
DEPENDENCIES = "its dependencies (aiohttp, aiosmtplib, msgspec, anyio)"

TARGETS = [
    Target("A. 10 connections, bytes (CRLF): speed vs smtp-source", ">= 0.55x",
           speed("A", SDK_10, A_SOURCE)),
    Target("A. 10 connections, bytes (CRLF): CPU per message vs smtp-source", "<= 2x",
           cpu("A", SDK_10, A_SOURCE)),
    Target("A. 10 connections, LF bytes (as_bytes()): speed vs smtp-source", ">= 0.55x",
           speed("A", A_SDK_10_LF, A_SOURCE)),
    Target("A. 10 connections, LF bytes (as_bytes()): CPU per message vs smtp-source", "<= 2x",
           cpu("A", A_SDK_10_LF, A_SOURCE)),
    Target("A. 1 connection: speed vs blocking smtplib", ">= 1.5x",
           speed("A", A_SDK_1, A_SMTPLIB)),
    Target("C. 20 ms RTT, 10 connections: share of connections / RTT", ">= 0.85x",
           _latency_share),
    Target("B. STARTTLS + AUTH: CPU per message vs aiosmtplib sendmail(bytes)", "<= 0.6x",
           cpu("B", SDK_10, B_SENDMAIL)),
]  # fmt: skip

OTHER_TARGETS = [
    Target("D. REST GET sequential: CPU per request vs naive aiohttp", "<= 1.15x",
           cpu("D", "hubspot_tx HubSpot", D_NAIVE, "GET smtp-tokens/{id}, sequential")),
    Target("D. REST GET concurrency 64: CPU per request vs naive aiohttp", "<= 1.15x",
           cpu("D", "hubspot_tx HubSpot", D_NAIVE, "GET smtp-tokens/{id}, concurrency 64")),
    Target("D. REST GET sequential: speed vs hubspot-api-client", ">= 2x",
           speed("D", "hubspot_tx HubSpot", D_OFFICIAL, "GET smtp-tokens/{id}, sequential")),
    Target("D. REST GET concurrency 64: speed vs hubspot-api-client", ">= 3x",
           speed("D", "hubspot_tx HubSpot", D_OFFICIAL, "GET smtp-tokens/{id}, concurrency 64")),
    Target("D. REST: CPU per request, hubspot-sdk (best client) / ours", ">= 4x",
           _best_sdk_cpu_ratio),
    Target("E. 100-token page decode: speed vs hubspot-api-client", ">= 100x",
           speed("E", "hubspot_tx msgspec decoder", "hubspot-api-client ApiClient.deserialize",
                 "100-token list page")),
    Target("F. import hubspot_tx / import of its dependencies", "<= 1.1x",
           lambda d: _plain(d, "F", "Import time", "hubspot_tx")
           / _plain(d, "F", "Import time", DEPENDENCIES)),
    Target('F. hubspot-tx --help / python -c "import hubspot_tx" (whole processes)', "<= 0.5x",
           lambda d: _plain(d, "F", STARTUP, "hubspot-tx --help")
           / _plain(d, "F", STARTUP, 'python -c "import hubspot_tx"')),
    Target("G. relay into the sandbox: inbox search open / nothing open", ">= 0.9x",
           speed("G", "relay, inbox search open", "relay, nothing open")),
    Target("G. inbox search (500 rows): time per call, 10^5 stored / 10^4", "<= 2x",
           _plain_last("G", "Per-call time", "inbox: search, 500 rows")),
    Target("G. inbox newest 500: time per call, 10^5 stored / 10^4", "<= 2x",
           _plain_last("G", "Per-call time", "inbox: newest 500")),
]  # fmt: skip


def _shown(t: Target, value: float | None, met: bool | None) -> str:
    if value is None:
        return "not measured"
    shown = f"{value:.3f} ms" if t.unit == " ms" else f"{value:.2f}x"
    return f"{shown} {'met' if met else '**not met**'}"


def table(
    data: Json, targets: list[Target] | None = None, loops: tuple[str, ...] = ("asyncio", "uvloop")
) -> list[str]:
    """The targets as a Markdown table, each marked met or not met on each of ``loops`` (asyncio
    decides; uvloop is shown beside it)."""
    lines = ["| target | bound | " + " | ".join(loops) + " |", "|---|--:|" + "--:|" * len(loops)]
    for t in TARGETS if targets is None else targets:
        cells = [_shown(t, *t.evaluate(data, loop)) for loop in loops]
        lines.append(f"| {t.what} | {t.bound} | " + " | ".join(cells) + " |")
    return lines
