"""A private OpenID Connect provider and a hub served over HTTP, for the SSO tests
(tests/integration/test_oidc_login.py, tests/e2e/test_oidc_journey.py).

The provider is the sandbox's program (``oidc-provider`` from npm, run by Node) on a free port
with its own CA, TLS certificate and keys, so tests may stop it and rotate its keys; the hub
is a tenancy world (tests/unit/conftest_tenancy.py) served by waitress, whose callback URL is
registered at the provider.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from hub.timeutil import FakeClock
from sandbox import oidc
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from tests.waitress_thread import serving

CLIENT_ID = "kubehub-it"
CLIENT_SECRET = "it-secret-" + "x" * 20
USERS = [
    oidc.User("olivia", "olivia-pass-1", ("kubehub-admins",), "olivia@example.test"),
    oidc.User("sam", "sam-pass-2", ("retail-team", "On-Call"), "sam@example.test"),
    oidc.User("casey", "casey-pass-3", ("retail-team", "retail-leads"), "casey@example.test"),
    oidc.User("noel", "noel-pass-4", (), ""),
    oidc.User("bob", "bob-pass-5", ("kubehub-admins",), ""),  # a LOCAL user of the hub has this name
]
MAPPINGS = [
    {"group": "kubehub-admins", "level": "platform", "role": "admin"},
    {"group": "retail-team", "level": "workspace", "target": "ws-a", "role": "regular"},
    {"group": "retail-leads", "level": "workspace", "target": "ws-a", "role": "admin"},
    {"group": "on-call", "level": "project", "target": "ns-a1", "role": "operator"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    provider: oidc.RunningProvider
    world: TenancyWorld
    clock: FakeClock
    hub_url: str

    @property
    def ca(self) -> str:
        assert self.provider.ca is not None
        return str(self.provider.ca)

    def browser(self) -> requests.Session:
        b = requests.Session()
        b.trust_env = False  # the environment's CA bundle would replace verify=
        b.verify = self.ca
        return b


@contextlib.contextmanager
def run_stack(base: Path) -> Iterator[Stack]:
    """A private provider and a hub served on a free port, both stopped on the way out."""
    from waitress.server import create_server

    home = oidc.ensure_installed(lambda line: None)
    crt, key = oidc.issue_certificate(base / "pki")
    hub_port = _free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    files = oidc.ProviderFiles(base / "provider", port=_free_port(), tls=(crt, key), name="Test SSO")
    files.write(
        [
            oidc.Client(
                CLIENT_ID, CLIENT_SECRET, (hub_url + "/login/oidc/callback",), (hub_url + "/login?logged_out=1",)
            )
        ],
        USERS,
    )
    provider = oidc.RunningProvider(files, home, log=base / "provider.log", ca=base / "pki" / "ca.crt")
    provider.start()
    clock = FakeClock(time.time())
    world = build_world(
        base / "hub",
        clock=clock,
        settings={
            "http": {"public_url": hub_url},
            "oidc": {
                "issuer_url": files.issuer,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "ca_file": str(provider.ca),
                "provider_name": "Test SSO",
                "timeout": 5.0,
            },
            "auth": {"group_mappings": json.dumps(MAPPINGS)},
        },
    )
    server = create_server(world.app, host="127.0.0.1", port=hub_port, threads=4)
    try:
        with serving(server, "oidc-hub"):
            yield Stack(provider=provider, world=world, clock=clock, hub_url=hub_url)
    finally:
        world.hub.close()
        provider.stop()
