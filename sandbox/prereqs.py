"""Everything the sandbox needs on the machine before it starts a process.

Go engines are built from the Go module proxy by ``engines/build-go-engines.sh`` into a cache
keyed by version; Debian packages (Prometheus, node-exporter, a JDK, Maven) are installed with
apt when missing (as root; otherwise the exact command is printed); Elasticsearch's integ-test
zip comes from Maven Central through ``mvn dependency:get``. Each step reports progress, because
a cold machine spends minutes here.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.config import (
    ES_VERSION,
    ETCD_VERSION,
    HELM_VERSION,
    K8S_VERSION,
    KSM_VERSION,
    KWOK_VERSION,
    cache_root,
    engines_dir,
)
from sandbox.procs import ComponentError

# What the sandbox runs. Helm runs only in the chart tests (tests/integration/deploy_support.py):
# ensure_helm builds it apart, so that a cold machine's sandbox need not wait for its ~4 CPU-minutes.
ENGINE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    "kwok",
    "kube-state-metrics",
)
ES_USER = "kubehub"

Say = Callable[[str], None]


def engine(name: str) -> Path:
    return engines_dir() / "bin" / name


def kwok_kustomize() -> Path:
    return engines_dir() / "kwok-kustomize"


def _engines_missing() -> list[str]:
    """The engine binaries not yet built; all present but no ``.complete`` marker (the script's
    last step) counts as unfinished, so a build still under way is never taken for done."""
    missing = [b for b in ENGINE_BINARIES if not engine(b).exists()]
    if not missing and not (kwok_kustomize().exists() and (engines_dir() / ".complete").exists()):
        return ["kwok-kustomize"]
    return missing


def ensure_engines(say: Say) -> None:
    """Build whichever Go engine the sandbox runs is missing; the script skips the ones cached.

    One build at a time per cache, under a file lock: ``scripts/test.sh`` starts the build in
    the background at the start of a full run, so that a cold machine's minutes of compiling
    overlap the lint and the unit tests; the sandbox fixture's call then waits for that build
    and finds its binaries, instead of starting a second build beside it.
    """
    missing = _engines_missing()
    if not missing:
        return
    env = _go_env(missing)
    with _build_lock("engines", say):
        missing = _engines_missing()
        if missing:
            _build_engines(say, env, missing, cache_root() / "engines-build.log", with_helm=False)


def ensure_helm(say: Say) -> Path:
    """The helm binary, built by the same script once the sandbox's engines are there (under a
    lock of its own, so a caller waits for a build of it under way rather than racing it)."""
    path = engine("helm")
    if path.exists():
        return path
    ensure_engines(say)
    env = _go_env(["helm"])
    with _build_lock("helm", say):
        if not path.exists():
            _build_engines(say, env, ["helm"], cache_root() / "helm-build.log", with_helm=True)
    return path


def _go_env(missing: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    if not shutil.which("go") and Path("/usr/local/go/bin/go").exists():
        env["PATH"] = "/usr/local/go/bin" + os.pathsep + env.get("PATH", "")  # the go.dev tarball's place
    if not shutil.which("go", path=env.get("PATH")):
        raise ComponentError(
            "engines",
            f"Go is needed to build {', '.join(missing)} (install Go >= 1.24 from https://go.dev/dl or "
            "`apt-get install golang-go`, then run `kubehub sandbox up` again)",
        )
    return env


@contextmanager
def _build_lock(what: str, say: Say) -> Iterator[None]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / f"{what}.lock", "a", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for the {what} build another process runs (its log: {cache_root() / what}-build.log)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_engines(say: Say, env: dict[str, str], missing: list[str], log: Path, *, with_helm: bool) -> None:
    say(f"building Go engines {', '.join(missing)} into {engines_dir()} (cold: ~6 min on a quiet 2-core machine)")
    script = Path(__file__).parent / "engines" / "build-go-engines.sh"
    argv = ["bash", str(script), str(engines_dir()), K8S_VERSION, ETCD_VERSION, KWOK_VERSION, KSM_VERSION]
    if with_helm:
        argv.append(HELM_VERSION)
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stderr is not None
        for line in proc.stderr:
            out.write(line)
            out.flush()
            if line.startswith("[build]"):
                say(line[len("[build] ") :].rstrip())
        rc = proc.wait()
    if rc != 0:
        raise ComponentError("engines", f"building the Go engines failed (exit {rc})", log)


# Debian package -> a file that shows it is installed.
DEBIAN_PACKAGES: dict[str, str] = {
    "prometheus": "/usr/bin/prometheus",
    "prometheus-node-exporter": "/usr/bin/prometheus-node-exporter",
    "openssl": "/usr/bin/openssl",
    "maven": "/usr/bin/mvn",
    "slapd": "/usr/sbin/slapd",  # the sandbox's directory (sandbox/ldap.py)
    "ldap-utils": "/usr/bin/ldapsearch",
}


def find_java_home() -> Path | None:
    """A JDK >= 17 for Elasticsearch 8: JAVA_HOME, else the newest under /usr/lib/jvm that is 17..24."""
    candidates: list[Path] = []
    if os.environ.get("ES_JAVA_HOME"):
        candidates.append(Path(os.environ["ES_JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        # Elasticsearch 8.19 supports Java 17..24; Debian's openjdk-17/21 are the usual ones here.
        for major in (21, 17):
            candidates.extend(sorted(jvm.glob(f"java-{major}-openjdk-*")))
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    for c in candidates:
        if (c / "bin" / "java").exists() and not c.is_symlink():
            return c
    for c in candidates:
        if (c / "bin" / "java").exists():
            return c
    return None


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server's bin directory (``initdb``, ``postgres``), if any.

    Debian installs each major version under /usr/lib/postgresql/<major>/bin, off the PATH.
    """
    root = Path("/usr/lib/postgresql")
    found = [d / "bin" for d in root.glob("*") if (d / "bin" / "initdb").exists() and (d / "bin" / "postgres").exists()]
    found.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    return found[-1] if found else None


