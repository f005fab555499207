# Two entry points (see README): `make demo` sets up and runs the offline demo pipeline,
# `make test` sets up and runs the test suite. Both reuse .venv once it is built.
# Before a paper run: `make fetch` (where there is internet: the login node), then `make paper`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on CPU-only machines; GPU users may override, e.g. TORCH='torch==2.13.0+cu128'.
TORCH ?= torch==2.13.0
EXTRAS ?=
# The profile whose files `make fetch` and `make preflight` look at.
PROFILE ?= paper

export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo paper fetch preflight dvc-demo pull test test-all lint report plots dry-run rehearsal rehearsal-smoke clean-results FORCE

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

# No --resources: the workflow profile's `gpu_jobs: 1` runs GPU stages one at a time (docs/pipeline.md).
demo: setup
	$(BIN)/snakemake --cores all

paper: setup
	$(BIN)/snakemake --cores all --config profile=paper

# Downloads every file of the profile that can be downloaded (datasets, VGG19, NRQM), verified, then
# prints the preflight table of what is left: the files only a person can download (docs/data.md).
fetch: setup
	$(BIN)/python -m spsagan.pipeline.preflight --fetch --profile $(PROFILE)

# The preflight table alone (the paper profile's Snakemake run prints it too, and stops on a missing file).
preflight: setup
	$(BIN)/python -m spsagan.pipeline.preflight --profile $(PROFILE)

# The paper profile at full size for a few iterations per stage: rates, memory and the paper run's projected
# time on this machine in reports/rehearsal.md (docs/training.md, "Rehearsal").
rehearsal: setup
	$(BIN)/python -m spsagan.pipeline.rehearsal

# The reduced rehearsal (CI): the same code path on crops, 2 crops per batch; fails when a stage breaks.
rehearsal-smoke: setup
	$(BIN)/python -m pytest -m rehearsal tests/test_rehearsal.py

dvc-demo: setup
	$(BIN)/dvc repro

# The team's results for this commit, from the DVC remote (docs/pipeline.md, "Sharing results"): `dvc pull`
# restores them, `dvc status` checks that they match this checkout's code and params, and `snakemake --touch
# --forceall` records them as Snakemake's too (pulled files carry no Snakemake metadata and arrive in no
# particular mtime order), so neither tool reruns anything.
pull: setup
	$(BIN)/dvc pull
	@$(BIN)/dvc status --quiet || { $(BIN)/dvc status; echo "pulled results do not match this checkout"; exit 1; }
	$(BIN)/snakemake --touch --forceall --quiet

report: setup
	mkdir -p reports
	$(BIN)/snakemake --report reports/report.html

# `dvc plots show` (or `make plots DIFF="exp-a exp-b"`: `dvc plots diff`) as a page that works
# offline: DVC's plotting libraries, fetched once from npm into downloads/npm/, are inlined into it.
PLOTS_TEMPLATE := dvc_plots/offline_template.html
plots: setup
	$(BIN)/python -m spsagan.pipeline plots-template --out $(PLOTS_TEMPLATE)
	$(BIN)/dvc plots $(if $(DIFF),diff $(DIFF),show) --html-template $(PLOTS_TEMPLATE)

# What `dvc exp run -S ...` would rerun, without running it: make dry-run S="train_gan.demo.lr_g=2.0e-4"
dry-run: setup
	$(BIN)/python -m spsagan.pipeline dry-run $(foreach s,$(S),-S $(s))

# `make test`: lint and the unit and step tests (a few minutes); `make test-all` adds the slow
# end-to-end tests (the demo pipeline, toy pipelines under DVC/Snakemake/fake SLURM, torchrun). CI runs both.
test: setup lint
	$(BIN)/python -m pytest -m "not slow"

test-all: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-results:
	rm -rf results/*/ reports/table1.* reports/ablation.* reports/figures reports/report.html .snakemake rehearsal
