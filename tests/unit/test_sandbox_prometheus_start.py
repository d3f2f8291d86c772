"""The sandbox waits for Prometheus in proportion to what it replays at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import promcfg

pytestmark = pytest.mark.unit


def test_the_wait_for_prometheus_grows_with_its_write_ahead_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert promcfg.replay_bytes(data) == 0  # a new sandbox
    assert promcfg.start_timeout(0) == 120.0
    (data / "wal" / "checkpoint.00001").mkdir(parents=True)
    (data / "wal" / "00000002").write_bytes(b"x" * 3000)
    (data / "wal" / "checkpoint.00001" / "00000000").write_bytes(b"x" * 1000)
    (data / "chunks_head").mkdir()
    (data / "chunks_head" / "000001").write_bytes(b"x" * 500)
    (data / "01ABC").mkdir()  # a persisted block is not replayed
    (data / "01ABC" / "index").write_bytes(b"x" * 10_000)
    assert promcfg.replay_bytes(data) == 4500
    # the large profile's 2.1 GB: 120 s was not enough; about 10 minutes now, never over 30
    assert 600 < promcfg.start_timeout(2_135_000_000) < 660
    assert promcfg.start_timeout(10**12) == 1800.0
