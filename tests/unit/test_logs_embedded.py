"""What only the embedded store does: its query planner against a brute-force reference, slot
collisions, reopening, and retention racing a reader."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.collectors.logs.embedded import SLOTS, EmbeddedLogStore
from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import LogQuery, LogRecord, uid_hash

pytestmark = pytest.mark.unit

DAY = 1_795_305_600.0  # 2026-11-22T00:00:00Z
WORDS = ["alpha", "beta", "gamma", "超时", "失败", "数据库", "连接"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedLogStore]:
    s = EmbeddedLogStore(tmp_path / "logs")
    yield s
    s.close()


def _corpus(rnd: random.Random, n: int) -> list[LogRecord]:
    out = []
    for i in range(n):
        ns = f"ns-{rnd.randrange(30):02d}"
        pod = f"{ns}-pod-{rnd.randrange(3)}"
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 3)))
        out.append(
            LogRecord(
                time=DAY - 86_400 + i * (2 * 86_400 / n),
                namespace=ns,
                pod=pod,
                container=rnd.choice(["app", "proxy"]),
                workload=pod.rsplit("-", 1)[0],
                message=f"#{i} {words}",
            )
        )
    return out


def _matches(rec: LogRecord, q: LogQuery, word: str | None) -> bool:
    vis = q.visibility
    if vis is not None and (rec.namespace not in vis or rec.time < vis[rec.namespace]):
        return False
    if q.pods and rec.pod not in q.pods:
        return False
    if q.containers and rec.container not in q.containers:
        return False
    if q.start is not None and rec.time < q.start:
        return False
    if q.end is not None and rec.time >= q.end:
        return False
    return word is None or word in rec.message.split(" ", 1)[1].split(" ")


@pytest.mark.parametrize("seed", range(6))
def test_every_planner_path_answers_like_a_brute_force_filter(store: EmbeddedLogStore, seed: int) -> None:
    rnd = random.Random(seed)
    corpus = _corpus(rnd, 3000)
    store.write(corpus)
    namespaces = [f"ns-{i:02d}" for i in range(30)]
    for _ in range(25):
        size = rnd.choice([1, 2, 5, 29, 30])  # small scopes take the tag path, large ones the join
        vis: dict[str, float] | None = {
            ns: rnd.choice([0.0, DAY - 43_200, DAY + 3600]) for ns in rnd.sample(namespaces, size)
        }
        if rnd.random() < 0.15:
            vis = None
        word = rnd.choice([None, *WORDS])
        pods = (f"{rnd.choice(namespaces)}-pod-0",) if rnd.random() < 0.2 else ()
        containers = ("proxy",) if rnd.random() < 0.2 else ()
        start = DAY - 30_000 if rnd.random() < 0.3 else None
        q = LogQuery(
            visibility=vis,
            text=parse_keywords(word) if word else None,
            pods=pods,
            containers=containers,
            start=start,
            size=1000,
            sort=rnd.choice(["desc", "asc"]),
        )
        expected = [r.message for r in corpus if _matches(r, q, word)]
        if q.sort == "desc":
            expected.reverse()
        result = store.search(q)
        assert result.total == min(len(expected), 1000)
        assert [line.message for line in result.items] == expected[:1000]
        exported = [line.message for line in store.export(q, limit=10_000)]
        assert exported == expected
        buckets = {b.time: b.count for b in store.histogram(q, interval=3600) if b.count}
        want: dict[float, int] = {}
        for r in corpus:
            if _matches(r, q, word):
                key = (r.time // 3600) * 3600
                want[key] = want.get(key, 0) + 1
        assert buckets == want


def test_lines_that_hash_to_the_same_slot_in_the_same_microsecond_are_all_kept(store: EmbeddedLogStore) -> None:
    by_slot: dict[int, list[str]] = {}
    i = 0
    while not any(len(v) >= 3 for v in by_slot.values()):
        text = f"collide {i}"
        record = LogRecord(time=DAY, namespace="ns", pod="p", container="c", message=text)
        by_slot.setdefault(uid_hash(record.identity()) % SLOTS, []).append(text)
        i += 1
    texts = next(v for v in by_slot.values() if len(v) >= 3)[:3]
    records = [LogRecord(time=DAY, namespace="ns", pod="p", container="c", message=t) for t in texts]
    assert store.write(records[:2]) == 2
    assert store.write(records) == 1  # the first two are already there, the third probes on
    assert store.write(list(reversed(records))) == 0
    assert sorted(line.message for line in store.search(LogQuery(visibility=None)).items) == sorted(texts)


def test_a_reopened_store_has_its_lines_catalog_and_counts(tmp_path: Path) -> None:
    first = EmbeddedLogStore(tmp_path / "logs")
    records = _corpus(random.Random(1), 500)
    first.write(records)
    before = first.search(LogQuery(visibility={"ns-03": 0.0}, text=parse_keywords("超时")))
    first.close()
    again = EmbeddedLogStore(tmp_path / "logs")
    try:
        after = again.search(LogQuery(visibility={"ns-03": 0.0}, text=parse_keywords("超时")))
        assert [x.to_dict() for x in after.items] == [x.to_dict() for x in before.items]
        assert sum(p.lines for p in again.partitions()) == 500
        assert again.write(records) == 0
    finally:
        again.close()


def test_retention_racing_a_reader_neither_fails_it_nor_leaves_a_file(store: EmbeddedLogStore, tmp_path: Path) -> None:
    store.write(
        [
            LogRecord(time=DAY - 86_400 + i * 600, namespace="ns", pod="p", container="c", message=f"l{i}")
            for i in range(288)
        ]
    )
    lines = store.export(LogQuery(visibility=None), limit=10_000)  # newest day first
    assert next(lines).message == "l287"
    assert store.drop_before("2026-11-22") == ["logs-2026-11-21.sqlite3"]
    rest = [line.message for line in lines]
    assert "l0" not in rest
    assert not (tmp_path / "logs" / "logs-2026-11-21.sqlite3").exists()
