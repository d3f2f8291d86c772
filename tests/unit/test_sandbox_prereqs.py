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


def test_a_second_caller_waits_for_the_build_under_way_and_does_not_build_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """scripts/test.sh builds the engines in the background while the sandbox fixture may ask for
    them too: the second caller waits on the lock, then finds the binaries the first one built."""
    import fcntl
    import threading

    monkeypatch.setenv("KUBEHUB_CACHE_DIR", str(tmp_path / "cache"))
    bin_dir = tmp_path / "gobin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text("#!/bin/sh\n")
    (bin_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    builds: list[list[str]] = []
    monkeypatch.setattr(prereqs, "_build_engines", lambda say, env, missing, log, **kw: builds.append(missing))
    said: list[str] = []
    prereqs.cache_root().mkdir(parents=True)
    with open(prereqs.cache_root() / "engines.lock", "a") as held:  # the build under way
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=prereqs.ensure_engines, args=(said.append,))
        waiter.start()
        for _ in range(200):
            if said:
                break
            threading.Event().wait(0.01)
        assert said and said[0].startswith("waiting for the engines build"), said
        assert waiter.is_alive()
        for name in prereqs.ENGINE_BINARIES:  # what the first build leaves behind
            prereqs.engine(name).parent.mkdir(parents=True, exist_ok=True)
            prereqs.engine(name).write_text("")
        prereqs.kwok_kustomize().mkdir()
        (prereqs.engines_dir() / ".complete").write_text("")
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert builds == []


def test_binaries_without_the_scripts_completion_marker_are_not_taken_for_done(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBEHUB_CACHE_DIR", str(tmp_path))
    for name in prereqs.ENGINE_BINARIES:
        prereqs.engine(name).parent.mkdir(parents=True, exist_ok=True)
        prereqs.engine(name).write_text("")
    prereqs.kwok_kustomize().mkdir()
    assert prereqs._engines_missing() != []
    (prereqs.engines_dir() / ".complete").write_text("")
    assert prereqs._engines_missing() == []


def test_helm_is_built_apart_once_the_sandboxs_engines_are_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sandbox does not wait for helm (only the chart tests run it): ensure_engines never
    builds it, ensure_helm builds it alone after the sandbox's engines."""
    monkeypatch.setenv("KUBEHUB_CACHE_DIR", str(tmp_path / "cache"))
    bin_dir = tmp_path / "gobin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text("#!/bin/sh\n")
    (bin_dir / "go").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert "helm" not in prereqs.ENGINE_BINARIES
    builds: list[tuple[list[str], bool]] = []

    def build(say: object, env: object, missing: list[str], log: Path, *, with_helm: bool) -> None:
        builds.append((missing, with_helm))
        for name in [*prereqs.ENGINE_BINARIES, *(["helm"] if with_helm else [])]:
            prereqs.engine(name).parent.mkdir(parents=True, exist_ok=True)
            prereqs.engine(name).write_text("")
        prereqs.kwok_kustomize().mkdir(exist_ok=True)
        (prereqs.engines_dir() / ".complete").write_text("")

    monkeypatch.setattr(prereqs, "_build_engines", build)
    prereqs.ensure_engines(lambda _: None)
    assert builds == [(list(prereqs.ENGINE_BINARIES), False)]
    assert not prereqs.engine("helm").exists()
    assert prereqs.ensure_helm(lambda _: None) == prereqs.engine("helm")
    assert builds[1:] == [(["helm"], True)]
    prereqs.ensure_helm(lambda _: None)  # cached: no third build
    assert len(builds) == 2
