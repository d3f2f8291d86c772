"""The notifier protocol the outbox delivers through, and a recording notifier.

``SmtpNotifier`` (email.py) is the real one; webhook and Alertmanager receivers' messages are
``PendingHttp`` requests for an ``HttpSender`` (http_send.py). ``RecordingNotifier`` keeps what it was given:
backtests use it to list every notice a policy *would* have sent, and tests use it (and its
scripted failures) to check the outbox without a mail server. Both implement this protocol;
nothing here touches a vendor library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    message_id: str
    recipient: str
    subject: str
    text: str
    html: str
    images: tuple[tuple[str, bytes], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PendingEmail:
    """An email rendered only when its turn to be sent comes: the SMTP notifier calls ``build``
    while its connection sends the message before it, so rendering one message overlaps the
    SMTP round trips of another."""

    message_id: str
    recipient: str
    build: Callable[[], OutgoingEmail]
    # Asked right before the message's DATA goes out (the SMTP notifier) or it is handed over
    # (the recording one): False means this replica lost its lease, and the message stays
    # queued for the next leader (docs/architecture.md "Several replicas").
    may_send: Callable[[], bool] | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """``retry`` says whether a failure is worth trying again (connection trouble, 4xx) or not
    (the server refused the address for good). ``subject`` is what was (to be) sent."""

    message_id: str
    ok: bool
    retry: bool = False
    error: str = ""
    subject: str = ""


Sendable = OutgoingEmail | PendingEmail

DEFAULT_HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class HttpRequest:
    message_id: str
    recipient: str  # "webhook:<url>" | "alertmanager:<base url>"
    url: str  # where the body goes
    body: bytes
    headers: tuple[tuple[str, str], ...]
    subject: str  # what the outbox records as what was sent
    timeout: float = DEFAULT_HTTP_TIMEOUT


@dataclass(frozen=True)
class PendingHttp:
    """Built right before its turn (like ``PendingEmail``): the Alertmanager body's ``endsAt``
    counts from the moment it is sent, not from when the cycle decided it."""

    message_id: str
    recipient: str
    build: Callable[[], HttpRequest]
    may_send: Callable[[], bool] | None = None


class HttpSender(Protocol):
    """Delivers HTTP receivers' messages (``http_send.HttpNotifier``) under the same contract."""

    def send(self, items: Sequence[PendingHttp], on_result: OnResult | None = None) -> list[DeliveryResult]: ...


NOT_LEADING = "this replica no longer holds the lease; the next leader sends it"


def materialise(item: Sendable) -> OutgoingEmail:
    return item.build() if isinstance(item, PendingEmail) else item


OnResult = Callable[[DeliveryResult], None]


class Notifier(Protocol):
    """Sends emails; ``on_result`` (when given) hears each result as soon as the server
    answered, so the outbox can commit it before the next message goes out."""

    def send(self, emails: Sequence[Sendable], on_result: OnResult | None = None) -> list[DeliveryResult]: ...


@dataclass
class RecordingNotifier:
    """Records every email; ``fail`` may script a failure per email (None: deliver)."""

    sent: list[tuple[float, OutgoingEmail]] = field(default_factory=list)
    attempts: list[OutgoingEmail] = field(default_factory=list)
    fail: Callable[[OutgoingEmail], DeliveryResult | None] | None = None
    clock: Callable[[], float] = lambda: 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, emails: Sequence[Sendable], on_result: OnResult | None = None) -> list[DeliveryResult]:
        out: list[DeliveryResult] = []
        with self._lock:
            for item in emails:
                try:
                    e = materialise(item)
                except Exception as exc:  # the same contract as the SMTP notifier
                    out.append(DeliveryResult(item.message_id, ok=False, retry=True, error=f"rendering failed: {exc}"))
                else:
                    self.attempts.append(e)
                    scripted = self.fail(e) if self.fail else None
                    if isinstance(item, PendingEmail) and item.may_send is not None and not item.may_send():
                        scripted = DeliveryResult(e.message_id, ok=False, retry=True, error=NOT_LEADING)
                    if scripted is not None:
                        out.append(replace(scripted, subject=e.subject))
                    else:
                        self.sent.append((self.clock(), e))
                        out.append(DeliveryResult(e.message_id, ok=True, subject=e.subject))
                if on_result is not None:
                    on_result(out[-1])
        return out
