#!/usr/bin/env bash
# Builds the console's front-end assets: installs the charting library from the npm registry
# (package-lock.json pins it) and copies its dist files into web/static/vendor, which the hub
# serves itself. Skips the work when the copied files are newer than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
vendor=web/static/vendor/uPlot.iife.min.js
if [ -f "$vendor" ] && [ "$vendor" -nt package-lock.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "kubehub: npm is needed to build the console's chart assets; install nodejs and npm (Debian: apt-get install -y npm)" >&2
  exit 1
fi
printf '[assets] npm ci && npm run build\n'
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
