"""Faults the sandbox injects on request, so that error handling can be tested for real."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Chaos", "Faults", "RestFault", "SmtpFault", "SmtpStage"]

RestAction = Literal["error", "commit_then_error", "rate_limit", "delay"]
SmtpStage = Literal["connect", "mail", "rcpt", "data", "end", "stored", "noop", "quit"]
"""Where an SMTP fault strikes: the greeting, MAIL, RCPT, the DATA command (before 354), the
end of data (after the final ".", before storing), after storing (before the reply), NOOP,
or QUIT."""
SmtpAction = Literal["reply", "drop", "delay"]


@dataclass(slots=True)
class RestFault:
    """One armed REST fault. ``times=None`` keeps it armed until :meth:`Faults.clear`."""

    action: RestAction
    status: int = 500
    times: int | None = 1
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0
    policy_name: str = "TEN_SECONDLY_ROLLING"
    retry_after: float | None = None
    interval_ms: int = 10_000
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or path.startswith(self.path)


@dataclass(slots=True)
class SmtpFault:
    """One armed SMTP fault; ``recipient`` narrows an ``rcpt`` fault to one address."""

    stage: SmtpStage
    action: SmtpAction
    code: int = 451
    text: str = ""
    recipient: str | None = None
    times: int | None = 1
    seconds: float = 0.0
    hits: int = 0

    def matches(self, stage: str, address: str | None) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.stage != stage:
            return False
        return self.recipient is None or (
            address is not None and address.lower() == self.recipient.lower()
        )


@dataclass(slots=True)
class Chaos:
    """Random faults, reproducible from ``seed``: each SMTP command at one of ``smtp_stages``
    fails with probability ``smtp_rate`` (a 451, a 421 or a dropped connection, drawn from
    ``smtp_kinds``), each REST call with probability ``rest_rate`` (a 503 or a 429)."""

    seed: int
    smtp_rate: float = 0.0
    rest_rate: float = 0.0
    smtp_stages: tuple[SmtpStage, ...] = ("mail", "rcpt", "end")
    smtp_kinds: tuple[Literal["451", "421", "drop"], ...] = ("451", "421", "drop")
    hits: int = 0
    _smtp_rng: random.Random = field(init=False, repr=False)
    _rest_rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One stream per protocol: REST traffic does not shift the SMTP draws, and vice versa.
        self._smtp_rng = random.Random(f"{self.seed}:smtp")
        self._rest_rng = random.Random(f"{self.seed}:rest")

    def smtp(self, stage: str) -> SmtpFault | None:
        if stage not in self.smtp_stages or self._smtp_rng.random() >= self.smtp_rate:
            return None
        self.hits += 1
        kind = self._smtp_rng.choice(self.smtp_kinds)
        if kind == "drop":
            return SmtpFault(stage, "drop", hits=1)
        code = int(kind)
        text = "Service not available, closing (chaos)" if code == 421 else "try again (chaos)"
        return SmtpFault(stage, "reply", code, text, hits=1)

    def rest(self, method: str, path: str) -> RestFault | None:
        if self._rest_rng.random() >= self.rest_rate:
            return None
        self.hits += 1
        if self._rest_rng.random() < 0.5:
            return RestFault("rate_limit", 429, hits=1)
        return RestFault("error", 503, hits=1)


class Faults:
    """The armed faults. Each ``rest_*`` / ``smtp_*`` call arms one fault and returns it (its
    ``hits`` counts the times it struck).

    REST faults: ``method`` (e.g. ``"POST"``) and ``path`` (a prefix) narrow which requests they
    hit. SMTP faults strike at a ``stage`` (see :data:`SmtpStage`), the first ``times`` times.
    """

    def __init__(self) -> None:
        self.rest: list[RestFault] = []
        self.smtp: list[SmtpFault] = []
        self.random: Chaos | None = None

    def chaos(
        self,
        *,
        seed: int,
        smtp_rate: float = 0.0,
        rest_rate: float = 0.0,
        smtp_stages: tuple[SmtpStage, ...] = ("mail", "rcpt", "end"),
    ) -> Chaos:
        """Fail a share of commands and calls at random, the same way for the same ``seed``
        and the same traffic (armed faults strike first). :meth:`clear` stops it."""
        self.random = Chaos(seed, smtp_rate, rest_rate, smtp_stages)
        return self.random

    def smtp_reply(
        self,
        stage: SmtpStage,
        code: int,
        text: str = "",
        *,
        recipient: str | None = None,
        times: int | None = 1,
    ) -> SmtpFault:
        """Answer ``code`` at ``stage`` (e.g. 421 at ``connect``, 451/550 at ``rcpt``)."""
        text = text or ("Service not available, closing" if code == 421 else "injected fault")
        fault = SmtpFault(stage, "reply", code, text, recipient, times)
        self.smtp.append(fault)
        return fault

    def smtp_drop(
        self, stage: SmtpStage, *, recipient: str | None = None, times: int | None = 1
    ) -> SmtpFault:
        """Drop the connection at ``stage`` without a reply (``stored``: after storing)."""
        fault = SmtpFault(stage, "drop", recipient=recipient, times=times)
        self.smtp.append(fault)
        return fault

    def smtp_drop_after_data(self, *, times: int | None = 1) -> SmtpFault:
        """Store the message, then drop the connection before the reply to its final ``.``:
        the client cannot know it was delivered (``delivery_unknown``)."""
        return self.smtp_drop("stored", times=times)

    def smtp_slow(self, stage: SmtpStage, seconds: float, *, times: int | None = 1) -> SmtpFault:
        """Wait ``seconds`` before answering at ``stage``."""
        fault = SmtpFault(stage, "delay", times=times, seconds=seconds)
        self.smtp.append(fault)
        return fault

    def take_smtp(self, stage: str, address: str | None = None) -> SmtpFault | None:
        """The first armed SMTP fault for ``stage`` (and ``address``), counted as hit."""
        for fault in self.smtp:
            if fault.matches(stage, address):
                fault.hits += 1
                return fault
        return None if self.random is None else self.random.smtp(stage)

    def _arm(self, fault: RestFault) -> RestFault:
        self.rest.append(fault)
        return fault

    def rest_error(
        self,
        status: int = 500,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> RestFault:
        """Answer ``status`` (with HubSpot's error body) without doing the request."""
        return self._arm(RestFault("error", status, times, method, path))

    def rest_commit_then_error(
        self,
        status: int = 502,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> RestFault:
        """Carry the request out, then answer ``status``: the client cannot tell it worked."""
        return self._arm(RestFault("commit_then_error", status, times, method, path))

    def rest_429(
        self,
        *,
        times: int | None = 1,
        policy_name: str = "TEN_SECONDLY_ROLLING",
        retry_after: float | None = None,
        interval_ms: int = 10_000,
        method: str | None = None,
        path: str | None = None,
    ) -> RestFault:
        """Answer 429 with HubSpot's rate-limit body and headers (``Retry-After`` if given)."""
        return self._arm(
            RestFault(
                "rate_limit",
                429,
                times,
                method,
                path,
                policy_name=policy_name,
                retry_after=retry_after,
                interval_ms=interval_ms,
            )
        )

    def rest_slow(
        self,
        seconds: float,
        *,
        times: int | None = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> RestFault:
        """Wait ``seconds`` before handling the request."""
        return self._arm(RestFault("delay", 200, times, method, path, seconds=seconds))

    def take_rest(self, method: str, path: str) -> RestFault | None:
        """The first armed fault matching this request, counted as hit."""
        for fault in self.rest:
            if fault.matches(method, path):
                fault.hits += 1
                return fault
        return None if self.random is None else self.random.rest(method, path)

    def clear(self) -> None:
        """Disarm every fault, and stop the chaos."""
        self.rest.clear()
        self.smtp.clear()
        self.random = None
