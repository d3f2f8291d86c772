# The README's two commands live here; everything else is ordinary `kubehub` usage.
.PHONY: sandbox test unit down bench soak test-postgres bench-scale

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
