"""``hubspot-tx``: tokens, single-send, status, relay and the sandbox from a shell.

Exit codes: 0 success; 1 the operation failed (an API error, or messages that failed);
2 usage or configuration error; 3 authentication refused; 4 HubSpot (or the SMTP server)
unreachable; 130 interrupted (results of what was in flight are written first).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

# Nothing heavy at import: ``hubspot-tx --help`` loads argparse (no asyncio, ssl, msgspec, HTTP
# or SMTP stack); each command imports what it needs.
from .. import _env
from .._version import __version__
from ._distributed import (
    CA_HELP,
    add_distributed_options,
    add_worker_parser,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def _env_help() -> str:
    width = max(map(len, _env.VARIABLES)) + 2
    lines = [f"  {name:<{width}}{text}" for name, text in _env.VARIABLES.items()]
    return (
        "environment (the same variables configure HubSpot() and SmtpPool() in code;\n"
        "a flag given wins over its variable):\n"
        + "\n".join(lines)
        + "\n\nexit codes: 0 ok, 1 failed, 2 usage or configuration, 3 authentication refused,\n"
        "4 unreachable, 130 interrupted\n"
    )


RELAY_HELP = """\
Relay every message of the SOURCEs over SMTP, each exactly once, with a results
file. A SOURCE is a Maildir (with cur/ and new/), an mbox file (it begins with
'From '), a .eml file (one message), a folder of *.eml files, or - for stdin (an
mbox, or one message). A message without a Message-ID gets one (recorded in the results)."""

RELAY_EPILOG = """\
results: one JSON line per message in --results. Its id is a hash of its
content and the occurrence of that content in the run: identical messages stay
distinct, and reordering or editing a source does not change which messages
were sent.
  --resume  skips what the file records as sent, partly delivered or possibly
            delivered; a message that was in its data phase when a run was
            killed is recorded delivery_unknown and never resent.
  --force   sends every message again (duplicates). Without --resume or
            --force, a results file that records sends is refused (exit 2).
Ctrl-C stops at once what has not reached its data phase and finishes the rest
(a second Ctrl-C stops those too); then run again with --resume.

