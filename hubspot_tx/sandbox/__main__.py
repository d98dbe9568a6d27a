"""Run the sandbox as a server process: ``python -m hubspot_tx.sandbox``.

Prints its URLs, access token and CA file as one JSON line on stdout (for scripts and tests),
then a human summary on stderr, and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from ._server import Sandbox


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hubspot_tx.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--https-port", type=int, default=8443, help="0 picks a free port")
    p.add_argument("--smtp-port", type=int, default=2587, help="STARTTLS SMTP port")
    p.add_argument("--smtps-port", type=int, default=2465, help="implicit-TLS SMTP port")
    p.add_argument("--pipelining", action="store_true", help="advertise SMTP PIPELINING")
    p.add_argument("--access-token", default=None, help="bearer token to accept")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Sandbox(
        host=args.host,
        http_port=args.http_port,
        https_port=args.https_port,
        access_token=args.access_token,
        smtp_port=args.smtp_port,
        smtps_port=args.smtps_port,
        smtp_pipelining=args.pipelining,
    ) as sb:
        info = {
            "base_url": sb.base_url,
            "https_url": sb.https_url,
            "access_token": sb.access_token,
            "ca_file": sb.ca_file,
            "smtp_host": sb.host,
            "smtp_port": sb.smtp_port,
            "smtps_port": sb.smtps_port,
        }
        print(json.dumps(info), flush=True)
        print(
            f"hubspot-tx sandbox on {sb.base_url} and {sb.https_url}\n"
            f"  SMTP {sb.host}:{sb.smtp_port} (STARTTLS), {sb.host}:{sb.smtps_port} (TLS)\n"
            f"  export HUBSPOT_BASE_URL={sb.base_url} HUBSPOT_ACCESS_TOKEN={sb.access_token}\n"
            f"  CA file for HTTPS: {sb.ca_file}\n  Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
