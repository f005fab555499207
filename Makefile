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

.PHONY: setup demo paper dvc-demo test report clean-results

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".$(if $(EXTRAS),[$(EXTRAS)],)"
	touch $@

demo: setup
	$(BIN)/snakemake --cores all --resources gpu=1

paper: setup
	$(BIN)/snakemake --cores all --resources gpu=1 --config profile=paper

dvc-demo: setup
	$(BIN)/dvc repro

report: setup
	mkdir -p reports
	$(BIN)/snakemake --report reports/report.html

test: setup
	$(BIN)/python -m pytest

clean-results:
	rm -rf results/*/ reports/table1.* reports/ablation.* reports/figures reports/report.html .snakemake
