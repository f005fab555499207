# Two entry points (see README): `make demo` sets up and runs the offline demo pipeline,
# `make test` sets up and runs the test suite. Both reuse .venv once it is built.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on CPU-only machines; GPU users may override, e.g. TORCH='torch==2.13.0+cu128'.
TORCH ?= torch==2.13.0
EXTRAS ?=

export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo paper dvc-demo test lint report rehearsal rehearsal-smoke clean-results FORCE

setup: $(VENV)/.installed

# The install choices live in a file that changes only when they do: `make setup EXTRAS=slurm` (or
# another TORCH) on an existing .venv reinstalls, and a repeated command with the same choices does not.
# pip keeps packages already installed, so a later plain `make test` leaves the extras in place.
SETUP_ARGS := TORCH=$(TORCH) EXTRAS=$(EXTRAS)
$(VENV)/.setup-args: FORCE
	@mkdir -p $(VENV)
	@test "$$(cat $@ 2>/dev/null)" = "$(SETUP_ARGS)" || echo "$(SETUP_ARGS)" > $@

$(VENV)/.installed: pyproject.toml $(VENV)/.setup-args
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".$(if $(EXTRAS),[$(EXTRAS)],)"
	touch $@

demo: setup
	$(BIN)/snakemake --cores all --resources gpu=1

paper: setup
	$(BIN)/snakemake --cores all --resources gpu=1 --config profile=paper

# The paper profile at full size for a few iterations per stage: rates, memory and the paper run's projected
# time on this machine in reports/rehearsal.md (docs/training.md, "Rehearsal").
rehearsal: setup
	$(BIN)/python -m spsagan.rehearsal

# The reduced rehearsal (CI): the same code path on crops, 2 crops per batch; fails when a stage breaks.
rehearsal-smoke: setup
	$(BIN)/python -m pytest -m rehearsal tests/test_rehearsal.py

dvc-demo: setup
	$(BIN)/dvc repro

report: setup
	mkdir -p reports
	$(BIN)/snakemake --report reports/report.html

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-results:
	rm -rf results/*/ reports/table1.* reports/ablation.* reports/figures reports/report.html .snakemake rehearsal
