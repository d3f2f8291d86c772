"""The SMTP notifier against a real TLS relay: the sandbox's catcher (aiosmtpd) run as its own
process with a certificate from a private CA and AUTH required, as corporate relays are.

STARTTLS and implicit TLS each deliver with the login and ``smtp.ca_file`` trusting the private
CA; a relay whose certificate comes from another CA is a final, clearly worded failure (no retry:
retrying cannot fix trust); a wrong password says the login was refused. The password never
reaches a log record (every logger captured at DEBUG, aiosmtplib's and asyncio's included) nor an
error text, in clear or base64 (what AUTH PLAIN/LOGIN put on the wire).
"""

from __future__ import annotations

import base64
import logging
import mailbox
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.alerts.notify.delivery import OutgoingEmail
from hub.alerts.notify.email import SmtpNotifier
from hub.errors import ConfigError
from hub.settings import SmtpSettings, load_settings
from sandbox.oidc import issue_certificate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = "relay-user"
PASSWORD = "Tr0ub4dor&3-smtp"  # distinctive, so a leak in any log line is found


def _forms(secret: str) -> list[str]:
    """The password as it could leak: in clear, and base64 as AUTH LOGIN and AUTH PLAIN send it."""
    plain = base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()
    return [secret, base64.b64encode(secret.encode()).decode(), plain]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("smtp-pki")
    cert, key = issue_certificate(base / "relay", "smtp")
    issue_certificate(base / "other", "smtp")  # another private CA, which did not sign the relay
    return {"cert": cert, "key": key, "ca": base / "relay" / "ca.crt", "other_ca": base / "other" / "ca.crt"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    def __init__(self, security: str, pki: dict[str, Path], maildir: Path) -> None:
        self.port = _free_port()
        self.maildir = maildir
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "sandbox.smtp", "--port", str(self.port), "--maildir", str(maildir),
                "--security", security, "--cert", str(pki["cert"]), "--key", str(pki["key"]),
                "--auth-user", USER,
            ],
            cwd=ROOT, env={**os.environ, "SMTP_AUTH_PASSWORD": PASSWORD},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        seen = []
        for _ in range(20):  # "smtp catcher on ..." is printed once the server accepts connections
            seen.append(self.proc.stdout.readline())
            if "smtp catcher on" in seen[-1] or not seen[-1]:
                break
        assert "smtp catcher on" in seen[-1], f"the relay did not start: {''.join(seen)!r}"

    def messages(self) -> list[mailbox.MaildirMessage]:
        return list(mailbox.Maildir(str(self.maildir), create=False))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(params=["starttls", "tls"])
def relay(request: pytest.FixtureRequest, pki: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, Relay]]:
    r = Relay(request.param, pki, tmp_path / "mail")
    yield request.param, r
    r.stop()


def mail(n: int) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=f"<tls{n}@kubehub.alerts>",
        recipient=f"oncall{n}@example.org",
        subject=f"[FIRING] cpu-high {n}",
        text=f"text {n}\n",
        html=f"<p>html {n}</p>",
    )


def settings(security: str, port: int, *, ca: Path, password: str = PASSWORD) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1", port=port, security=security, username=USER, password=password, ca_file=str(ca),
        timeout=10.0,
    )  # fmt: skip


def _no_secret(caplog: pytest.LogCaptureFixture, texts: list[str], secret: str = PASSWORD) -> None:
    everything = caplog.text + "\n".join(r.getMessage() for r in caplog.records) + "\n".join(texts)
    for form in _forms(secret):
        assert form not in everything


def test_tls_relay_with_auth_and_a_private_ca_delivers(
    relay: tuple[str, Relay], pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    security, r = relay
    caplog.set_level(logging.DEBUG)
    results = SmtpNotifier(settings(security, r.port, ca=pki["ca"])).send([mail(1), mail(2)])
    assert [(x.ok, x.error) for x in results] == [(True, ""), (True, "")]
    got = sorted(m["X-Sandbox-Rcpt-To"] for m in r.messages())
    assert got == ["oncall1@example.org", "oncall2@example.org"]
    _no_secret(caplog, [x.error for x in results])


def test_a_relay_certificate_from_another_ca_fails_for_good_saying_so(
    relay: tuple[str, Relay], pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    security, r = relay
    caplog.set_level(logging.DEBUG)
    results = SmtpNotifier(settings(security, r.port, ca=pki["other_ca"])).send([mail(1)])
    [res] = results
    assert not res.ok and res.retry is False  # not retried for ever: retrying cannot fix trust
    assert res.error.startswith(f"TLS certificate of the SMTP server 127.0.0.1:{r.port} not trusted")
    assert "certificate verify failed" in res.error or "unable to get local issuer" in res.error
    assert str(pki["other_ca"]) in res.error
    assert r.messages() == []
    _no_secret(caplog, [res.error])


def test_a_wrong_password_is_a_refused_login_and_leaks_nothing(
    relay: tuple[str, Relay], pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    security, r = relay
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pa55word-smtp"
    [res] = SmtpNotifier(settings(security, r.port, ca=pki["ca"], password=wrong)).send([mail(1)])
    assert not res.ok
    assert res.error.startswith(f"the SMTP server 127.0.0.1:{r.port} refused the login of user {USER}: 535")
    assert res.retry is True  # an admin fixes the password; the mail is kept (docs/alerting.md)
    assert r.messages() == []
    _no_secret(caplog, [res.error], secret=wrong)
    _no_secret(caplog, [res.error])


def test_the_ca_file_setting_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"KUBEHUB_SMTP_CA_FILE": str(tmp_path / "nope.crt")})
    assert "KUBEHUB_SMTP_CA_FILE" in str(err.value)


def test_the_outbox_marks_a_message_failed_for_an_untrusted_relay_and_never_retries_it(
    pki: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real pipeline: a node alert fires, its notice goes to the outbox, delivery
    meets a relay whose certificate another CA signed; the outbox shows the message failed with
    the certificate reason, and later delivery rounds leave it alone (nothing reaches the relay)."""
    from hub.timeutil import FakeClock
    from tests.unit.conftest_tenancy import build_world
    from tests.unit.test_alerts_api import T0, Engine, create, node_policy

    caplog.set_level(logging.DEBUG)
    relay = Relay("starttls", pki, tmp_path / "mail")
    world = build_world(tmp_path / "hub", clock=FakeClock(T0))
    try:
        create(world, "platform-admin", "/api/v1/alerting/policies", node_policy())
        engine = Engine(world)
        engine.dispatcher.notifier = SmtpNotifier(settings("starttls", relay.port, ca=pki["other_ca"]))
        engine.values = {"node-1": 0.99}
        for _ in range(4):  # fires, then three more delivery rounds well past any back-off
            engine.tick()
            world.hub.clock.advance(3600)  # type: ignore[attr-defined]
        rows = world.client("platform-admin").get("/api/v1/alerting/outbox").get_json()["items"]
        assert rows and all(r["status"] == "failed" for r in rows), rows
        assert all(r["last_error"].startswith("TLS certificate of the SMTP server") for r in rows)
        assert [r["attempts"] for r in rows] == [1] * len(rows)  # tried once, never again
        assert relay.messages() == []
        _no_secret(caplog, [r["last_error"] for r in rows])
    finally:
        world.hub.close()
        relay.stop()
