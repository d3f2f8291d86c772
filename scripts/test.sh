#!/usr/bin/env bash
# Lint, type-check, layer-check, then the whole test suite: unit, integration (real engines from
# the sandbox, started on demand by the pytest fixture) and e2e (real Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
say() { printf '[test %4ss] %s\n' "$SECONDS" "$*"; }
export PATH="$PWD/.venv/bin:$PATH"
say "ruff"
ruff check hub web sandbox tests bench
ruff format --check hub web sandbox tests bench
say "mypy hub"
mypy
say "import layers"
lint-imports
mkdir -p artifacts
say "pytest (unit, integration, e2e)"
set +e
pytest -p no:cacheprovider --junitxml=artifacts/junit.xml "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $rc
