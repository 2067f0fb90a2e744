# shop-assistant: `make run` serves the demo shop with the assistant, `make test` runs every test.
SHELL := /bin/bash
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup data model run test test-postgres lint bench bench-nlu compose-check clean

setup:  ## create/refresh both virtualenvs from the lock files (fast when nothing changed)
	@scripts/setup.sh

data: setup  ## database schema, demo catalog and search index (each only when missing or stale)
	@$(PY) -m bot setup-data

model: setup  ## train the Rasa model only when training data or config changed
	@$(PY) -m bot model ensure

run: data model  ## serve the demo shop at http://localhost:8000 (Ctrl-C stops everything)
	@$(PY) -m bot serve

# The shop's modules (orders, cart, CRM, identity, recommendations) run a second time on a real
# PostgreSQL server that the tests start themselves (skipped with a note when PostgreSQL is missing).
SHOP_TESTS := tests/unit/test_orders.py tests/unit/test_order_actions.py tests/integration/test_order_chat.py \
	tests/unit/test_cart.py tests/unit/test_crm.py tests/unit/test_recommend.py tests/integration/test_identity.py

test: setup model  ## lint, then tests/{unit,integration,rasa,browser}; the shop's tests again on PostgreSQL
	@PY=$(PY) scripts/lint.sh
	@$(JS_LINT)
	@$(PY) -m pytest $(PYTEST_ARGS)
	@echo "== the shop's tests again, on PostgreSQL =="
	@SHOP_TEST_DATABASE=postgres $(PY) -m pytest $(PYTEST_ARGS) $(SHOP_TESTS)

test-postgres: setup model  ## only the shop's tests, on a throwaway PostgreSQL server
	@SHOP_TEST_DATABASE=postgres $(PY) -m pytest $(PYTEST_ARGS) $(SHOP_TESTS)

lint: setup  ## ruff and mypy (scripts/lint.sh: 3.11, and 3.10 for what Rasa imports), ESLint (bot/web/static)
	@PY=$(PY) scripts/lint.sh
	@$(JS_LINT)

# ESLint comes from package-lock.json (npm ci), installed again when node_modules is missing or older than the lock.
JS_LINT = $(MAKE) -s --no-print-directory node_modules/.package-lock.json && npx --no-install eslint eslint.config.js bot/web/static
node_modules/.package-lock.json: package.json package-lock.json
	@npm ci --no-audit --no-fund --loglevel=error

bench: data model  ## every benchmark (search, ann, escalation, recommend, nlu, load) -> reports/benchmarks.md; BENCH_SKIP_NLU=1 skips the slow NLU cross-validation
	@$(PY) scripts/benchmarks.py

bench-nlu: setup  ## NLU from scratch: training time, test/informal scores, off-topic recall, parse p50/p95, dev calibration (JSON)
	@$(PY) -m bot bench nlu --calibrate

compose-check:  ## validate docker-compose.yml (needs docker compose or docker-compose); placeholder secrets
	@export POSTGRES_PASSWORD=check SHOP_RASA_TOKEN=check SHOP_ACTIONS_TOKEN=check SHOP_JWT_SECRET=check \
	  SHOP_ALLOWED_ORIGINS=https://shop.example; \
	if docker compose version >/dev/null 2>&1; then docker compose config -q; else docker-compose config -q; fi && echo "docker-compose.yml is valid"

clean:  ## remove generated data and models (keeps the virtualenvs)
	rm -rf var models/rasa models/search results
