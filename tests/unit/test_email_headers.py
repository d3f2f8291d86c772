"""The email serialiser's own RFC 2047 header encoding, read back by the standard library's
parser (the outside reference): every subject comes back exactly as rendered, no encoded
line is longer than RFC 2047's 76 characters, ASCII values are left as they are, and in
address headers only the display name is encoded."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, message_from_string, policy

import pytest

from hub.alerts.notify.delivery import OutgoingEmail
from hub.alerts.notify.email import serialize_message

SUBJECTS = [
    "[Firing·critical] t-001/wl-01: 1.05 cores >0.8 cores (5 min)",  # the "·" of every alert
    "[告警·严重] 磁盘使用率过高：prod/deployment/web 使用率 97% 超过 90%，持续 10 分钟" * 3,
    "é" * 19 + "😀" * 30 + "x",  # 2- and 4-byte characters across every word boundary
    "ascii only, but long enough to need no folding by us: " + "a" * 60,
    "·",
]


def _parsed(subject: str, recipient: str = "oncall@example.org") -> tuple[bytes, object]:
    email = OutgoingEmail("<m1@kubehub>", recipient, subject, "text body", "<p>html</p>")
    data = serialize_message(email, sender="Kubehub Alerts <hub@example.org>")
    return data, message_from_bytes(data, policy=policy.default)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subject_reads_back_exactly(subject: str) -> None:
    data, msg = _parsed(subject)
    assert msg["Subject"] == subject  # type: ignore[index]
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    for line in head.split(b"\r\n"):
        if b"=?utf-8?b?" in line:
            assert len(line) <= 76, line
    # RFC 2047 section 5: each word holds whole characters (some readers decode word by word;
    # Python's parser joins adjacent words first, so it alone would not notice a split).
    for word in re.findall(rb"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=", head):
        base64.b64decode(word).decode("utf-8")


def test_ascii_values_are_not_encoded_and_line_breaks_never_reach_the_header() -> None:
    data, msg = _parsed("plain subject\r\nBcc: victim@example.org")
    assert b"Subject: plain subject Bcc: victim@example.org\r\n" in data
    assert msg["Bcc"] is None  # type: ignore[index]


def test_non_ascii_sender_name_reads_back() -> None:
    email = OutgoingEmail("<m2@kubehub>", "oncall@example.org", "s", "t", "<p>h</p>")
    data = serialize_message(email, sender="Kubehub 告警 <hub@example.org>")
    msg = message_from_bytes(data, policy=policy.default)
    assert msg["From"].addresses[0].display_name == "Kubehub 告警"
    assert msg["From"].addresses[0].addr_spec == "hub@example.org"


def test_non_ascii_address_stays_readable() -> None:
    """An internationalised address (sent with SMTPUTF8) is written as UTF-8 (RFC 6532)."""
    data, _ = _parsed("s", recipient="值班@例子.中国")
    msg = message_from_string(data.decode(), policy=policy.SMTPUTF8)  # headers are UTF-8 text
    assert msg["To"].addresses[0].addr_spec == "值班@例子.中国"  # type: ignore[attr-defined]


def test_ascii_display_name_with_specials_beside_a_non_ascii_address_stays_one_name() -> None:
    email = OutgoingEmail("<m3@kubehub>", '"Ops, \\"Night\\" Team" <值班@例子.中国>', "s", "t", "<p>h</p>")
    data = serialize_message(email, sender="hub@example.org")
    msg = message_from_string(data.decode(), policy=policy.SMTPUTF8)
    (only,) = msg["To"].addresses  # type: ignore[attr-defined]
    assert (only.display_name, only.addr_spec) == ('Ops, "Night" Team', "值班@例子.中国")


def test_a_long_ascii_header_is_folded_at_its_spaces_and_reads_back_exactly() -> None:
    """A notice grouping 300 alerts lists them all in ``X-Kubehub-Alerts``: unfolded that was one
    line of ~11,000 characters, which SMTP servers refuse (RFC 5321 4.5.3.1.6, 1,000 with CRLF)."""
    ids = ", ".join(f"a{i:05d}-{'f' * 28}" for i in range(300))
    email = OutgoingEmail(
        "<m1@kubehub>", "oncall@example.org", "cpu high", "text", "<p>html</p>", headers=(("X-Kubehub-Alerts", ids),)
    )
    data = serialize_message(email, sender="hub@example.org")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert message_from_bytes(data, policy=policy.default)["X-Kubehub-Alerts"] == ids
    word = "x" * 90  # one word longer than a line stays whole on its own line (no space to fold at)
    email = OutgoingEmail("<m2@kubehub>", "oncall@example.org", f"a {word} b", "t", "<p>h</p>")
    assert (
        message_from_bytes(serialize_message(email, sender="hub@example.org"), policy=policy.default)["Subject"]
        == f"a {word} b"
    )
