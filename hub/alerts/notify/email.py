"""Email delivery over SMTP: the ONLY module that imports aiosmtplib.

Messages are split over ``smtp.connections`` connections by recipient (so each recipient's
messages keep their order) and sent concurrently with asyncio. Failures are classified the
way the outbox needs them: anything about the connection (refused, dropped, timed out, TLS,
4xx replies, authentication or sender refusals that an admin can fix) is retried later; a 5xx
refusal of the recipient address or of the message itself is final.

TLS (``smtp.security`` ``starttls`` or ``tls``) verifies the relay's certificate and host name
against the system's CAs or ``smtp.ca_file`` (a private CA). A certificate that does not verify
is final too: the message is marked failed with "TLS certificate ... not trusted" rather than
retried for ever, because retrying cannot make a wrong or unknown CA right, and a silent retry
loop would hide that every alert email is stuck (the outbox logs and shows the reason). The
login (``smtp.username``/``password``) goes only to aiosmtplib; no error text or log line built
here contains the password.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import ssl
import zlib
from collections.abc import Callable, Sequence
from email.utils import formatdate, parseaddr
from typing import Any

import aiosmtplib

from hub.alerts.notify.delivery import (
    NOT_LEADING,
    DeliveryResult,
    OnResult,
    OutgoingEmail,
    PendingEmail,
    Sendable,
    materialise,
)
from hub.settings import SmtpSettings


def _header(text: str) -> str:
    """Header values never carry line breaks (header injection through a label value)."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


# UTF-8 bytes per RFC 2047 encoded word: 39 bytes are 52 base64 characters, a 64-character
# word, so "Subject: " plus one word stays within the 76-character line RFC 2047 asks for.
_WORD_BYTES = 39


# Characters of a folded header line (RFC 5322 section 2.1.1: at most 78 before the CRLF).
_FOLD = 76


def _folded(text: str, taken: int = 0) -> str:
    """A long ASCII header value folded at its spaces (RFC 5322 section 2.2.3); unfolding gives
    the value back. Unfolded, a notice grouping hundreds of alerts put them all on one
    ``X-Kubehub-Alerts`` line, past the 1,000 characters SMTP allows (RFC 5321 4.5.3.1.6): the
    server refused the message for good. ``text`` has single spaces (:func:`_header`); ``taken``
    is what the first line holds before it (the header's name, a colon and a space)."""
    if taken + len(text) <= _FOLD:
        return text
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > _FOLD - (0 if lines else taken):
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


def _encoded(text: str, taken: int = 0) -> str:
    """A header value: as is when ASCII (folded when long: :func:`_folded`), else RFC 2047
    base64 encoded words (Chinese subjects, and the "·" of every alert subject), one per folded
    line.

    Written here rather than through :class:`email.header.Header`, which measures every
    character under both encodings to pick the shorter one: 1.4 ms per subject, more than the
    rest of the message's serialisation (``bench/alerts.py``). A word never splits a UTF-8
    sequence, and the folding white space between words is not part of the decoded text
    (RFC 2047 section 6.2), so the value reads back exactly."""
    text = _header(text)
    if text.isascii():
        return _folded(text, taken)
    data = text.encode()
    words = []
    start = 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode()}?=")
        start = end
    return "\r\n ".join(words)


_SPECIALS = set('()<>@,:;."[]\\')  # RFC 5322 specials: a display name holding one is quoted


def _address(text: str) -> str:
    """An address header (From, To): only a display name is encoded. An encoded word around
    the whole ``Name <addr>`` hid the address from every reader. A non-ASCII address itself
    stays UTF-8 (RFC 6532): such a message is sent with SMTPUTF8."""
    text = _header(text)
    if text.isascii():
        return text
    name, addr = parseaddr(text)
    if not addr:
        return _encoded(text)
    if not name:
        return addr
    if name.isascii() and any(c in _SPECIALS for c in name):  # "Hub, Inc." stays one name
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{_encoded(name)} <{addr}>"


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")  # 76-character lines, CRLF


