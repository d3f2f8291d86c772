# The README's two commands live here; everything else is ordinary `kubehub` usage.
.PHONY: sandbox test unit down bench soak test-postgres bench-scale e2e-scale

sandbox:
	@scripts/bootstrap.sh
	@.venv/bin/kubehub sandbox up

test:
	@scripts/test.sh

# The whole pytest suite with the state store on the sandbox's PostgreSQL: a fresh database per
# run, a schema per test (scripts/test_postgres.py; docs/operations.md).
test-postgres:
	@scripts/bootstrap.sh
	@.venv/bin/python scripts/test_postgres.py

unit:
	@scripts/bootstrap.sh
	@.venv/bin/pytest -m unit -q

down:
	@.venv/bin/kubehub sandbox down

# Every benchmark's quick run; the soak, the scale run and the alert-to-inbox delay (inbox.py: its
# --quick waits out real alert periods, about 6 minutes) run on their own (minutes, not seconds).
bench:
	@for b in bench/*.py; do [ $$b = bench/soak.py ] || [ $$b = bench/scale.py ] || [ $$b = bench/inbox.py ] || .venv/bin/python $$b --quick || exit 1; done

# 30 minutes of load with etcd, the API server, Prometheus, Elasticsearch and the SMTP catcher
# stopped and restarted in turn, in a private sandbox (docs/operations.md); CI runs 5 minutes.
soak:
	@scripts/bootstrap.sh
	@.venv/bin/python bench/soak.py --minutes 30

# How cost grows (issue 15, docs/scale.md): a private sandbox at 100, 300 and 1,000 nodes in turn
# (port base 25000), each measured, then stopped and reset. About an hour; the large size needs
# ~16 GiB free. Not part of `make test` or CI.
bench-scale:
	@scripts/bootstrap.sh
	@for s in small medium large; do .venv/bin/python bench/scale.py --size $$s || exit 1; done

# The console's tour in Chromium against a scale sandbox's own hub, at most 300 ms of server
# time per page (issue 15, docs/scale.md). The sandbox must be up with its hub, e.g.
#   kubehub sandbox up --dir /tmp/scale --port-base 25000 --nodes 1000 --pods 20000
#   make e2e-scale KUBEHUB_SANDBOX_DIR=/tmp/scale
e2e-scale:
	@test -n "$(KUBEHUB_SANDBOX_DIR)" || { echo "make e2e-scale KUBEHUB_SANDBOX_DIR=<the scale sandbox's directory>"; exit 2; }
	@KUBEHUB_SANDBOX_DIR=$(KUBEHUB_SANDBOX_DIR) KUBEHUB_E2E_HUB=sandbox KUBEHUB_E2E_PAGE_BUDGET_MS=$${KUBEHUB_E2E_PAGE_BUDGET_MS:-300} \
		.venv/bin/pytest -q tests/e2e/test_console_journeys.py -k every_console_page
