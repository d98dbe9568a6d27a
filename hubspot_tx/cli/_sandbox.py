"""``hubspot-tx sandbox``: the emulator as a server on fixed ports."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import _env

__all__ = ["export_line", "foreground_argv", "run_sandbox"]

#: The longest ``--background`` waits for the sandbox to serve.
START_TIMEOUT = 60.0


def export_line(info: dict[str, object]) -> str:
    """The ``export`` line that points HubSpot(), SmtpPool() and the CLI at a sandbox."""
    variables = {
        _env.BASE_URL: info["https_url"],
        _env.ACCESS_TOKEN: info["access_token"],
        _env.CA_FILE: info["ca_file"],
        _env.SMTP_HOST: info["smtp_host"],
        _env.SMTP_PORT: info["smtp_port"],
        _env.SMTP_USER: info["smtp_user"],
        _env.SMTP_PASSWORD: info["smtp_password"],
    }
    return "export " + " ".join(f"{k}={shlex.quote(str(v))}" for k, v in variables.items())


def foreground_argv(argv: list[str]) -> list[str]:
    """The command ``--background`` starts: ``argv`` serving in the foreground, with ``--json``.

    argparse also takes a prefix of ``--background`` (``--back``) for it: those go too, or
    the command started would start another, and so on without end."""
    argv = [a for a in argv if not (a.startswith("--b") and "--background".startswith(a))]
    return argv if "--json" in argv else [*argv, "--json"]


async def _background(args: argparse.Namespace) -> int:
    """Run this command again, as a process of its own session, and return once it serves."""
    argv = foreground_argv(args.argv)
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the sandbox writes it after we return
        prefix="hubspot-tx-sandbox-", suffix=".log", delete=False
    )
    with log:
        proc = subprocess.Popen(  # noqa: ASYNC220, S603 - this very command; returns at once
            [sys.executable, "-m", "hubspot_tx.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # a Ctrl-C in this shell does not stop it
        )
    stdout = proc.stdout
    if stdout is None:  # pragma: no cover - stdout=PIPE
        raise RuntimeError("no pipe from the sandbox process")
    try:
        line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), START_TIMEOUT)
    except TimeoutError:
        proc.kill()
        line = b""
    stdout.close()  # it prints nothing more on stdout: one JSON line
    if not line:
        await asyncio.to_thread(proc.wait, 10)
        text = await asyncio.to_thread(Path(log.name).read_text, errors="replace")
        errors = [line.strip() for line in text.splitlines() if line.strip()]
        reason = errors[-1] if errors else f"it did not start in {START_TIMEOUT:.0f} s"
        raise OSError(f"the sandbox did not start: {reason.removeprefix('hubspot-tx: error: ')}")
    info = json.loads(line)
    if args.json:
        print(json.dumps({**info, "pid": proc.pid, "log": log.name}), flush=True)
    else:
        print(export_line(info))
        print(f"HUBSPOT_TX_SANDBOX_PID={proc.pid}  # stop it: kill $HUBSPOT_TX_SANDBOX_PID")
    print(
        f"hubspot-tx sandbox running in the background: pid {proc.pid}, REST {info['https_url']}, "
        f"inbox {info['base_url']}/, log {log.name}",
        file=sys.stderr,
    )
    return 0


async def run_sandbox(args: argparse.Namespace) -> int:
    if args.background:
        return await _background(args)
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
            emails = ", ".join(
                f"{e.id} -> {e.campaign_ids[0]}" for e in sb.state.emails if e.published
            )
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
                f"  {export_line(info)}",
                flush=True,
            )
        await stop.wait()
    finally:
        await sb.aclose()
    print("sandbox stopped", file=sys.stderr)
    return 0
