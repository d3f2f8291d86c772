#!/usr/bin/env bash
# Installs what kubehub's development, sandbox and tests need, and only what is missing:
# Debian packages (Prometheus, node-exporter, Chromium), a Python venv with the package and its
# dev extras, and the console's front-end assets. Safe to run again: a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[bootstrap %3ss] %s\n' "$SECONDS" "$*"; }

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null || [ -x /usr/bin/prometheus-node-exporter ] || need_apt+=(prometheus-node-exporter)
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
# A CJK font, or the console's Chinese text renders as boxes in the e2e screenshots.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
command -v npm >/dev/null || need_apt+=(npm)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v setpriv >/dev/null || need_apt+=(util-linux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)  # the sandbox's directory (sandbox/ldap.py)
command -v ldapsearch >/dev/null || need_apt+=(ldap-utils)
[ -x /usr/bin/prometheus-alertmanager ] || need_apt+=(prometheus-alertmanager)  # sandbox + hand-off tests
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${need_apt[*]} (first run only)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need_apt[@]}" >/dev/null
  else
    echo "kubehub: missing Debian packages; run: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
fi
# Debian starts node-exporter and Prometheus as system services on install; the sandbox runs
# its own copies on its own ports, so the system ones are left alone.

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.kubehub-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing kubehub and its dev dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
if [ -x scripts/build-assets.sh ]; then
  scripts/build-assets.sh
fi
say "ready"
