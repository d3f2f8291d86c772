"""What `kubehub sandbox up` says when the machine lacks something it cannot install itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import prereqs
from sandbox.procs import ComponentError

pytestmark = pytest.mark.unit


def test_missing_debian_packages_as_a_regular_user_print_the_exact_apt_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(prereqs, "DEBIAN_PACKAGES", {"prometheus": str(tmp_path / "nope"), "openssl": "/bin/sh"})
    monkeypatch.setattr(prereqs, "find_java_home", lambda: None)
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    with pytest.raises(ComponentError) as err:
        prereqs.ensure_debian_packages(lambda _: None)
    assert "apt-get update && apt-get install -y prometheus openjdk-17-jre-headless" in str(err.value)


def test_nothing_is_installed_when_nothing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereqs, "DEBIAN_PACKAGES", {"sh": "/bin/sh"})
    monkeypatch.setattr(prereqs, "find_java_home", lambda: Path("/usr"))
    said: list[str] = []
    prereqs.ensure_debian_packages(said.append)
    assert said == []


def test_building_engines_without_go_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBEHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no go anywhere on it
    monkeypatch.setattr(prereqs.Path, "exists", lambda self: False)
    with pytest.raises(ComponentError) as err:
        prereqs.ensure_engines(lambda _: None)
    assert "Go is needed" in str(err.value) and "go.dev" in str(err.value)


def test_version_strings_are_found_in_program_output() -> None:
    assert prereqs.binary_version(["echo", "Kubernetes v1.34.4"]) == "v1.34.4"
    assert prereqs.binary_version(["echo", "prometheus, version 2.42.0+ds (branch: debian/sid)"]) == "2.42.0+ds"
    assert prereqs.binary_version(["/nonexistent/binary"]) == "unknown"
