# Two entry points: `make run` (the main job) and `make test`. Both create .venv if missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format bench system-data clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins torch/torchvision to the releases on local disk (pyproject.toml only gives ranges).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist where apt is usable (root); best effort elsewhere:
# `rexnet data fashion-mnist` then falls back to torchvision's download.
system-data:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: dataset-fashion-mnist not installed; the fmnist inputs of the rank study and its real-data test need it"; fi

run: $(STAMP) system-data
	$(BIN)/python experiments/main_study.py

# The whole suite, with the 15 slowest tests listed so its cost stays visible.
test: $(STAMP) system-data
	$(BIN)/python -m pytest -q --durations=15

# The inner loop: everything but the tests marked `slow` (SIGKILL/resume, DDP, dask, end-to-end experiments).
test-fast: $(STAMP) system-data
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

# ruff: lint and format check (config in pyproject.toml); `make format` applies both.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rank.py
	$(BIN)/python benchmarks/bench_model.py

clean-venv:
	rm -rf $(VENV)
