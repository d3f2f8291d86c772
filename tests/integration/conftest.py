"""The ``sandbox`` session fixture: the real engines every integration test runs against, and the
module fixtures of the tests that work on the sandbox's cluster through a hub of their own
(``kubeconfig``, ``kube``, ``h``; a module defining its own fixture of one of these names uses its own).

It reuses the sandbox already running (``kubehub sandbox up``), else brings one up without the
hub (tests start their own hubs). A fresh machine builds the Go engines and downloads
Elasticsearch first (minutes; cached in ~/.cache/kubehub for later runs). Set
``KUBEHUB_SANDBOX_DIR`` to use a sandbox in another directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sandbox.core import Sandbox
from tests.integration.cluster_support import HubUnderTest, hub_for, sandbox_kubeconfig


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox.shared()


@pytest.fixture(scope="module")
def kubeconfig(request: pytest.FixtureRequest) -> Path:
    return sandbox_kubeconfig(request)


@pytest.fixture(scope="module")
def kube(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    """The official client on the sandbox's cluster: the outside reference the hub is checked against."""
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def h(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[HubUnderTest]:
    """A hub of the module's own on the sandbox's cluster (its data in a temporary directory)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    hub = hub_for(kubeconfig, tmp_path_factory.mktemp(module) / "data", request_timeout=15.0)
    yield hub
    hub.close()
