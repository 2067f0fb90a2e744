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
SHOP_TESTS := tests/test_orders.py tests/test_order_actions.py tests/test_order_chat.py tests/test_cart.py \
	tests/test_crm.py tests/test_recommend.py tests/test_identity.py

test: setup model  ## lint, unit, integration, rasa test stories and browser tests; shop tests again on PostgreSQL
	@$(PY) -m ruff check bot actions tests rasa_addons
	@$(PY) -m pytest $(PYTEST_ARGS)
	@echo "== the shop's tests again, on PostgreSQL =="
	@SHOP_TEST_DATABASE=postgres $(PY) -m pytest $(PYTEST_ARGS) $(SHOP_TESTS)

test-postgres: setup model  ## only the shop's tests, on a throwaway PostgreSQL server
	@SHOP_TEST_DATABASE=postgres $(PY) -m pytest $(PYTEST_ARGS) $(SHOP_TESTS)

lint: setup
	@$(PY) -m ruff check bot actions tests rasa_addons

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
