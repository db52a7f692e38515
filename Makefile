.PHONY: demo test test-fast lint bench-drift bench-serving smoke

demo:            ## install and run the demo (the README's main command)
	./scripts/demo --no-wait

test:            ## install and run every test (the README's test command; CI runs this)
	./scripts/test

test-fast:       ## skip the slow and PostgreSQL tests locally
	./scripts/test -m "not slow and not postgres"

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy driftgate

smoke:           ## the contract smoke check against a fresh server
	PATH=$$PWD/.venv/bin:$$PATH .venv/bin/python ../shared/contract/smoke.py
