# relayflow developer commands. `make demo` and `make test` are the two that matter;
# both create .venv through `make install` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*)
# plugins/relayflow-x holds the package relayflow_x
PLUGIN_PACKAGES := $(foreach plugin,$(PLUGINS),$(plugin)/$(subst -,_,$(notdir $(plugin))))
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench bench-cli bench-replicas bench-express bench-schedules bench-bulk bench-retention bench-observability bench-console screenshots soak soak-replicas fuzz clean

install: $(STAMP)

# Runs only when .venv is missing or a pyproject.toml changed (then it says what it does, and
# pip shows its progress); once installed, `make install` prints nothing.
$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> installing relayflow and its plugins ($(notdir $(PLUGINS))) with the dev tools"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]' $(addprefix -e ,$(PLUGINS))
	@touch $(STAMP)
	@echo "==> installed: $(BIN)/relayflow"

demo: install
	$(BIN)/relayflow validate contrib/examples/*.yaml
	$(BIN)/relayflow outline contrib/examples/seed-three-tasks.yaml
	$(BIN)/python contrib/examples/seed_demo.py
	@echo
	@echo "# greeting.yaml: a foreach over the names, a wait and a choice on how many were"
	@echo "# greeted, with no integration installed; its output:"
	$(BIN)/relayflow run contrib/examples/greeting.yaml --input '{"names": ["Ada", "Lin"]}'
	@echo
	@echo "# trip-saga.yaml, on local Function Compute handlers: the airline is busy once, so"
	@echo "# bookFlight's retry books the flight on its 2nd attempt (flightAttempts: 2); the hotel"
	@echo "# is down, so bookHotel's catch (FnF.ALL) goes on to withoutHotel and keeps the flight"
	@echo "# (hotelError, note). With \"hotel\": \"soldout\" its other catch runs the compensation,"
	@echo "# cancelFlight, and the trip fails with TripBookingFailed. Its output:"
	cd contrib/examples/trip && ../../../$(BIN)/relayflow run trip-saga.yaml \
		--config relayflow.toml --input '{"flightBusy": 1, "hotel": "down"}'

lint: install
	$(BIN)/ruff check core plugins tests contrib
	$(BIN)/ruff format --check core plugins tests contrib

# One mypy run over the core and every plugin's package, all strict: a run per plugin would
# analyse the core again each time.
typecheck: install
	$(BIN)/mypy --strict core/relayflow $(PLUGIN_PACKAGES)

# Two pytest-xdist workers, each with its own session servers on free ports; a test file runs
# whole on one worker, so a module's servers start once and its tests keep their order. Most of
# the suite waits on subprocesses, so two workers halve the time even on two cores. A plain
# `pytest` (targeted runs) stays in one process.
TEST_WORKERS ?= 2

unit: install
	$(BIN)/pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile

test: lint typecheck unit

bench: install
	$(BIN)/python contrib/bench/bench_fdl.py
	$(BIN)/python contrib/bench/bench_engine.py all
	$(BIN)/python contrib/bench/bench_api.py
	$(BIN)/python -m pip install --quiet "celery[redis]>=5.3"   # the queue benchmark's reference
	$(BIN)/python contrib/bench/bench_queue.py --count 1000
	$(BIN)/python contrib/bench/bench_cli.py

bench-cli: install
	$(BIN)/python contrib/bench/bench_cli.py

# Scale-out (issue 13): the engine and the seed scenario on a private PostgreSQL that the scripts
# start and remove, 1 to 3 replicas behind contrib/bench/balancer.py with the embedded store as
# the reference, and the takeover time after a SIGKILL; not part of `make bench`.
bench-replicas: install
	$(BIN)/python contrib/bench/bench_engine.py throughput --store pg --rounds 3
	$(BIN)/python contrib/bench/bench_queue.py --store pg --replicas 3 --count 1000
	$(BIN)/python contrib/bench/bench_takeover.py --lease 5 --poll 1

# Express executions (issue 14): StartSyncExecution through the Python API and over HTTP, with
# Standard executions and StartExecution as the references; not part of `make bench`.
bench-express: install
	$(BIN)/python contrib/bench/bench_express.py all --rounds 3

# Schedules (issue 14): 10,000 schedules each firing every minute, the delay from a tick to its
# execution's start (p50/p99) and the engine's CPU; about 6 minutes; not part of `make bench`.
bench-schedules: install
	$(BIN)/python contrib/bench/bench_schedules.py

# Bulk stop and redrive of 10,000 executions (issue 15).
bench-bulk: install
	$(BIN)/python contrib/bench/bench_bulk.py

# ReportTaskSucceeded latency while retention deletes 100,000 ended executions (issue 15).
bench-retention: install
	$(BIN)/python contrib/bench/bench_retention.py

# Issue 16: relayflow-otel (100 % and 10 % sampling, to an OTLP/HTTP sink process) and
# relayflow-prometheus (scraped every second by /usr/bin/prometheus) on and off, taking turns,
# and with the collector down: the engine's throughput and the seed scenario on Redis.
# 5 to 10 minutes; not part of `make bench`.
bench-observability: install
	$(BIN)/python contrib/bench/bench_observability.py all --rounds 3 --modes off,on,on10,down

# Issue 17: the console's execution list and counts on 100,000 executions, SQLite then a
# private PostgreSQL (about 2 minutes each); --executions 1000000 for the larger run.
bench-console: install
	$(BIN)/python contrib/bench/bench_console.py
	$(BIN)/python contrib/bench/bench_console.py --store pg

# The console's screenshots in docs/images/console-*.png, taken by its browser tests.
screenshots: install
	RELAYFLOW_SCREENSHOTS=1 $(BIN)/pytest -q -p no:randomly tests/console/test_console_browser.py

# Longer runs of the crash test and the property-based tests; not part of `make test`.
soak: install
	RELAYFLOW_CRASH_KILLS=40 RELAYFLOW_HYPOTHESIS_EXAMPLES=2000 $(BIN)/pytest -q \
		tests/test_crash.py tests/test_properties.py tests/test_interpreter_stateful.py

# The multi-replica crash test (tests/replicas) with 1,000 executions, three times in a row;
# not part of `make test`.
soak-replicas: install
	for run in 1 2 3; do \
		RELAYFLOW_REPLICAS_EXECUTIONS=1000 $(BIN)/pytest -q tests/replicas || exit 1; \
	done

# Longer fuzzing against a real server (hostile requests and definitions), with new examples
# each run (failures are kept in .hypothesis and tried first next time); not part of `make test`.
fuzz: install
	RELAYFLOW_FUZZ_EXAMPLES=2000 RELAYFLOW_FUZZ_RANDOM=1 RELAYFLOW_HYPOTHESIS_EXAMPLES=2000 \
		$(BIN)/pytest -q tests/test_fuzz_api.py tests/test_definition_budget.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
