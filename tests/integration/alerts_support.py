"""Shared pieces of the alerting integration tests: a hub wired to the sandbox's Prometheus and
SMTP catcher, the sandbox's Maildir read by recipient, Prometheus asked directly, annotations
patched through the real Kubernetes API."""

from __future__ import annotations

import json
import mailbox
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

from hub.runtime import Hub, build_hub
from hub.settings import Settings
from sandbox.core import Sandbox
from sandbox.kube import KubeRest
from tests.conftest import world_database_url
from tests.polling import wait_until  # noqa: F401  (re-exported: the alert tests import it from here)


def hub_settings(sandbox: Sandbox, data_dir: Path, **alerts: Any) -> Settings:
    return Settings(data_dir=data_dir, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"},
        logs={"ship": False},
        prometheus={"url": sandbox.prometheus_url, "timeout": 30.0},
        smtp={"host": sandbox.smtp_host, "port": sandbox.smtp_port, "sender": "kubehub-test@localhost"},
        # grouping across policies stays on, with short waits so the tests stay quick
        alerts={
            "tick_seconds": 5.0,
            "delivery_seconds": 1.0,
            "retry_initial_seconds": 1.0,
            "retry_max_seconds": 4.0,
            "group_wait_seconds": 2.0,
            "group_interval_seconds": 5.0,
        }
        | alerts,
        http={"public_url": "http://console.example"},
    )


def start_hub(settings: Settings) -> Hub:
    hub = build_hub(settings)
    hub.start_background()
    return hub


def prom_query(sandbox: Sandbox, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{sandbox.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = json.loads(resp.read())
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def mails_to(sandbox: Sandbox, address: str) -> list[Message]:
    """Messages in the sandbox's Maildir whose envelope recipient is ``address``, oldest first."""
    if not (Path(sandbox.mailbox) / "cur").is_dir():  # the catcher creates it with the first message
        return []
    box = mailbox.Maildir(str(sandbox.mailbox), create=False)
    found: list[tuple[float, str, Message]] = []
    for key in list(box.iterkeys()):
        try:
            msg = box.get_message(key)
        except (FileNotFoundError, KeyError):
            continue
        rcpt = str(msg.get("X-Sandbox-Rcpt-To", "") or msg.get("To", ""))
        if address in rcpt:
            found.append((msg.get_date() or 0.0, key, msg))
    return [m for _, _, m in sorted(found, key=lambda x: (x[0], x[1]))]


def text_of(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""


def subject_of(msg: Message) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(str(msg.get("Subject", "")))))


@contextmanager
def annotated(sandbox: Sandbox, path: str, annotations: dict[str, str]) -> Iterator[KubeRest]:
    """Set annotations on a pod or node for the duration of the block (and remove them after)."""
    rest = KubeRest(sandbox.kubeconfig)
    rest.patch(path, {"metadata": {"annotations": annotations}})
    try:
        yield rest
    finally:
        rest.patch(path, {"metadata": {"annotations": dict.fromkeys(annotations)}})
