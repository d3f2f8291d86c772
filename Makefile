# The README's two commands live here; everything else is ordinary `kubehub` usage.
.PHONY: sandbox test unit down bench

sandbox:
	@scripts/bootstrap.sh
	@.venv/bin/kubehub sandbox up

test:
	@scripts/test.sh

unit:
	@scripts/bootstrap.sh
	@.venv/bin/pytest -m unit -q

down:
	@.venv/bin/kubehub sandbox down

bench:
	@for b in bench/*.py; do .venv/bin/python $$b --quick || exit 1; done
