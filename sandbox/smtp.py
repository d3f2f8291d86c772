"""The sandbox's mail catcher: a real SMTP server (aiosmtpd) that keeps every message in a Maildir.

Every message accepted is written whole (headers and body, as received) to
``<maildir>/new/<unique name>``, the standard Maildir delivery, so that users open the alert emails
with any mail reader (``mutt -f <maildir>``) and tests read them with :mod:`mailbox`.
Envelope sender and recipients are added as ``X-Sandbox-Mail-From`` / ``X-Sandbox-Rcpt-To``
headers, because Bcc recipients appear nowhere else.

Run: ``python -m sandbox.smtp --port 29025 --maildir DIR``.

For the hub's TLS relays (``smtp.security`` ``starttls`` or ``tls``) the same catcher also runs
as a corporate relay would: ``--cert``/``--key`` (a certificate from a private CA, see
:func:`sandbox.oidc.issue_certificate`) with ``--security starttls`` (STARTTLS required before
MAIL) or ``--security tls`` (implicit TLS on connect), and ``--auth-user``/``--auth-password``
(AUTH PLAIN/LOGIN required, only over TLS). The password is read from the environment variable
named by ``--auth-password-env`` so it never shows in a process listing.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import mailbox
import os
import signal
import ssl
import warnings
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


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


class Authenticator:
    """Accepts one user name and password (compared in constant time); anything else is 535."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(data.login, self.user) & hmac.compare_digest(data.password, self.password)
        return AuthResult(success=bool(ok), handled=False)


def tls_options(security: str, cert: str, key: str) -> dict[str, Any]:
    """The Controller's keyword arguments for ``security`` (none, starttls, tls)."""
    if security == "none":
        return {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if security == "tls":
        # aiosmtpd only counts STARTTLS as TLS for AUTH (and warns); here every byte is TLS from
        # the start, so AUTH is as safe as after STARTTLS.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        return {"ssl_context": ctx, "auth_require_tls": False}
    return {"tls_context": ctx, "require_starttls": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--security", choices=["none", "starttls", "tls"], default="none")
    parser.add_argument("--cert", default="", help="PEM certificate (chain) for starttls/tls")
    parser.add_argument("--key", default="", help="PEM private key for starttls/tls")
    parser.add_argument("--auth-user", default="", help="require AUTH as this user")
    parser.add_argument("--auth-password-env", default="SMTP_AUTH_PASSWORD", help="variable holding the password")
    args = parser.parse_args(argv)
    if args.security != "none" and not (args.cert and args.key):
        parser.error("--security starttls/tls needs --cert and --key")
    extra = tls_options(args.security, args.cert, args.key)
    if args.auth_user:
        password = os.environ.get(args.auth_password_env, "")
        extra.update(authenticator=Authenticator(args.auth_user, password), auth_required=True)

    handler = MaildirHandler(args.maildir)
    # SMTPUTF8 so that Chinese alert subjects and addresses pass unchanged; 32 MiB size limit.
    controller = Controller(
        handler, hostname=args.host, port=args.port, enable_SMTPUTF8=True, data_size_limit=32 * 1024 * 1024,
        server_hostname="kubehub-sandbox", **extra,
    )  # fmt: skip
    controller.start()
    print(f"smtp catcher on {args.host}:{args.port} ({args.security}), Maildir {args.maildir}", flush=True)
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