def serialize_message(email: OutgoingEmail, *, sender: str) -> bytes:
    """The email as wire bytes: multipart/alternative of text/plain and (multipart/related of)
    the HTML with its inline charts, every part base64.

    Written directly rather than through :mod:`email`'s generator: that generator re-folds
    every header on every flatten and cost more than rendering the whole notice (measured by
    ``bench/alerts.py``). The structure is fixed and simple, which is what makes this safe;
    tests parse the result back with the standard parser.
    """
    alt = f"kubehub-alt-{secrets.token_hex(8)}"
    rel = f"kubehub-rel-{secrets.token_hex(8)}"
    head = [
        f"From: {_address(sender)}",
        f"To: {_address(email.recipient)}",
        f"Subject: {_encoded(email.subject, len('Subject: '))}",
        f"Message-ID: {_header(email.message_id)}",
        f"Date: {formatdate(usegmt=True)}",
        "MIME-Version: 1.0",
        "Auto-Submitted: auto-generated",  # RFC 3834: vacation responders stay quiet
        "X-Auto-Response-Suppress: All",
        *(f"{_header(name)}: {_encoded(value, len(_header(name)) + 2)}" for name, value in email.headers),
        f'Content-Type: multipart/alternative; boundary="{alt}"',
    ]
    out = [("\r\n".join(head) + "\r\n\r\n").encode()]
    out.append(
        f'--{alt}\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
    )
    out.append(_base64(email.text.encode()))
    html_part = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + _base64(
        email.html.encode()
    )
    if email.images:
        out.append(f'--{alt}\r\nContent-Type: multipart/related; boundary="{rel}"\r\n\r\n'.encode())
        out.append(f"--{rel}\r\n".encode() + html_part)
        for cid, png in email.images:
            name = _header(cid.split("@")[0]) + ".png"
            out.append(
                f"--{rel}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
                f'Content-ID: <{_header(cid)}>\r\nContent-Disposition: inline; filename="{name}"\r\n\r\n'.encode()
            )
            out.append(_base64(png))
        out.append(f"--{rel}--\r\n".encode())
    else:
        out.append(f"--{alt}\r\n".encode() + html_part)
    out.append(f"--{alt}--\r\n".encode())
    return b"".join(out)


class _NotLeading(aiosmtplib.SMTPResponseException):
    """Raised instead of sending DATA when the replica lost its lease: aiosmtplib resets the
    envelope as after a 4xx refusal, and the message is kept for a later (the next leader's) try."""

    def __init__(self) -> None:
        super().__init__(451, NOT_LEADING)


class _GuardedSMTP(aiosmtplib.SMTP):
    """An SMTP client that asks ``guard`` right before DATA: the last moment before a message is
    committed to the server, so a leader paused between MAIL and DATA sends nothing after it
    wakes up without its lease."""

    guard: Callable[[], bool] | None = None

    async def data(self, message: str | bytes, /, **kwargs: Any) -> Any:
        if self.guard is not None and not self.guard():
            raise _NotLeading()
        return await super().data(message, **kwargs)


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "code", 0) or 0)


