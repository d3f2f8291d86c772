"""The SMTP notifier against a real SMTP server (aiosmtpd in this process): what arrives, and how
failures are classified (connection trouble and 4xx are retried; a 5xx refusal of the address
is final), plus the message structure that mail readers need."""

from __future__ import annotations

import email
import socket
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from hub.alerts.notify.delivery import OutgoingEmail, PendingEmail
from hub.alerts.notify.email import SmtpNotifier, serialize_message
from hub.settings import SmtpSettings

pytestmark = pytest.mark.integration


class Server:
    """Accepts mail; refuses ``bad@...`` for good (550) and ``full@...`` for now (452)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("bad@"):
            return "550 5.1.1 no such user"
        if address.startswith("full@"):
            return "452 4.2.2 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    handler = Server()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def mail(to: str, n: int = 0, subject: str = "[FIRING·critical] node-1 cpu-high 97% (>90%)") -> OutgoingEmail:
    return OutgoingEmail(
        message_id=f"<m{n}@kubehub.alerts>",
        recipient=to,
        subject=subject,
        text=f"text {n}\n",
        html=f"<p>html {n}</p>",
        images=(("chart0@kubehub", b"\x89PNG-not-really"),),
        headers=(("X-Kubehub-Tenant", "team-a"),),
    )


def test_messages_arrive_whole_with_text_html_and_inline_chart(smtp: Any) -> None:
    handler, port = smtp
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, connections=2))
    results = notifier.send(
        [mail("a@example.com", 1), mail("b@example.com", 2, "[告警·重要] deployment/api cpu 900m (>500m)")]
    )
    assert [r.ok for r in results] == [True, True]
    got = {m["Message-ID"]: m for m in handler.messages}
    first = got["<m1@kubehub.alerts>"]
    assert [p.get_content_type() for p in first.walk()] == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
    ]
    png = next(p for p in first.walk() if p.get_content_type() == "image/png")
    assert png["Content-ID"] == "<chart0@kubehub>" and png.get_payload(decode=True) == b"\x89PNG-not-really"
    assert first["Auto-Submitted"] == "auto-generated" and first["X-Kubehub-Tenant"] == "team-a"
    assert (
        str(make_header(decode_header(got["<m2@kubehub.alerts>"]["Subject"])))
        == "[告警·重要] deployment/api cpu 900m (>500m)"
    )


def test_a_notice_listing_hundreds_of_alerts_is_accepted_by_a_real_smtp_server(smtp: Any) -> None:
    """Found on the scale sandbox: a notice grouping hundreds of alerts named them all on one
    ``X-Kubehub-Alerts`` line, and aiosmtpd refused the message for good ("500 Line too long",
    RFC 5321 4.5.3.1.6). The header is now folded at its spaces and reads back whole."""
    handler, port = smtp
    ids = ", ".join(f"{i:04d}-{'a' * 32}" for i in range(400))
    one = mail("a@example.com", 7)
    long = OutgoingEmail(
        one.message_id, one.recipient, one.subject, one.text, one.html, one.images, (("X-Kubehub-Alerts", ids),)
    )
    results = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port)).send([long])
    assert [r.ok for r in results] == [True], results
    got = handler.messages[0]["X-Kubehub-Alerts"]
    assert [a.strip() for a in str(got).split(",")] == [a.strip() for a in ids.split(",")]


def test_a_refused_address_is_final_a_full_mailbox_is_retried_and_keeps_order(smtp: Any) -> None:
    handler, port = smtp
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, connections=1))
    results = notifier.send(
        [
            mail("bad@example.com", 1),
            mail("full@example.com", 2),
            mail("full@example.com", 3),
            mail("ok@example.com", 4),
        ]
    )
    assert [(r.ok, r.retry) for r in results] == [(False, False), (False, True), (False, True), (True, False)]
    assert "550" in results[0].error
    assert results[2].error == "an earlier message to this recipient is waiting"
    assert [m["Message-ID"] for m in handler.messages] == ["<m4@kubehub.alerts>"]


def test_no_server_means_retry_for_every_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, timeout=3))
    results = notifier.send([mail("a@example.com", 1), mail("b@example.com", 2)])
    assert all(not r.ok and r.retry and "cannot connect" in r.error for r in results)


def test_a_rendering_failure_keeps_the_message_for_later(smtp: Any) -> None:
    _, port = smtp

    def broken() -> OutgoingEmail:
        raise ValueError("template bug")

    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port))
    [result] = notifier.send([PendingEmail("<p@x>", "a@example.com", broken)])
    assert not result.ok and result.retry and "template bug" in result.error


def test_header_values_cannot_inject_headers() -> None:
    raw = serialize_message(
        OutgoingEmail("<x@y>", "a@example.com", "subject\r\nBcc: evil@example.com", "t", "h"), sender="k@l"
    )
    parsed = email.message_from_bytes(raw)
    assert parsed["Bcc"] is None and parsed["Subject"] == "subject Bcc: evil@example.com"
