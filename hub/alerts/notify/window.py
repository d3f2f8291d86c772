"""Stage: the notification window and each receiver's quiet hours; grouping into messages.

For every receiver, the notices of one policy decided in one cycle become ONE message (a node
policy with twenty hot nodes sends one email listing them, not twenty). Its release time is
the first instant inside the policy's window (in the window's IANA time zone) and outside
the receiver's own quiet hours (in the receiver's time zone).

Held notices are not dropped: they accumulate in one waiting message per (policy, receiver,
release time) and that message goes out when the window opens, carrying every notice held
for it, in order. A firing notice and its resolve held together are both delivered, so the
receiver learns that something happened while they were not being disturbed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.alerts import windows
from hub.alerts.notify.notice import Notice
from hub.alerts.policy import Policy, TimeWindow


@dataclass(frozen=True)
class Recipient:
    address: str
    language: str
    quiet: TimeWindow | None = None


@dataclass
class MessagePlan:
    mkey: str
    tenant: str
    policy_id: str
    recipient: str
    language: str
    notices: list[str]
    not_before: float
    reason: str = ""  # '' | window | quiet | quota
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return message_id_for(self.mkey)

    def to_row(self) -> dict[str, object]:
        return {
            "mkey": self.mkey,
            "tenant": self.tenant,
            "policy_id": self.policy_id,
            "recipient": self.recipient,
            "language": self.language,
            "notices": self.notices,
            "not_before": self.not_before,
            "reason": self.reason,
            "message_id": self.message_id,
        }


def message_id_for(mkey: str) -> str:
    """Stable per message: a re-send after a crash carries the same Message-ID, so a duplicate
    is recognisable (and mail systems that de-duplicate on it drop it)."""
    return f"<{hashlib.sha1(mkey.encode()).hexdigest()[:32]}@kubehub.alerts>"


UNREACHABLE = "has no email address or may no longer see these alerts"


@dataclass(frozen=True)
class Unreachable:
    """A receiver the hub cannot mail: which user, and why in words (``has no email address``)."""

    user: str
    why: str

    @property
    def sentence(self) -> str:
        return f"not delivered: {self.user} {self.why}" if self.user else f"not delivered: {self.why}"


NO_RECEIVERS = Unreachable("", "the policy names no receivers")


def recipients(
    policy: Policy,
    *,
    resolve_user: Callable[[str, str | None], str | None],
    default_language: str,
    explain_user: Callable[[str, str | None], str] | None = None,
) -> tuple[list[Recipient], list[Unreachable]]:
    """The policy's receivers as addresses; users without an address are reported, not guessed
    (``explain_user`` says why a user resolved to no address)."""
    out: list[Recipient] = []
    problems: list[Unreachable] = []
    seen: set[str] = set()
    for r in policy.notification.receivers:
        if r.webhook or r.alertmanager:
            address: str | None = r.key  # "webhook:<url>": the dispatcher's HTTP sender takes it
        else:
            address = r.email if r.email else resolve_user(r.user or "", policy.namespace)
        if not address:
            user = r.user or ""
            why = explain_user(user, policy.namespace) if explain_user is not None else UNREACHABLE
            problems.append(Unreachable(user, why or UNREACHABLE))
            continue
        if address in seen:
            continue
        seen.add(address)
        language = r.language or policy.notification.language or default_language
        out.append(Recipient(address=address, language=language, quiet=r.quiet_hours))
    return out, problems


def route(
    notices: list[Notice],
    *,
    policy_id: str,
    policy: Policy,
    tenant: str,
    to: list[Recipient],
    now: float,
) -> list[MessagePlan]:
    if not notices:
        return []
    keys = [n.key for n in notices]
    digest = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
    out: list[MessagePlan] = []
    window = policy.notification.window
    for r in to:
        release = windows.release_time(window, r.quiet, now)
        if release <= now:
            mkey, reason = f"now:{policy_id}:{r.address}:{digest}", ""
        else:
            reason = "window" if not windows.is_open(window, now) else "quiet"
            mkey = f"held:{policy_id}:{r.address}:{release:.0f}"
        out.append(
            MessagePlan(
                mkey=mkey,
                tenant=tenant,
                policy_id=policy_id,
                recipient=r.address,
                language=r.language,
                notices=list(keys),
                not_before=max(release, now),
                reason=reason,
            )
        )
    return out
