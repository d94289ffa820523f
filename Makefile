# The two commands of the README:
#   make demo   set up, then run the whole pipeline on the embedded stack
#   make test   set up (with the train and dev extras), then run the test suite
.PHONY: demo test setup setup-dev lint typecheck bench clean stack-up stack-down

VENV := .venv/bin

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh train,dev

demo: setup
	$(VENV)/sentimon demo

test: setup-dev
	$(VENV)/ruff check .
	$(VENV)/python -m pytest --durations=15

lint:
	$(VENV)/ruff check .

typecheck:
	$(VENV)/mypy sentimon ingest model monitor alerts deploy benchmarks tests/conftest.py

bench:
	$(VENV)/python -m benchmarks.model_bench --json-out benchmarks/results/model.json
	$(VENV)/python -m benchmarks.e2e_bench --json-out benchmarks/results/e2e.json
	$(VENV)/python -m benchmarks.spin_bench --json-out benchmarks/results/spin.json
	$(VENV)/python -m benchmarks.op_profile --json-out benchmarks/results/op_profile.json

stack-up:
	$(VENV)/sentimon stack up

stack-down:
	$(VENV)/sentimon stack down

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
