"""A line read back from Elasticsearch answers with the time text the hub wrote, unchanged
(hub/collectors/logs/es_fields.py's fast path), and its seconds are that time; any other stored
form is formatted from the seconds as before. No server needed.

Formatting the parsed seconds again could differ from the stored text by a microsecond after
2038 (a float of epoch seconds then has steps of 0.24 us, and parsing and formatting each round
once); the stored text is the time the line was written with."""

from __future__ import annotations

import random

import pytest

from hub.collectors.logs.elasticsearch import ElasticsearchLogStore
from hub.collectors.logs.store import LogLine, iso_micro

pytestmark = pytest.mark.unit


def _read(store: ElasticsearchLogStore, stamp: object) -> LogLine:
    return store._line({"time": stamp, "namespace": "ns", "pod": "p", "container": "c", "message": "m"})


@pytest.fixture
def store() -> ElasticsearchLogStore:
    return ElasticsearchLogStore("http://127.0.0.1:9", timeout=2.0)


def test_written_stamps_are_kept_and_equal_their_formatted_seconds(store: ElasticsearchLogStore) -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        # microsecond stamps from 1970 to 2100, the edges of a day and of a second included
        micros = rng.choice([0, 999_999, rng.randrange(1_000_000)])
        seconds = rng.randrange(0, 4_102_444_800)
        seconds -= seconds % rng.choice([1, 60, 86_400])
        written = iso_micro(seconds + micros / 1e6)
        line = _read(store, written)
        assert line.stamp == written
        assert abs(line.time - (seconds + micros / 1e6)) < 1e-6
        assert line.to_dict()["time"] == written == line.iso_time()


@pytest.mark.parametrize(
    ("stored", "answered"),
    [
        ("2026-12-05T10:00:00Z", "2026-12-05T10:00:00.000000Z"),  # no fraction
        ("2026-12-05T10:00:00.5+01:00", "2026-12-05T09:00:00.500000Z"),  # an offset
        ("2026-12-05T10:00:00.123456789Z", "2026-12-05T10:00:00.123457Z"),  # nanoseconds
        (1_796_464_800_250, "2026-12-05T10:00:00.250000Z"),  # epoch_millis
        ("2026-02-30T10:00:00.000000Z", "1970-01-01T00:00:00.000000Z"),  # no such day: unreadable
    ],
)
def test_other_stored_forms_are_formatted_from_their_seconds(
    store: ElasticsearchLogStore, stored: object, answered: str
) -> None:
    line = _read(store, stored)
    assert line.stamp == ""
    assert line.to_dict()["time"] == answered


def test_the_stamp_is_not_part_of_a_lines_identity() -> None:
    plain = LogLine(time=1.5, namespace="ns", pod="p", container="c", message="m")
    stamped = LogLine(time=1.5, namespace="ns", pod="p", container="c", message="m", stamp=iso_micro(1.5))
    assert plain == stamped and hash(plain) == hash(stamped)
