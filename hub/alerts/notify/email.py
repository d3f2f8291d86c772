"""Email delivery over SMTP: the ONLY module that imports aiosmtplib.

Messages are split over ``smtp.connections`` connections by recipient (so each recipient's
messages keep their order) and sent concurrently with asyncio. Failures are classified the
way the outbox needs them: anything about the connection (refused, dropped, timed out, TLS,
4xx replies, authentication or sender refusals that an admin can fix) is retried later; a 5xx
refusal of the recipient address or of the message itself is final.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from hub.alerts.notify.delivery import DeliveryResult, OutgoingEmail
from hub.settings import SmtpSettings


def _header(text: str) -> str:
    """Header values never carry line breaks (header injection through a label value)."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def build_message(email: OutgoingEmail, *, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _header(sender)
    msg["To"] = _header(email.recipient)
    msg["Subject"] = _header(email.subject)
    msg["Message-ID"] = _header(email.message_id)
    msg["Date"] = formatdate(usegmt=True)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: vacation responders stay quiet
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in email.headers:
        msg[name] = _header(value)
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    if email.images:
        html_part: Any = msg.get_payload()[1]  # type: ignore[index]
        for cid, png in email.images:
            html_part.add_related(
                png, maintype="image", subtype="png", cid=f"<{cid}>", filename=f"{cid.split('@')[0]}.png"
            )
    return msg


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "code", 0) or 0)


class SmtpNotifier:
    """Implements the notifier protocol with a real SMTP server."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, emails: Sequence[OutgoingEmail]) -> list[DeliveryResult]:
        if not emails:
            return []
        if not self.settings.host:
            return [
                DeliveryResult(e.message_id, ok=False, retry=True, error="no SMTP server is configured") for e in emails
            ]
        return asyncio.run(self._send_all(emails))

    async def _send_all(self, emails: Sequence[OutgoingEmail]) -> list[DeliveryResult]:
        n = max(1, min(self.settings.connections, len(emails)))
        groups: list[list[int]] = [[] for _ in range(n)]
        for i, e in enumerate(emails):
            groups[zlib.crc32(e.recipient.lower().encode()) % n].append(i)
        results: list[DeliveryResult | None] = [None] * len(emails)
        done = await asyncio.gather(*(self._send_group([emails[i] for i in g]) for g in groups if g))
        for g, res in zip([g for g in groups if g], done, strict=True):
            for i, r in zip(g, res, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            timeout=s.timeout,
            username=s.username or None,
            password=s.password or None,
        )

    async def _send_group(self, group: list[OutgoingEmail]) -> list[DeliveryResult]:
        client = self._client()
        try:
            await client.connect()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            why = f"cannot connect to {self.settings.host}:{self.settings.port}: {exc}"
            return [DeliveryResult(e.message_id, ok=False, retry=True, error=why) for e in group]
        out: list[DeliveryResult] = []
        blocked: set[str] = set()  # recipients with a deferred message: later ones wait (order)
        broken: str | None = None
        try:
            for e in group:
                if broken is not None:
                    out.append(DeliveryResult(e.message_id, ok=False, retry=True, error=broken))
                    continue
                if e.recipient in blocked:
                    out.append(
                        DeliveryResult(
                            e.message_id, ok=False, retry=True, error="an earlier message to this recipient is waiting"
                        )
                    )
                    continue
                msg = build_message(e, sender=self.settings.sender)
                try:
                    await client.send_message(msg, sender=self.settings.sender, recipients=[e.recipient])
                    out.append(DeliveryResult(e.message_id, ok=True))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    code = min((_code(r) for r in exc.recipients), default=0)
                    final = code >= 500
                    if not final:
                        blocked.add(e.recipient)
                    out.append(
                        DeliveryResult(e.message_id, ok=False, retry=not final, error=f"recipient refused: {exc}")
                    )
                except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPAuthenticationError) as exc:
                    # The hub's own configuration is wrong; an admin can fix it, so keep the mail.
                    broken = f"the server refused the sender or login: {exc}"
                    out.append(DeliveryResult(e.message_id, ok=False, retry=True, error=broken))
                except aiosmtplib.SMTPResponseException as exc:
                    final = _code(exc) >= 500
                    if not final:
                        blocked.add(e.recipient)
                    out.append(DeliveryResult(e.message_id, ok=False, retry=not final, error=f"message refused: {exc}"))
                except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                    broken = f"connection lost: {exc}"
                    out.append(DeliveryResult(e.message_id, ok=False, retry=True, error=broken))
        finally:
            try:
                if client.is_connected:
                    await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
        return out
