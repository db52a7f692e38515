.PHONY: demo test test-fast lint bench-drift bench-serving smoke reliability reliability-quick soak

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

# The reliability suite (docs/reliability.md). The quick form also runs in every `make test` / CI run.
RELIABILITY = .venv/bin/python -m pytest tests/reliability -p no:cacheprovider -q

reliability:     ## the full reliability suite (20 kill -9 runs, ...): figures in build/reliability-figures.json
	$(RELIABILITY) --reliability=full --reliability-report=build/reliability-figures.json

reliability-quick: ## the quick form CI runs (3 kill -9 runs, ...; under 2 minutes)
	$(RELIABILITY) --reliability=quick --reliability-report=build/reliability-figures-quick.json

soak:            ## 30-minute soak under load (SOAK_SECONDS=120 make soak for a short one)
	.venv/bin/python -m pytest tests/reliability/test_soak.py --soak -p no:cacheprovider -q \
		--reliability-report=build/soak-figures.json
