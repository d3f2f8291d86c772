"""The sandbox's mail catcher: a real SMTP server (aiosmtpd) that keeps every message in a Maildir.

Every message accepted is written whole (headers and body, as received) to
``<maildir>/new/<unique name>``, the standard Maildir delivery, so that users open the alert emails
with any mail reader (``mutt -f <maildir>``) and tests read them with :mod:`mailbox`.
Envelope sender and recipients are added as ``X-Sandbox-Mail-From`` / ``X-Sandbox-Rcpt-To``
headers, because Bcc recipients appear nowhere else.

Run: ``python -m sandbox.smtp --port 29025 --maildir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildirHandler:
    def __init__(self, maildir: str) -> None:
        self.path = Path(maildir)
        self.box = mailbox.Maildir(maildir, create=True)
        self._ensure_dirs()

    def _ensure_dirs(self) -> None:
        # Maildir(create=True) leaves an existing directory as it is; a Maildir needs all three.
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = message_from_bytes(raw, policy=compat32)
        msg["X-Sandbox-Mail-From"] = str(envelope.mail_from or "")
        msg["X-Sandbox-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        self._ensure_dirs()  # survives someone emptying the mailbox by removing its directories
        self.box.add(mailbox.MaildirMessage(msg))
        print(f"stored message from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args(argv)

    handler = MaildirHandler(args.maildir)
    # SMTPUTF8 so that Chinese alert subjects and addresses pass unchanged; 32 MiB size limit.
    controller = Controller(
        handler, hostname=args.host, port=args.port, enable_SMTPUTF8=True, data_size_limit=32 * 1024 * 1024,
        server_hostname="kubehub-sandbox",
    )  # fmt: skip
    controller.start()
    print(f"smtp catcher on {args.host}:{args.port}, Maildir {args.maildir}", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def _stop(*_: Any) -> None:
        loop.call_soon_threadsafe(stop.set)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    loop.run_until_complete(stop.wait())
    controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
