"""The watch cache's list/watch loop, driven one step at a time against a scripted API."""

from __future__ import annotations

import pytest

from hub.collectors.cluster import RESOURCE_KINDS
from hub.collectors.watchcache import Backoff, WatchCache
from hub.timeutil import FakeClock
from tests.unit.cluster_fakes import FakeKube, namespace_json, node_json, pod_json, secret_json

pytestmark = pytest.mark.unit


def make_cache(kube: FakeKube, clock: FakeClock, *, names: tuple[str, ...] = ("nodes", "pods"), **kw: object):
    kinds = [k for k in RESOURCE_KINDS if k.name in names]
    return WatchCache(kube, kinds, clock=clock, page_size=2, **kw)  # type: ignore[arg-type]


def names_in(cache: WatchCache, resource: str) -> list[str]:
    return sorted(o.name for o in cache[resource].values())


def test_first_step_lists_every_page_then_watches() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    for i in range(5):
        kube.put("nodes", node_json(f"n{i}"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    assert names_in(cache, "nodes") == ["n0", "n1", "n2", "n3", "n4"]
    assert cache["nodes"].stale_since is None
    assert kube.list_calls["nodes"] == 3  # five nodes in pages of two
    assert cache["nodes"].synced.is_set()
    assert cache["nodes"].resource_version == str(kube.rv)


def test_watch_events_add_change_and_delete_objects() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    kube.put("nodes", node_json("b"))
    changed = node_json("a", unschedulable=True)
    changed["metadata"]["uid"] = cache["nodes"].get("", "a").uid
    kube.put("nodes", changed)
    kube.remove("nodes", "", "b")
    kube.put("nodes", node_json("c"))
    cache.step("nodes")
    assert names_in(cache, "nodes") == ["a", "c"]
    assert cache["nodes"].get("", "a").unschedulable is True
    assert kube.list_calls["nodes"] == 1  # the second round only watched


def test_gone_resource_version_relists_and_drops_objects_deleted_meanwhile() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    kube.put("nodes", node_json("b"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    kube.remove("nodes", "", "a")
    kube.put("nodes", node_json("d"))
    kube.compact()  # the cache's version is now older than the server's history
    assert cache.step("nodes") == 0.0  # 410: no back-off, list again at once
    assert cache["nodes"].relists == 1
    cache.step("nodes")
    assert names_in(cache, "nodes") == ["b", "d"]
    assert kube.list_calls["nodes"] == 2
    # The first LIST may come from the server's watch cache (version "0"); the one after 410
    # asks for the latest state.
    assert kube.list_versions["nodes"] == ["0", ""]


def test_an_unreachable_server_marks_the_kind_stale_and_backs_off_while_keeping_objects() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock, backoff=lambda: Backoff(initial=1, maximum=8, jitter=0))
    cache.step("nodes")
    kube.down = True
    clock.advance(5)
    delays = [cache.step("nodes") for _ in range(5)]
    assert delays == [1, 2, 4, 8, 8]
    assert cache["nodes"].stale_since == 1005
    assert "kubernetes API server" in (cache["nodes"].error or "")
    assert names_in(cache, "nodes") == ["a"]  # reads keep the last known state
    assert cache.stale_since() == 1005
    assert cache.stale_since(["pods"]) is None


def test_changes_made_while_the_server_was_unreachable_appear_after_it_returns() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    kube.down = True
    cache.step("nodes")
    kube.down = False
    kube.put("nodes", node_json("during-outage"))
    kube.remove("nodes", "", "a")
    clock.advance(30)
    assert cache.step("nodes") == 0.0
    assert names_in(cache, "nodes") == ["during-outage"]
    assert cache["nodes"].stale_since is None
    assert cache["nodes"].reconnects == 1
    assert kube.list_calls["nodes"] == 1  # resumed the watch from its version, no re-list needed


def test_a_full_relist_happens_after_the_resync_period() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock, resync_seconds=600)
    cache.step("nodes")
    clock.advance(599)
    cache.step("nodes")
    assert kube.list_calls["nodes"] == 1
    clock.advance(1)
    cache.step("nodes")
    assert kube.list_calls["nodes"] == 2


def test_bookmarks_move_the_resource_version_without_changing_objects() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    kube.put("pods", pod_json("ns", "unrelated"))  # moves the global version only
    kube.bookmarks = True
    cache.step("nodes")
    assert cache["nodes"].resource_version == str(kube.rv)
    assert names_in(cache, "nodes") == ["a"]


def test_indexes_follow_pods_as_they_move_and_disappear() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    first = kube.put("pods", pod_json("ns", "p", node="n1"))
    cache = make_cache(kube, clock)
    cache.step("pods")
    assert [p.name for p in cache["pods"].by_index("node", "n1")] == ["p"]
    moved = pod_json("ns", "p", node="n2")
    moved["metadata"]["uid"] = first["metadata"]["uid"]
    kube.put("pods", moved)
    cache.step("pods")
    assert cache["pods"].by_index("node", "n1") == []
    assert [p.name for p in cache["pods"].by_index("node", "n2")] == ["p"]
    kube.remove("pods", "ns", "p")
    cache.step("pods")
    assert cache["pods"].by_index("node", "n2") == []
    assert cache["pods"].index_keys("node") == []


def test_a_write_answer_shows_at_once_but_never_replaces_a_newer_cached_object() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock)
    cache.step("nodes")
    store = cache["nodes"]
    parse = store.kind.parse
    newer = node_json("a", unschedulable=True)
    newer["metadata"]["resourceVersion"] = str(kube.rv + 5)
    store.offer(parse(newer))
    assert store.get("", "a").unschedulable is True
    older = node_json("a", unschedulable=False)
    older["metadata"]["resourceVersion"] = str(kube.rv + 1)
    store.offer(parse(older))
    assert store.get("", "a").unschedulable is True


def test_listeners_hear_listed_objects_and_watch_events() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("namespaces", namespace_json("team-a"))
    cache = make_cache(kube, clock, names=("namespaces",))
    heard: list[tuple[str, str]] = []
    cache.subscribe("namespaces", lambda etype, ns: heard.append((etype, ns.name)))
    cache.subscribe("namespaces", lambda etype, ns: 1 / 0)  # a broken listener harms nobody
    cache.step("namespaces")
    kube.remove("namespaces", "", "team-a")
    cache.step("namespaces")
    assert heard == [("ADDED", "team-a"), ("DELETED", "team-a")]


def test_secret_values_never_reach_the_cache_even_if_the_server_sends_them() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("secrets", secret_json("ns", "db", "s3cr3t-VALUE"))
    cache = make_cache(kube, clock, names=("secrets",))
    cache.step("secrets")
    kube.put("secrets", secret_json("ns", "api", "an0ther-VALUE"))
    cache.step("secrets")
    objects = cache["secrets"].values()
    assert sorted(o.name for o in objects) == ["api", "db"]
    dump = repr(objects) + repr([o.to_dict() for o in objects])
    assert "s3cr3t-VALUE" not in dump and "an0ther-VALUE" not in dump
    assert "last-applied-configuration" not in dump
    assert cache["secrets"].kind.metadata_only is True


def test_threads_start_and_stop_cleanly() -> None:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("nodes", node_json("a"))
    cache = make_cache(kube, clock)
    cache.start()
    try:
        assert cache.wait_synced(["nodes", "pods"], timeout=10) == []
        assert cache.running
    finally:
        cache.stop()
    assert not cache.running
