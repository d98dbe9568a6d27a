"""The sandbox: a faithful local emulator of HubSpot's transactional-email services.

Needs the ``sandbox`` extra: ``pip install 'hubspot-tx[sandbox]'``.
"""

try:
    import trustme  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hubspot_tx.sandbox needs the 'sandbox' extra: pip install 'hubspot-tx[sandbox]'"
    ) from exc

from ._faults import Chaos, Faults, RestFault, SmtpFault
from ._limits import SmtpRateLimit
from ._process import SandboxProcess, sandbox_process
from ._rules import single_send_result
from ._server import Sandbox
from ._state import SandboxState
from ._thread import SandboxThread
from ._tls import SandboxCA
from ._web import RequestRecord

__all__ = [
    "Chaos",
    "Faults",
    "RequestRecord",
    "RestFault",
    "Sandbox",
    "SandboxCA",
    "SandboxProcess",
    "SandboxState",
    "SandboxThread",
    "SmtpFault",
    "SmtpRateLimit",
    "sandbox_process",
    "single_send_result",
]
