"""The Dockerfile's steps without Docker: build the wheel from the files the image copies, install
it into a fresh virtualenv, and run ``kubehub serve`` from there as an unprivileged user with the
image's environment. ``/healthz``, the console's pages and static files, the built-in policy
templates and a login must work with no source tree anywhere on ``sys.path``.

Differences from the image, on purpose: the user is ``nobody`` (the image's ``kubehub`` user does
not exist here; as a non-root tester the current user is used and the test says so), the data
directory is a temporary one instead of ``/data``, and the hub listens on 127.0.0.1 instead of
0.0.0.0 (servers started by tests stay on loopback).

The dependencies' wheels are kept in a wheelhouse under ~/.cache/kubehub keyed by the dependency
list, like the built engines: the first run downloads them from PyPI, later runs install offline.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.config import cache_root
from tests.integration.deploy_support import REPO, image_env

pytestmark = pytest.mark.integration

# What the Dockerfile's build stage copies before `python -m build --wheel`.
IMAGE_SOURCES = ("pyproject.toml", "README.md", "hub", "web", "sandbox", "rules")
PASSWORD = "Image-steps-pass-7"


def _run(argv: list[str], *, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(map(str, argv))}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged() -> tuple[list[str], int, str]:
    """The command prefix that drops to ``nobody`` when running as root, its uid, and who it is."""
    if os.geteuid() != 0:
        return [], os.geteuid(), f"the current user (uid {os.geteuid()}; not root, so no switch)"
    nobody = pwd.getpwnam("nobody")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop to nobody"
    return (
        [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"],
        nobody.pw_uid,
        f"nobody (uid {nobody.pw_uid})",
    )


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: its root is private to root (0700) and nobody must reach the venv.
    path = Path(tempfile.mkdtemp(prefix="kubehub-image-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_wheel_in_a_fresh_virtualenv_serves_as_an_unprivileged_user(workdir: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    # 1. The build stage: the wheel from exactly the files the image copies.
    src = workdir / "src"
    src.mkdir()
    for name in IMAGE_SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    assert (src / "web" / "static" / "vendor").is_dir(), "the console's vendored assets are built by npm first"
    wheels = workdir / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("kubehub-*.whl")
    shutil.rmtree(src)  # no source tree left to fall back on
    timings["wheel"] = time.monotonic() - started

    # 2. The final stage: a fresh environment with only the wheel and its dependencies.
    base_python = getattr(sys, "_base_executable", sys.executable)
    venv = workdir / "venv"
    # Without ensurepip; this interpreter's pip drives the install (--python): seconds saved on 2
    # cores. Byte-compiled as in the image (nobody could not write __pycache__ later, and every
    # start would compile pandas and friends in memory again: slower overall, measured).
    _run([base_python, "-m", "venv", "--without-pip", str(venv)])
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(venv / "bin" / "python")]
    deps = sorted(_run([sys.executable, "-c", _REQUIRES, str(wheel)]).stdout.split("\n"))
    key = hashlib.sha256(("\n".join(deps) + sys.version).encode()).hexdigest()[:12]
    wheelhouse = cache_root() / f"wheelhouse-py{sys.version_info.major}{sys.version_info.minor}-{key}"
    if not (wheelhouse / ".complete").exists():
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheelhouse), str(wheel)], timeout=900)
        for own in wheelhouse.glob("kubehub-*.whl"):  # the dependencies only: kubehub is built each run
            own.unlink()
        (wheelhouse / ".complete").touch()
    _run([*pip, "install", "--quiet", "--no-index", "--find-links", str(wheelhouse), str(wheel)])
    timings["install"] = time.monotonic() - started - timings["wheel"]
    python = venv / "bin" / "python"
    where = _run([str(python), "-c", "import hub, web, sys; print(hub.__file__); print(web.__file__)"], cwd=workdir)
    for line in where.stdout.split():
        assert line.startswith(str(venv / "lib")), where.stdout  # imported from the venv, not a checkout
    assert (venv / "share" / "kubehub" / "rules" / "node-cpu.yaml").exists()

    # 3. Run it as the image does: its environment, an unprivileged user, a data dir it owns.
    prefix, uid, who = _unprivileged()
    data = workdir / "data"
    data.mkdir()
    os.chown(data, uid, -1)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEHUB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(image_env())
    env.update(
        KUBEHUB_DATA_DIR=str(data),
        KUBEHUB_HTTP_HOST="127.0.0.1",
        KUBEHUB_HTTP_PORT=str(port),
        KUBEHUB_KUBERNETES_KUBECONFIG="none",
        KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB="1024",
        KUBEHUB_AUTH_PASSWORD_HASH_TIME_COST="1",
        HOME=str(data),
        KH_PASSWORD=PASSWORD,
    )
    kubehub = str(venv / "bin" / "kubehub")
    _run([*prefix, kubehub, "users", "create-admin", "admin", "--password-env", "KH_PASSWORD"], env=env, cwd=data)
    log = open(workdir / "serve.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*prefix, kubehub, "serve"], env=env, cwd=data, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (workdir / "serve.log").read_text()
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                pass
            assert time.monotonic() < deadline, (workdir / "serve.log").read_text()
            time.sleep(0.2)
        timings["serve"] = time.monotonic() - started - timings["wheel"] - timings["install"]
        status = Path(f"/proc/{proc.pid}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids) == {str(uid)}, uids  # real, effective, saved, fs: all the unprivileged user

        page = requests.get(base + "/login", timeout=10)
        assert page.status_code == 200 and "<form" in page.text  # the console's templates
        assert requests.get(base + "/static/vendor/uPlot.iife.min.js", timeout=10).status_code == 200
        with requests.Session() as s:
            r = s.post(base + "/api/v1/auth/login", json={"username": "admin", "password": "wrong"}, timeout=10)
            assert r.status_code == 401, r.text
            r = s.post(base + "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30)
            assert r.status_code == 200 and r.json()["user"] == "admin", r.text
            me = s.get(base + "/api/v1/me", timeout=10)
            assert me.status_code == 200 and me.json()["user"] == "admin", me.text
            templates = s.get(base + "/api/v1/alerting/templates", timeout=10)
            assert templates.status_code == 200, templates.text
            shipped = {p.stem for p in (REPO / "rules").glob("*.yaml")}
            assert {t["template"] for t in templates.json()["items"]} == shipped
        assert sorted(p.name for p in data.iterdir()) and all(p.stat().st_uid == uid for p in data.iterdir())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    timings["stop"] = time.monotonic() - started - sum(timings.values())
    total = time.monotonic() - started
    print(
        f"\nimage steps as {who}: wheel {timings['wheel']:.1f}s, venv+install {timings['install']:.1f}s, "
        f"serve {timings.get('serve', 0):.1f}s, stop {timings['stop']:.1f}s, total {total:.1f}s"
    )


# The wheel's Requires-Dist lines (what the wheelhouse must hold), read from its METADATA.
_REQUIRES = """
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    lines = z.read(meta).decode().splitlines()
print('\\n'.join(l for l in lines if l.startswith('Requires-Dist:') and 'extra ==' not in l))
"""
