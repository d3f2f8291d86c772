"""The soak's own checks (bench/soak.py), so that a soak that passes means something.

The CRI reader is held to the sandbox's writer (``sandbox.seed.write_cri``, what KWOK serves),
the 503 classifier to the hub's own error bodies (``hub.errors.BackendUnavailable`` through
the web layer's JSON, and the console's error page), and the line matcher to hand-made cases
of each way a line can go wrong.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from hub.errors import BackendUnavailable
from sandbox.seed import LogRecord, write_cri

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("kubehub_bench_soak", REPO / "bench" / "soak.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_cri_reader_reads_back_what_the_sandbox_writes_inside_the_window(soak, tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    t = 1_796_455_000.123456
    records = [
        LogRecord(t - 10, "INFO", "before the window"),
        LogRecord(t, "ERROR", "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: '金额'"),
        LogRecord(t + 5.5, "INFO", "处理请求 GET /api 成功", stream="stderr"),
        LogRecord(t + 100, "INFO", "after the window"),
    ]
    write_cri(path, records)
    got = soak.cri_lines(path, t - 1, t + 50)
    us = 1_796_455_000_123_456
    assert got == [
        (us, "Traceback (most recent call last):"),
        (us, '  File "x.py", line 1'),
        (us, "KeyError: '金额'"),
        (us + 5_500_000, "处理请求 GET /api 成功"),
    ]


def test_line_matcher_counts_lost_duplicated_and_foreign_lines(soak) -> None:
    key = ("pod-a", "web", "GET / 200")
    other = ("pod-b", "web", "GET / 200")
    expected = {key: [1_000_000, 2_000_000, 3_000_000], other: [1_000_000]}
    # 2 µs off (a float's rounding) still matches; the line at 2 s comes twice; 3 s never came;
    # pod-b's line is there; a line the files never held.
    actual = {
        key: [1_000_002, 2_000_000, 2_000_001],
        other: [1_000_000],
        ("pod-a", "web", "never written"): [5_000_000],
    }
    lost, duplicated, unexpected, examples = soak.compare_lines(expected, actual)
    assert (lost, duplicated, unexpected) == (1, 1, 1)
    assert any(e.startswith("lost: pod-a/web 3000000") for e in examples)
    assert soak.compare_lines(expected, {k: list(v) for k, v in expected.items()})[:3] == (0, 0, 0)


def test_a_503_is_expected_only_naming_the_backend_that_was_down_then(soak) -> None:
    body = BackendUnavailable("elasticsearch", "connection refused").to_dict()
    backend, _ = soak.backend_of(503, json.dumps(body).encode())
    assert backend == "elasticsearch"
    page = b"<html><p>kubernetes API server is unavailable: watch pods got no answer</p></html>"
    assert soak.backend_of(503, page)[0] == "kubernetes API server"

    record = soak.Record()
    record.faults.append(soak.Fault("elasticsearch", stopped=100.0, down_for=30.0, started=130.0, healthy=140.0))
    record.faults.append(soak.Fault("etcd", stopped=300.0, down_for=30.0, started=330.0, healthy=331.0))
    ok = [
        soak.Answer(110, 111, "u", "search", "/api/v1/logs", 503, "elasticsearch"),
        soak.Answer(150, 151, "u", "search", "/api/v1/logs", 503, "elasticsearch"),  # within the grace
        soak.Answer(310, 311, "u", "page", "/workloads", 503, "kubernetes API server"),  # etcd: the API server
        soak.Answer(50, 51, "u", "page", "/", 200),
    ]
    bad = [
        soak.Answer(200, 201, "u", "search", "/api/v1/logs", 503, "elasticsearch"),  # after the grace
        soak.Answer(110, 111, "u", "page", "/monitoring", 503, "prometheus"),  # not the one down
        soak.Answer(110, 111, "u", "page", "/", 500, "elasticsearch"),  # a 500 is never expected
        soak.Answer(110, 111, "u", "page", "/", 0, detail="ConnectionError"),  # nor no answer
    ]
    record.answers.extend(ok + bad)
    answers, expected, unexpected = soak.check_5xx(record)
    assert (answers, expected) == (8, 3)
    assert unexpected == bad
