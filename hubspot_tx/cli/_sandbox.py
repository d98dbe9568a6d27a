"""``hubspot-tx sandbox``: the emulator as a server on fixed ports."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import shlex
import signal
import sys

from .. import _env

__all__ = ["run_sandbox"]


async def run_sandbox(args: argparse.Namespace) -> int:
    try:
        from ..sandbox import Sandbox, SmtpRateLimit
    except ImportError as exc:
        raise ValueError(str(exc)) from None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    options: dict[str, object] = {} if not args.no_rate_limit else {"rate_limit": None}
    smtp_rates = (args.smtp_messages_per_second, args.smtp_connections_per_second)
    if any(rate is not None for rate in smtp_rates):
        options["smtp_rate_limit"] = SmtpRateLimit(
            messages_per_second=args.smtp_messages_per_second,
            connections_per_second=args.smtp_connections_per_second,
            burst=args.smtp_burst,
        )
    sb = Sandbox(
        host=args.host,
        http_port=args.http_port,
        https_port=args.https_port,
        smtp_port=args.smtp_port,
        smtps_port=args.smtps_port,
        smtp_pipelining=args.pipelining,
        access_token=args.access_token,
        data_dir=args.data,
        **options,  # type: ignore[arg-type]
    )
    try:
        await sb.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise OSError(
            f"{exc.strerror} (another sandbox running? choose free ports with --http-port, "
            "--https-port, --smtp-port, --smtps-port; 0 = any free port)",
        ) from None
    try:
        # A ready SMTP token, so that the export line alone configures a program's SmtpPool().
        token, password = sb.state.create_token("hubspot-tx sandbox", create_contact=False)
        info = {
            "base_url": sb.base_url,
            "https_url": sb.https_url,
            "access_token": sb.access_token,
            "ca_file": sb.ca_file,
            "smtp_host": sb.host,
            "smtp_port": sb.smtp_port,
            "smtps_port": sb.smtps_port,
            "inspection_url": sb.inspection_url,
            "smtp_user": token.id,
            "smtp_password": password,
        }
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            variables = {
                _env.BASE_URL: sb.https_url,
                _env.ACCESS_TOKEN: sb.access_token,
                _env.CA_FILE: sb.ca_file,
                _env.SMTP_HOST: sb.host,
                _env.SMTP_PORT: str(sb.smtp_port),
                _env.SMTP_USER: token.id,
                _env.SMTP_PASSWORD: password,
            }
            emails = ", ".join(
                f"{e.id} -> {e.campaign_ids[0]}" for e in sb.state.emails if e.published
            )
            export = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())
            print(
                f"hubspot-tx sandbox running (Ctrl-C to stop)\n"
                f"  REST        {sb.base_url}  and  {sb.https_url}\n"
                f"  token       {sb.access_token}\n"
                f"  SMTP        {sb.host}:{sb.smtp_port} (STARTTLS), "
                f"{sb.host}:{sb.smtps_port} (implicit TLS); user {token.id}\n"
                f"  CA file     {sb.ca_file}\n"
                f"  inbox       {sb.base_url}/  (inspection API: {sb.inspection_url})\n"
                f"  emails      {emails}  (published single-send emails -> their campaign ids)\n"
                + (f"  data        {sb.data_dir}\n" if sb.data_dir else "")
                + "\n"
                "Point HubSpot(), SmtpPool(), the CLI and your app at it (SMTP login included; "
                "a reset forgets the token):\n"
                f"  export {export}",
                flush=True,
            )
        await stop.wait()
    finally:
        await sb.aclose()
    print("sandbox stopped", file=sys.stderr)
    return 0
