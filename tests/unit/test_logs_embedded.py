"""What only the embedded store does: its query planner against a brute-force reference, slot
collisions, reopening, and retention racing a reader."""

from __future__ import annotations

import random
import sqlite3
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


def _corpus(rnd: random.Random, n: int, *, uids: bool = False) -> list[LogRecord]:
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
                # lines of the namespace that exists now, of an earlier one, and of no known one
                namespace_uid=rnd.choice(["", f"{ns}-old", f"{ns}-new"]) if uids else "",
            )
        )
    return out


def _matches(rec: LogRecord, q: LogQuery, word: str | None) -> bool:
    vis = q.visibility
    if vis is not None:
        if rec.namespace not in vis:
            return False
        current = q.namespace_uids.get(rec.namespace, "")
        if current and rec.namespace_uid:
            if rec.namespace_uid != current:  # an earlier namespace of the same name
                return False
        elif rec.time < vis[rec.namespace]:
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
    corpus = _corpus(rnd, 3000, uids=seed % 2 == 1)
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
        current = {ns: f"{ns}-new" for ns in vis or {} if rnd.random() < 0.6}
        q = LogQuery(
            visibility=vis,
            namespace_uids=current,
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


def test_a_catalog_from_before_namespace_uids_is_upgraded_in_place(tmp_path: Path) -> None:
    first = EmbeddedLogStore(tmp_path / "logs")
    records = _corpus(random.Random(2), 300)
    first.write(records)
    first.close()
    # The catalog as the previous version wrote it: sources without a namespace UID column.
    conn = sqlite3.connect(tmp_path / "logs" / "catalog.sqlite3")
    conn.executescript(
        "ALTER TABLE sources RENAME TO newer; "
        "CREATE TABLE sources (id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, workload TEXT NOT NULL, "
        "pod TEXT NOT NULL, container TEXT NOT NULL, node TEXT NOT NULL, pod_uid TEXT NOT NULL, "
        "first_t REAL NOT NULL, last_t REAL NOT NULL, UNIQUE (ns, pod, container, pod_uid, workload, node)); "
        "INSERT INTO sources SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t FROM newer; "
        "DROP TABLE newer;"
    )
    conn.close()
    again = EmbeddedLogStore(tmp_path / "logs")
    try:
        assert again.search(LogQuery(visibility=None, size=1000)).total == 300
        assert again.write(records) == 0  # the old sources are found again: nothing twice
        stamped = LogRecord(time=DAY + 7200, namespace="ns-03", pod="p", container="c", message="n", namespace_uid="u")
        assert again.write([stamped]) == 1
        old_ns03 = sum(1 for r in records if r.namespace == "ns-03" and r.time >= DAY)
        seen = again.search(LogQuery(visibility={"ns-03": DAY}, namespace_uids={"ns-03": "u"}, size=1000))
        assert seen.total == old_ns03 + 1  # unstamped lines by the floor, the stamped one by its UID
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
