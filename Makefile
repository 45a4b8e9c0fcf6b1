# relayflow developer commands. `make demo` and `make test` are the two that matter;
# both create .venv through `make install` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*)
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench soak fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

demo: install
	$(BIN)/relayflow validate contrib/examples/*.yaml
	$(BIN)/relayflow outline contrib/examples/seed-three-tasks.yaml
	$(BIN)/python contrib/examples/seed_demo.py
	$(BIN)/relayflow run contrib/examples/greeting.yaml --input '{"names": ["Ada", "Lin"]}'
	cd contrib/examples/trip && ../../../$(BIN)/relayflow run trip-saga.yaml \
		--config relayflow.toml --input '{"flightBusy": 1, "hotel": "down"}'

lint: install
	$(BIN)/ruff check core plugins tests contrib
	$(BIN)/ruff format --check core plugins tests contrib

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy --strict plugins/relayflow-fc/relayflow_fc
	$(BIN)/mypy --strict plugins/relayflow-mns/relayflow_mns
	$(BIN)/mypy --strict plugins/relayflow-http/relayflow_http
	$(BIN)/mypy --strict plugins/relayflow-sql/relayflow_sql

unit: install
	$(BIN)/pytest -q

test: lint typecheck unit

bench: install
	$(BIN)/python contrib/bench/bench_fdl.py
	$(BIN)/python contrib/bench/bench_engine.py all
	$(BIN)/python contrib/bench/bench_api.py
	$(BIN)/python -m pip install --quiet "celery[redis]>=5.3"   # the queue benchmark's reference
	$(BIN)/python contrib/bench/bench_queue.py --count 1000

# Longer runs of the crash test and the property-based tests; not part of `make test`.
soak: install
	RELAYFLOW_CRASH_KILLS=40 RELAYFLOW_HYPOTHESIS_EXAMPLES=2000 $(BIN)/pytest -q \
		tests/test_crash.py tests/test_properties.py tests/test_interpreter_stateful.py

# Longer fuzzing against a real server (hostile requests and definitions), with new examples
# each run (failures are kept in .hypothesis and tried first next time); not part of `make test`.
fuzz: install
	RELAYFLOW_FUZZ_EXAMPLES=2000 RELAYFLOW_FUZZ_RANDOM=1 RELAYFLOW_HYPOTHESIS_EXAMPLES=2000 \
		$(BIN)/pytest -q tests/test_fuzz_api.py tests/test_definition_budget.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