def postgres_version() -> str:
    """The installed server's version ("15.18"), from ``postgres --version``."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        return "unknown"
    try:
        out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    found = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)*)", out.stdout)  # "postgres (PostgreSQL) 15.18 (Debian ...)"
    return found.group(1) if found else "unknown"


def ensure_debian_packages(say: Say) -> None:
    missing = [pkg for pkg, marker in DEBIAN_PACKAGES.items() if not Path(marker).exists()]
    if find_java_home() is None:
        missing.append("openjdk-17-jre-headless")
    if postgres_bin() is None:
        missing.append("postgresql")
    if not missing:
        return
    command = "apt-get update && apt-get install -y " + " ".join(missing)
    if os.geteuid() != 0:
        raise ComponentError("packages", f"missing Debian packages {', '.join(missing)}; run as root: {command}")
    say(f"installing Debian packages: {', '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = cache_root() / "apt.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
            say("  " + " ".join(argv))
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
            if rc != 0:
                raise ComponentError("packages", f"`{' '.join(argv)}` failed (exit {rc})", log)
    # Debian's packages start their own services; the sandbox runs its own copies on its ports
    # (PostgreSQL's system cluster on 5432 too: the sandbox never uses it).
    units = ["postgresql"] if "postgresql" in missing else []
    units += ["slapd"] if "slapd" in missing else []
    for unit in ("prometheus", "prometheus-node-exporter", *units):
        if shutil.which("systemctl"):
            subprocess.run(["systemctl", "disable", "--now", unit], capture_output=True, check=False)


def es_home() -> Path:
    """Where the Elasticsearch distribution is unpacked.

    Elasticsearch refuses to run as root, so as root it runs as the system user ``kubehub``,
    which cannot enter /root: the distribution then lives under /var/cache/kubehub.
    """
    if os.geteuid() == 0 and not _traversable_by_others(cache_root()):
        return Path("/var/cache/kubehub") / f"elasticsearch-{ES_VERSION}"
    return cache_root() / f"elasticsearch-{ES_VERSION}"


def _traversable_by_others(path: Path) -> bool:
    p = path.resolve()
    return all(not (parent.exists() and not parent.stat().st_mode & 1) for parent in [p, *p.parents])


def es_runs_as() -> str | None:
    return ES_USER if os.geteuid() == 0 else None


def ensure_es_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(ES_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER],
            check=True,
            capture_output=True,
        )


def ensure_elasticsearch(say: Say) -> Path:
    home = es_home()
    if (home / "bin" / "elasticsearch").exists():
        return home
    rel = Path(
        "org/elasticsearch/distribution/integ-test-zip/elasticsearch", ES_VERSION, f"elasticsearch-{ES_VERSION}.zip"
    )
    m2 = cache_root() / "m2"  # Maven's local repository for the sandbox, kept with the other caches
    zip_path = m2 / rel
    user_m2 = Path.home() / ".m2" / "repository" / rel
    if not zip_path.exists() and user_m2.exists():
        zip_path = user_m2  # already downloaded by Maven for this user: no need to fetch it again
    if not zip_path.exists():
        say(f"downloading Elasticsearch {ES_VERSION} (integ-test-zip, ~90 MB) from Maven Central")
        argv = [
            "mvn", "-q", "-B", "dependency:get",
            f"-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip",
            "-Dtransitive=false",
            f"-Dmaven.repo.local={m2}",
        ]  # fmt: skip
        log = cache_root() / "elasticsearch-download.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as out:
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        if rc != 0 or not zip_path.exists():
            raise ComponentError("elasticsearch", f"downloading the Elasticsearch zip failed (exit {rc})", log)
    say(f"unpacking Elasticsearch into {home}")
    tmp = home.with_name(home.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = zf.extract(info, tmp)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
    inner = tmp / f"elasticsearch-{ES_VERSION}"
    shutil.rmtree(home, ignore_errors=True)
    inner.rename(home)
    shutil.rmtree(tmp, ignore_errors=True)
    for d in [home, *home.parents]:
        if d == Path("/"):
            break
        if os.geteuid() == 0 and str(d).startswith("/var/cache/kubehub"):
            d.chmod(0o755)
    return home


def prometheus_version() -> str:
    out = subprocess.run(["prometheus", "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).split()
    return text[2] if len(text) > 2 else "unknown"


def binary_version(argv: list[str]) -> str:
    """First token that looks like a version in a program's version output."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for tok in (out.stdout + " " + out.stderr).replace(",", " ").split():
        t = tok.strip("()")
        if t[:1] == "v" and t[1:2].isdigit():
            return t
        if t[:1].isdigit() and t.count(".") >= 2:
            return t
    return "unknown"
