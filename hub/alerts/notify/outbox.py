"""Stage: the persisted outbox and its dispatcher.

Messages wait in the state store (``alert_outbox``) until their release time. Delivery marks
them ``sending`` (committed) before talking to the server and ``sent`` right after, so:

- a crash, restart or SMTP outage loses nothing: waiting messages stay waiting, and on start
  :meth:`Dispatcher.recover` puts messages caught in ``sending`` back in the queue;
- nothing is sent twice, except in the one window no outbox can close without the server's
  help: the server accepted the message and the hub died before recording it. Those few are
  re-sent (at-least-once), flagged in the body, with the SAME Message-ID as the first attempt
  so people and mail systems can recognise the duplicate. docs/alerting.md explains why
  exactly-once is not promised.
- each recipient gets its messages in order: a recipient whose earlier message is backing off
  gets nothing newer until it went out.
- a message the server accepted is marked ``sent`` as soon as the answer arrives
  (``on_result``), in a commit of its own that waits for no other writer
  (``AlertStore.record_sent``), so a crash mid-round re-sends at most a message whose answer
  arrived in the last instant before the crash, not every message sent before it. The
  bookkeeping (notices delivered, each alert's ``sends``) follows at the end of the round
  (``count_sent``; a crash before it leaves it to the next round, on any leader), as do
  refusals and retries;
- with several replicas, ``may_send`` travels with each message and the notifier asks it right
  before the message's DATA: a leader that lost its lease (paused, partitioned) sends nothing
  more, and its outcome writes are refused by the fencing token (``hub.store.leases``).

Rows whose recipient is ``webhook:<url>`` or ``alertmanager:<url>`` go to the HTTP sender
(``http_send``) under the same rules; their body is built right before the request from the
notices (``hooks``), signed with the receiver's secret, which ``receiver`` looks up in the
stored policy at that moment (so a secret changed meanwhile applies, and none is kept here).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.alerts.notify import hooks
from hub.alerts.notify.delivery import (
    DEFAULT_HTTP_TIMEOUT,
    DeliveryResult,
    HttpRequest,
    HttpSender,
    Notifier,
    OutgoingEmail,
    PendingEmail,
    PendingHttp,
)
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.render import Rendered, Renderer
from hub.alerts.notify.retry import backoff
from hub.alerts.policy_model import HTTP_SCHEMES, Receiver
from hub.store.alerts import AlertStore
from hub.timeutil import Clock

log = logging.getLogger("kubehub.alerts")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        return self


class Dispatcher:
    def __init__(
        self,
        *,
        store: AlertStore,
        notifier: Notifier,
        renderer: Renderer,
        clock: Clock,
        retry_initial: float = 10.0,
        retry_max: float = 600.0,
        batch: int = 200,
        may_send: Callable[[], bool] | None = None,
        http: HttpSender | None = None,
        receiver: Callable[[str, str], Receiver | None] | None = None,
        public_url: str = "",
        alertmanager_hold: float = 300.0,
        implicit_cluster: Callable[[], str] | None = None,
    ) -> None:
        self.may_send = may_send
        # The implicit cluster's name while the hub has several clusters, else '' (read when a
        # request is built): the label its alerts carry to webhooks and Alertmanager (hooks).
        self.implicit_cluster = implicit_cluster
        self.http = http
        self.receiver = receiver
        self.public_url = public_url
        self.alertmanager_hold = alertmanager_hold
        self.store = store
        self.notifier = notifier
        self.renderer = renderer
        self.clock = clock
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.batch = batch

    def recover(self) -> int:
        now = self.clock.now()
        self.store.count_sent(now)  # sent before the last leader stopped, its bookkeeping not yet done
        n = self.store.recover_sending(now)
        if n:
            log.warning("%d message(s) were being sent when the hub stopped; they go out again (same Message-ID)", n)
        return n

    def deliver_due(self) -> DeliveryReport:
        """Send one batch of due messages; returns what happened to them."""
        report = DeliveryReport()
        now = self.clock.now()
        self.store.count_sent(now)  # a former leader's sent messages whose bookkeeping it did not finish
        rows = self.store.due_messages(now, self.batch)
        if not rows:
            return report
        claimed = set(self.store.claim_sending([r["id"] for r in rows], now))
        rows = [r for r in rows if r["id"] in claimed]
        keys = {r["id"]: json.loads(r["notices"]) for r in rows}
        payloads = {
            n["key"]: n["payload"] for n in self.store.notices_by_keys(sorted({k for ks in keys.values() for k in ks}))
        }
        outcomes: list[tuple[int, str, float, str, str]] = []
        items: list[tuple[Any, PendingEmail]] = []
        calls: list[tuple[Any, PendingHttp]] = []
        rendered: dict[tuple[Any, ...], Rendered] = {}  # this round's renderings (see _builder)
        for row in rows:
            found = [payloads[k] for k in keys[row["id"]] if k in payloads]
            if not found:
                outcomes.append((row["id"], "failed", 0.0, "the message holds no notices", ""))
                report.failed += 1
                continue
            # Without an HTTP sender (a backtest's recording notifier) HTTP receivers' messages
            # go to the notifier like emails, so a replay lists what they would have received.
            if self.http is not None and str(row["recipient"]).split(":", 1)[0] in HTTP_SCHEMES:
                call = PendingHttp(row["message_id"], row["recipient"], self._http_builder(row, found), self.may_send)
                calls.append((row, call))
                continue
            pending = PendingEmail(
                row["message_id"], row["recipient"], self._builder(row, found, rendered), self.may_send
            )
            items.append((row, pending))
        if outcomes:
            self.store.record_results(outcomes, now=now)
        by_message: dict[str, Any] = {p.message_id: row for row, p in items}
        by_message.update({c.message_id: row for row, c in calls})
        recorded: set[int] = set()
        sent: list[int] = []

        def on_result(res: DeliveryResult) -> None:
            # Only an acceptance is committed here, alone and at once (record_sent): the time
            # until that commit is the window for a duplicate, and this call also holds up the
            # other connections' answers. A refusal waits for the end of the round (a crash
            # before then only leaves the message 'sending', to be sent again: never twice).
            row = by_message.get(res.message_id)
            if row is None or row["id"] in recorded or not res.ok:
                return
            began = time.perf_counter()
            self.store.record_sent(row["id"], now=self.clock.now(), subject=res.subject)
            # bench/failover.py times the duplicate window on this line
            log.debug("outbox: %s marked sent in %.1f ms", res.message_id, (time.perf_counter() - began) * 1000)
            report.sent += 1
            recorded.add(row["id"])
            sent.append(row["id"])

        log.debug("outbox: sending %d message(s)", len(items))
        results = self.notifier.send([p for _, p in items], on_result=on_result) if items else []
        if calls and self.http is not None:
            results += self.http.send([c for _, c in calls], on_result=on_result)
        done = self.clock.now()
        rest = [
            self._outcome(row, res, done, report)
            for row, res in zip([r for r, _ in items] + [r for r, _ in calls], results, strict=True)
            if row["id"] not in recorded
        ]
        if rest:
            self.store.record_results(rest, now=done)
        self.store.count_sent(done, sent)
        return report

    def _outcome(
        self, row: Any, res: DeliveryResult, done: float, report: DeliveryReport
    ) -> tuple[int, str, float, str, str]:
        if res.ok:
            report.sent += 1
            return (row["id"], "sent", 0.0, "", res.subject)
        if res.retry:
            log.warning("message %s to %s will be retried: %s", row["id"], row["recipient"], res.error)
            wait = backoff(row["attempts"] + 1, initial=self.retry_initial, maximum=self.retry_max)
            report.retried += 1
            return (row["id"], "retry", done + wait, res.error, res.subject)
        log.error("message %s to %s failed for good: %s", row["id"], row["recipient"], res.error)
        report.failed += 1
        return (row["id"], "failed", 0.0, res.error, res.subject)

    def _builder(
        self, row: Any, payloads: list[str], cache: dict[tuple[Any, ...], Rendered]
    ) -> Callable[[], OutgoingEmail]:
        """Renders the message when the notifier is about to send it (see PendingEmail).

        A notice going to several recipients is one message per recipient with the same
        notices: ``cache`` (one per round) renders it, text, HTML and charts, once for all of
        them. The rendering depends on nothing else than the key (the recipient is only in
        the headers below)."""

        def build() -> OutgoingEmail:
            notices = [Notice.from_json(p) for p in payloads]
            key = (tuple(payloads), row["language"], row["reason"], bool(row["resent"]))
            rendered = cache.get(key)
            if rendered is None:
                rendered = self.renderer.render(
                    notices, language=row["language"], reason=row["reason"], resent=bool(row["resent"])
                )
                cache[key] = rendered
            alerts = ", ".join(sorted({n.alert_id for n in notices}))  # foldable at its spaces
            return OutgoingEmail(
                message_id=row["message_id"],
                recipient=row["recipient"],
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                images=rendered.images,
                headers=(("X-Kubehub-Tenant", row["tenant"]), ("X-Kubehub-Alerts", alerts)),
            )

        return build

    def _http_builder(self, row: Any, payloads: list[str]) -> Callable[[], HttpRequest]:
        """The request of a webhook or Alertmanager message, built right before it is sent."""

        def build() -> HttpRequest:
            notices = [Notice.from_json(p) for p in payloads]
            scheme, url = str(row["recipient"]).split(":", 1)
            found = self.receiver(row["policy_id"], row["recipient"]) if self.receiver else None
            if found is None:
                raise LookupError("the policy no longer names this receiver")
            implicit = self.implicit_cluster() if self.implicit_cluster is not None else ""
            alerts = [hooks.from_notice(n, public_url=self.public_url, implicit_cluster=implicit) for n in notices]
            kinds = ",".join(sorted({n.kind for n in notices}))
            subject = f"{len(alerts)} alert(s), {kinds}: {notices[0].policy_name}"
            timeout = found.timeout or DEFAULT_HTTP_TIMEOUT
            if scheme == "alertmanager":
                now = self.clock.now()
                body = hooks.body_bytes([a.alertmanager(now=now, hold=self.alertmanager_hold) for a in alerts])
                target = url.rstrip("/") + "/api/v2/alerts"
                ident = (("X-Kubehub-Message-Id", row["message_id"]),)  # for proxies and logs
                return HttpRequest(row["message_id"], row["recipient"], target, body, ident, subject, timeout)
            payload = hooks.webhook_payload(
                alerts,
                receiver=f"kubehub/{notices[0].policy_name}",
                policy_id=row["policy_id"],
                policy_name=notices[0].policy_name,
                public_url=self.public_url,
            )
            body = hooks.body_bytes(payload)
            headers: list[tuple[str, str]] = [
                ("X-Kubehub-Message-Id", row["message_id"]),
                ("X-Kubehub-Tenant", row["tenant"]),
            ]
            if row["resent"]:
                headers.append(("X-Kubehub-Resent", "1"))  # the receiver may have it already
            if found.secret:
                headers.append((hooks.SIGNATURE_HEADER, hooks.signature(found.secret, body)))
            return HttpRequest(row["message_id"], row["recipient"], url, body, tuple(headers), subject, timeout)

        return build

    def deliver_all_due(self, *, max_batches: int = 50) -> DeliveryReport:
        """Deliver until nothing is due (or a batch made no progress, e.g. the server is down)."""
        total = DeliveryReport()
        for _ in range(max_batches):
            r = self.deliver_due()
            total += r
            if r.sent == 0 and r.failed == 0:
                break
        return total
