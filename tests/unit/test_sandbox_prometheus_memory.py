"""The sandbox's Prometheus is bounded for this machine (sandbox/core.py): Go's soft memory limit
at half the physical memory, so that the scale profile's Prometheus collects garbage before the
kernel kills it (docs/sandbox.md "Prometheus's memory")."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import promcfg
from sandbox.core import Sandbox, prometheus_memory_limit

pytestmark = pytest.mark.unit


def test_the_memory_limit_is_half_the_machine_in_mebibytes() -> None:
    assert prometheus_memory_limit(24 << 30) == "12288MiB"
    assert prometheus_memory_limit(3 << 20) == "1MiB"  # never zero, which Go would take as no room at all
    assert prometheus_memory_limit().endswith("MiB")


def test_prometheus_is_started_with_the_limit_and_its_own_query_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writing the scrape configuration checks it with promtool against the sandbox's
    # certificates, which a unit test does not make; the process's spec is what is looked at.
    monkeypatch.setattr(promcfg, "write_config", lambda sb, path: path)
    spec = Sandbox(tmp_path / "sb")._spec_prometheus()
    assert spec.env == {"GOMEMLIMIT": prometheus_memory_limit()}
    # Not capped (tried at four: at scale the rule engine's queries then waited up to 9 s in
    # Prometheus's queue, p99, against the hub's 10 s timeout).
    assert not any(arg.startswith("--query.max-concurrency") for arg in spec.argv)