def _certificate_error(exc: BaseException) -> str | None:
    """The verification failure behind ``exc`` (aiosmtplib raises it bare on STARTTLS and wraps
    it in SMTPConnectError on implicit TLS), or None when the trouble is something else."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


class SmtpNotifier:
    """Implements the notifier protocol with a real SMTP server."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        # Built once: loading the CA file per connection would cost a parse per delivery round.
        self._tls: ssl.SSLContext | None = None
        if settings.security in ("starttls", "tls"):
            self._tls = ssl.create_default_context(cafile=settings.ca_file or None)

    def send(self, emails: Sequence[Sendable], on_result: OnResult | None = None) -> list[DeliveryResult]:
        if not emails:
            return []
        if not self.settings.host:
            return [
                DeliveryResult(e.message_id, ok=False, retry=True, error="no SMTP server is configured") for e in emails
            ]
        return asyncio.run(self._send_all(emails, on_result))

    async def _send_all(self, emails: Sequence[Sendable], on_result: OnResult | None) -> list[DeliveryResult]:
        n = max(1, min(self.settings.connections, len(emails)))
        groups: list[list[int]] = [[] for _ in range(n)]
        for i, e in enumerate(emails):
            groups[zlib.crc32(e.recipient.lower().encode()) % n].append(i)
        results: list[DeliveryResult | None] = [None] * len(emails)
        done = await asyncio.gather(*(self._send_group([emails[i] for i in g], on_result) for g in groups if g))
        for g, res in zip([g for g in groups if g], done, strict=True):
            for i, r in zip(g, res, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    def _client(self) -> _GuardedSMTP:
        s = self.settings
        return _GuardedSMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            timeout=s.timeout,
            username=s.username or None,
            password=s.password or None,
            tls_context=self._tls,
        )

    def _connect_failure(self, exc: BaseException) -> tuple[str, bool]:
        """Why a connection (TLS handshake and login included) failed, and whether to retry."""
        where = f"{self.settings.host}:{self.settings.port}"
        cert = _certificate_error(exc)
        if cert is not None:
            trust = f"the CA file {self.settings.ca_file}" if self.settings.ca_file else "the system's CAs"
            why = f"TLS certificate of the SMTP server {where} not trusted ({cert}); checked against {trust}"
            return why, False
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            # The server's reply only: aiosmtplib's exception never carries what was sent.
            who = self.settings.username or "(none)"
            return f"the SMTP server {where} refused the login of user {who}: {exc.code} {exc.message}", True
        return f"cannot connect to {where}: {exc}", True

    async def _send_one(
        self, client: _GuardedSMTP, recipient: str, data: bytes, message_id: str, subject: str, blocked: set[str]
    ) -> DeliveryResult:
        try:
            options = [] if recipient.isascii() else ["SMTPUTF8"]
            await client.sendmail(self.settings.sender, [recipient], data, mail_options=options)
            return DeliveryResult(message_id, ok=True, subject=subject)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            final = min((_code(r) for r in exc.recipients), default=0) >= 500
            if not final:
                blocked.add(recipient)
            return DeliveryResult(
                message_id, ok=False, retry=not final, error=f"recipient refused: {exc}", subject=subject
            )
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPAuthenticationError) as exc:
            # The hub's own configuration is wrong; an admin can fix it, so keep the mail.
            why = f"the server refused the sender or login: {exc}"
            return DeliveryResult(message_id, ok=False, retry=True, error=why, subject=subject)
        except aiosmtplib.SMTPResponseException as exc:
            final = _code(exc) >= 500
            if not final:
                blocked.add(recipient)
            return DeliveryResult(
                message_id, ok=False, retry=not final, error=f"message refused: {exc}", subject=subject
            )
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return DeliveryResult(message_id, ok=False, retry=True, error=f"connection lost: {exc}", subject=subject)

    async def _prepare(self, item: Sendable) -> tuple[OutgoingEmail, bytes] | Exception:
        """The message rendered and serialised, or why that failed (returned, not raised: a
        rendering done ahead must not end its task with an exception nobody reads)."""
        try:
            e = materialise(item)
            return e, serialize_message(e, sender=self.settings.sender)
        except Exception as exc:
            return exc

    async def _send_group(self, group: list[Sendable], on_result: OnResult | None = None) -> list[DeliveryResult]:
        client = self._client()
        try:
            await client.connect()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            why, retry = self._connect_failure(exc)
            return [DeliveryResult(e.message_id, ok=False, retry=retry, error=why) for e in group]
        out: list[DeliveryResult] = []
        blocked: set[str] = set()  # recipients with a deferred message: later ones wait (order)
        broken: str | None = None
        # Each message is rendered one turn ahead, in a task that runs as soon as this
        # connection awaits the server's answers to the message before it: the rendering fills
        # that wait instead of following it (bench/alerts.py: with the rendering in line, both
        # connections were often waiting at once). The lease is still asked right before DATA.
        ahead: dict[int, asyncio.Task[tuple[OutgoingEmail, bytes] | Exception]] = {}

        def render_ahead(k: int) -> None:
            if k < len(group) and group[k].recipient not in blocked:
                ahead[k] = asyncio.ensure_future(self._prepare(group[k]))

        try:
            for k, item in enumerate(group):
                task = ahead.pop(k, None)
                if task is not None and (broken is not None or item.recipient in blocked):
                    task.cancel()  # rendered for nothing (or not yet): this message waits
                if broken is not None:
                    out.append(DeliveryResult(item.message_id, ok=False, retry=True, error=broken))
                    continue
                if item.recipient in blocked:
                    why = "an earlier message to this recipient is waiting"
                    out.append(DeliveryResult(item.message_id, ok=False, retry=True, error=why))
                    continue
                prepared = await task if task is not None else await self._prepare(item)
                if isinstance(prepared, Exception):  # a rendering bug keeps the message for a later try
                    why = f"rendering failed: {prepared}"
                    out.append(DeliveryResult(item.message_id, ok=False, retry=True, error=why))
                    continue
                e, msg = prepared
                render_ahead(k + 1)
                client.guard = item.may_send if isinstance(item, PendingEmail) else None
                out.append(await self._send_one(client, e.recipient, msg, e.message_id, e.subject, blocked))
                if on_result is not None:
                    on_result(out[-1])  # committed before the next message goes out (the outbox's)
                if out[-1].error.startswith(("the server refused the sender", "connection lost")):
                    broken = out[-1].error
        finally:
            for task in ahead.values():  # a message left unsent after a broken connection
                task.cancel()
            try:
                if client.is_connected:
                    await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
        return out