exit codes: 0 every message sent, 1 some failed, 2 usage or configuration,
3 authentication refused, 4 SMTP server unreachable, 130 interrupted
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written; an option's default after its help, unless it says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An argument parser (and its subcommands') with :class:`_Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    common = _Parser(add_help=False)
    common.add_argument("--access-token", default=None, help="default $HUBSPOT_ACCESS_TOKEN")
    common.add_argument("--base-url", default=None, help="default $HUBSPOT_BASE_URL or HubSpot's")
    common.add_argument("--ca-file", default=None, help=CA_HELP)
    common.add_argument(
        "--api-version",
        default="v3",
        choices=["v3", "2026-03", "2026-09"],
        help="HubSpot API paths to use",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    parser = _Parser(
        prog="hubspot-tx",
        description="Send transactional email through HubSpot: SMTP tokens, single-send, "
        "send status, bulk SMTP relay, and a local sandbox of HubSpot.",
        epilog=_env_help(),
    )
    parser.add_argument("--version", action="version", version=f"hubspot-tx {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    sb = sub.add_parser("sandbox", help="run the local HubSpot emulator (REST + SMTP)")
    sb.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sb.add_argument("--http-port", type=int, default=8080, help="REST over HTTP (0 = any free)")
    sb.add_argument("--https-port", type=int, default=8443, help="REST over HTTPS (0 = any free)")
    sb.add_argument("--smtp-port", type=int, default=2587, help="SMTP, STARTTLS (0 = any free)")
    sb.add_argument(
        "--smtps-port", type=int, default=2465, help="SMTP, implicit TLS (0 = any free)"
    )
    sb.add_argument("--pipelining", action="store_true", help="advertise SMTP PIPELINING")
    sb.add_argument(
        "--background",
        action="store_true",
        help="start it in the background, print its export line once it serves, and return "
        '(for scripts: eval "$(hubspot-tx sandbox --background)"); '
        "stop it with kill $HUBSPOT_TX_SANDBOX_PID",
    )
    sb.add_argument("--access-token", default=None, help="bearer token to accept")
    sb.add_argument(
        "--no-rate-limit", action="store_true", help="do not enforce HubSpot's REST limits"
    )
    sb.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="keep tokens, messages, events and the CA in DIR across restarts (SQLite)",
    )
    sb.add_argument(
        "--smtp-messages-per-second",
        type=float,
        default=None,
        metavar="N",
        help="answer MAIL FROM with 421 above this rate",
    )
    sb.add_argument(
        "--smtp-connections-per-second",
        type=float,
        default=None,
        metavar="N",
        help="greet new sessions with 421 above this rate",
    )
    sb.add_argument(
        "--smtp-burst", type=int, default=None, metavar="N", help="burst above those rates"
    )
    sb.add_argument("--json", action="store_true", help="print the settings as one JSON line")

    demo = sub.add_parser("demo", help="run the end-to-end demo against the embedded sandbox")
    demo.add_argument("--messages", type=int, default=3000, help="messages to relay")

    tokens = sub.add_parser("tokens", help="manage SMTP API tokens")
    tsub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    tl = tsub.add_parser("list", parents=[common], help="list tokens")
    tl.add_argument("--campaign-name", help="only tokens of this campaign name")
    tl.add_argument("--email-campaign-id", help="only tokens of this email campaign id")
    tg = tsub.add_parser("get", parents=[common], help="show one token")
    tg.add_argument("token_id")
    tc = tsub.add_parser("create", parents=[common], help="create a token (prints its password)")
    tc.add_argument("--campaign-name", required=True, help="the campaign its emails count under")
    tc.add_argument(
        "--create-contact", action="store_true", help="create a contact for each recipient"
    )
    td = tsub.add_parser("delete", parents=[common], help="delete a token")
    td.add_argument("token_id")
    tr = tsub.add_parser(
        "reset-password", parents=[common], help="give a token a new password (printed)"
    )
    tr.add_argument("token_id")

    send = sub.add_parser("send", parents=[common], help="single-send a HubSpot email")
    send.add_argument("--email-id", type=int, required=True, help="the HubSpot email to send")
    send.add_argument("--to", required=True, help="the recipient's address")
    send.add_argument("--from", dest="from_", help="sender (default: the email's)")
    send.add_argument("--cc", action="append", help="copy to (repeatable)")
    send.add_argument("--bcc", action="append", help="blind copy to (repeatable)")
    send.add_argument("--reply-to", action="append", help="Reply-To address (repeatable)")
    send.add_argument("--send-id", help="deduplication id (generated if omitted)")
    send.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="custom property for the template (repeatable)",
    )
    send.add_argument(
        "--contact-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="contact property to set (repeatable)",
    )
    send.add_argument("--v4", action="store_true", help="use the v4 marketing single-send")
    send.add_argument("--wait", action="store_true", help="wait for the final status")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")

    status = sub.add_parser("status", parents=[common], help="show a send's status")
    status.add_argument("status_id")
    status.add_argument("--wait", action="store_true", help="poll until it is final")
    status.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")

    relay = sub.add_parser(
        "relay",
        help="relay MIME messages (Maildir, mbox, .eml folder, or - for stdin) over SMTP",
        description=RELAY_HELP,
        epilog=RELAY_EPILOG,
    )
    relay.add_argument("sources", nargs="+", metavar="SOURCE")
    relay.add_argument(
        "--results",
        default="relay-results.jsonl",
        help="JSONL results file, appended to (default relay-results.jsonl)",
    )
    relay.add_argument(
        "--resume",
        action="store_true",
        help="send only the messages the results file does not record as (possibly) sent",
    )
    relay.add_argument(
        "--force",
        action="store_true",
        help="send every message even if the results file records it as sent (duplicates)",
    )
    relay.add_argument(
        "--concurrency", type=int, default=10, help="SMTP sessions at once (default 10)"
    )
    relay.add_argument("--host", default=None, help="default $HUBSPOT_SMTP_HOST or HubSpot's")
    relay.add_argument(
        "--port",
        type=int,
        default=None,
        help="default $HUBSPOT_SMTP_PORT, else 587 (465 with --tls implicit)",
    )
    relay.add_argument(
        "--tls",
        choices=["starttls", "implicit", "none"],
        default="starttls",
        help="starttls (default, never downgraded), implicit (port 465), none (tests only)",
    )
    relay.add_argument(
        "--region",
        choices=["na", "eu"],
        default=None,
        help="HubSpot's SMTP host: na (the default) or eu; beats $HUBSPOT_SMTP_HOST / _PORT",
    )
    relay.add_argument("--smtp-user", default=None, help="default $HUBSPOT_SMTP_USER")
    relay.add_argument(
        "--smtp-password", default=None, help="default $HUBSPOT_SMTP_PASSWORD (prefer the variable)"
    )
    relay.add_argument("--ca-file", default=None, help=CA_HELP)
    relay.add_argument(
        "--allow-plaintext-auth",
        action="store_true",
        help="allow AUTH without TLS (with --tls none; only on a network you trust)",
    )
    relay.add_argument("--quiet", action="store_true", help="no progress line")
    relay.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_distributed_options(relay)
    add_worker_parser(sub)
    return parser


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (``pip install 'hubspot-tx[uvloop]'``), else
    ``None``: asyncio's own. The CLI and the worker run on it."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from ._sandbox import run_sandbox

        return await run_sandbox(args)
    if args.command == "demo":
        from ..demo import run

        return await run(args.messages)
    if args.command == "worker" or (args.command == "relay" and args.distributed):
        from ._distributed import run_distributed

        return await run_distributed(args)
    if args.command == "relay":
        from ._relay import run_relay

        return await run_relay(args)
    from ._rest import run_rest

    return await run_rest(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hubspot-tx`` command."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for sandbox --background
    if getattr(args, "ca_file", None):  # the flag wins: HubSpot(), SmtpPool(), workers read it
        os.environ[_env.CA_FILE] = args.ca_file
    import asyncio

    from .._exceptions import (
        APIConnectionError,
        APIError,
        AuthenticationError,
        ConfigurationError,
        HubSpotError,
        InsecureAuthError,
        SendStatusTimeout,
        SmtpAuthError,
        SmtpConnectError,
    )
    from ._output import fail

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (AuthenticationError, SmtpAuthError, InsecureAuthError) as exc:
        return fail(str(exc), EXIT_AUTH)
    except (APIConnectionError, SmtpConnectError) as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except SendStatusTimeout as exc:
        return fail(str(exc), EXIT_FAILED)
    except ConfigurationError as exc:  # before HubSpotError: a usage mistake
        return fail(str(exc), EXIT_USAGE)
    except (APIError, HubSpotError) as exc:
        return fail(str(exc), EXIT_FAILED)
    except ConnectionError as exc:  # e.g. Redis unreachable (said by the command)
        return fail(str(exc), EXIT_UNREACHABLE)
    except (ValueError, OSError) as exc:  # configuration mistakes, unreadable sources, ports
        return fail(str(exc), EXIT_USAGE)
    except ImportError as exc:  # an extra that is not installed: its message says which
        if "pip install" not in str(exc):
            raise
        return fail(str(exc), EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
