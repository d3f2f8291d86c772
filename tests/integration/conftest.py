"""The ``sandbox`` session fixture: the real engines every integration test runs against.

It reuses the sandbox already running (``kubehub sandbox up``), else brings one up without the
hub (tests start their own hubs). A fresh machine builds the Go engines and downloads
Elasticsearch first (minutes; cached in ~/.cache/kubehub for later runs). Set
``KUBEHUB_SANDBOX_DIR`` to use a sandbox in another directory.
"""

from __future__ import annotations

import pytest

from sandbox.core import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox.shared()
