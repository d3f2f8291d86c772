"""``kubehub sandbox up --replicas N``: the hub's replicas as the sandbox would start them (names,
ports, data directories, lease names, one PostgreSQL database), without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cli import add_arguments
from sandbox.core import Sandbox

pytestmark = pytest.mark.unit


def test_three_replicas_share_postgresql_each_with_its_port_data_dir_and_lease_name(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path / "sb")
    assert sb.hub_replicas() == ["hub"]
    spec = sb._spec_hub()
    assert "KUBEHUB_LEADER_REPLICA_ID" not in spec.env and "KUBEHUB_DATABASE_URL" not in spec.env  # unchanged default
    sb.config.replicas, sb.config.database = 3, "postgresql"
    assert sb.hub_replicas() == ["hub", "hub-2", "hub-3"]
    specs = [sb._spec_hub(n) for n in sb.hub_replicas()]
    ports = [s.ports[0] for s in specs]
    assert ports == [sb.port("hub"), sb.port("hub") + 1, sb.port("hub") + 2]
    assert [s.argv[-1] for s in specs] == [str(p) for p in ports]
    assert {s.env["KUBEHUB_DATABASE_URL"] for s in specs} == {sb.hub_database_url}
    assert [s.env["KUBEHUB_LEADER_REPLICA_ID"] for s in specs] == ["sandbox-hub", "sandbox-hub-2", "sandbox-hub-3"]
    assert len({s.env["KUBEHUB_DATA_DIR"] for s in specs}) == 3  # embedded logs and spool are per process
    assert sb._expected_components()[-3:] == ["hub", "hub-2", "hub-3"]
    assert sb.url_of("hub-3") == f"http://127.0.0.1:{sb.port('hub') + 2}"


def test_the_flag_is_parsed_and_bounded(tmp_path: Path) -> None:
    import argparse

    from sandbox.core import MAX_HUB_REPLICAS, ComponentError

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["up", "--replicas", "3"]).replicas == 3
    assert parser.parse_args(["up"]).replicas is None
    with pytest.raises(ComponentError, match="--replicas"):
        Sandbox(tmp_path / "sb").up(replicas=MAX_HUB_REPLICAS + 1)
