"""HTTP delivery for webhook and Alertmanager receivers: the ONLY module of the alert pipeline
that imports ``requests``.

It implements the same notifier contract as the SMTP sender (``delivery.Notifier``), so the
outbox treats both alike: a message is marked ``sending`` before the request, its outcome is
committed as soon as the answer arrives (``on_result``), and:

- connection refused or dropped, timeouts, 408, 429 and 5xx are retried with the outbox's
  back-off, without giving up (an Alertmanager down for an hour gets its alerts an hour late);
- any other 4xx (and a redirect, which is not followed: a POST must not turn into a GET
  elsewhere) is final: the message is marked failed with the status and the start of the
  answer, and the outbox page shows it. Retrying cannot make a wrong URL or a refused
  signature right.
- a recipient whose message is being retried gets nothing newer in this round (order);
- ``may_send`` is asked right before each request (a replica that lost its lease sends nothing).

Secrets: the webhook's secret only keys the HMAC; it is never put in an error text or a log
line (the signature header is not logged either). Requests are made one after the other
within a round: the outbox's ``on_result`` writes to the state store from this thread, and a
dead receiver costs at most its timeout once per round (its later messages wait untried).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import requests

from hub.alerts.notify.delivery import NOT_LEADING, DeliveryResult, OnResult, PendingHttp

log = logging.getLogger("kubehub.alerts")

USER_AGENT = "kubehub-alerts/1"
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def classify(status: int) -> tuple[bool, bool]:
    """(ok, retry) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    if status in (408, 429) or status >= 500:
        return False, True
    return False, False


class HttpNotifier:
    """Posts JSON bodies; one session (connection reuse) per notifier."""

    def __init__(self, *, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def post(self, url: str, body: bytes, headers: Sequence[tuple[str, str]], timeout: float) -> tuple[int, str]:
        """One POST; (status, the start of the answer). Raises requests' errors."""
        resp = self.session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **dict(headers)},
            timeout=(min(timeout, 5.0), timeout),
            allow_redirects=False,
        )
        try:
            return resp.status_code, resp.text[:200].strip()
        finally:
            resp.close()

    def send(self, items: Sequence[PendingHttp], on_result: OnResult | None = None) -> list[DeliveryResult]:
        out: list[DeliveryResult] = []
        waiting: dict[str, str] = {}  # recipient -> why its later messages wait this round
        for item in items:
            res = self._one(item, waiting)
            out.append(res)
            if on_result is not None:
                on_result(res)
        return out

    def _one(self, item: PendingHttp, waiting: dict[str, str]) -> DeliveryResult:
        mid = item.message_id
        if item.recipient in waiting:
            return DeliveryResult(mid, ok=False, retry=True, error=waiting[item.recipient])
        try:
            req = item.build()
        except LookupError as exc:  # the policy no longer names the receiver: nobody to send to
            return DeliveryResult(mid, ok=False, retry=False, error=str(exc))
        except Exception as exc:  # a rendering bug keeps the message for a later try
            return DeliveryResult(mid, ok=False, retry=True, error=f"rendering failed: {exc}")
        if item.may_send is not None and not item.may_send():
            return DeliveryResult(mid, ok=False, retry=True, error=NOT_LEADING, subject=req.subject)
        try:
            status, text = self.post(req.url, req.body, req.headers, req.timeout)
        except requests.Timeout:
            why = f"{req.url}: no answer within {req.timeout:g}s"
            waiting[item.recipient] = f"an earlier message to this receiver is waiting ({why})"
            return DeliveryResult(mid, ok=False, retry=True, error=why, subject=req.subject)
        except requests.RequestException as exc:
            errno = _ERRNO.search(str(exc))  # urllib3 nests the OS error deep in its text
            if errno:
                detail = errno.group(0)
            elif "closed connection without response" in str(exc) or "Connection aborted" in str(exc):
                detail = "the connection was closed without an answer"
            else:
                detail = type(exc).__name__
            why = f"cannot reach {req.url}: {detail}"
            waiting[item.recipient] = "an earlier message to this receiver is waiting"
            return DeliveryResult(mid, ok=False, retry=True, error=why, subject=req.subject)
        ok, retry = classify(status)
        if ok:
            return DeliveryResult(mid, ok=True, subject=req.subject)
        why = f"{req.url} answered {status}" + (f": {text}" if text else "")
        if 300 <= status < 400:
            why += " (redirects are not followed; give the final URL)"
        if retry:
            waiting[item.recipient] = "an earlier message to this receiver is waiting"
        return DeliveryResult(mid, ok=False, retry=retry, error=why, subject=req.subject)
