"""The stage registry drives both tools: a params change reruns exactly the affected stages.

Runs the project's own Snakefile, registry code and dvc.yaml generator on a toy copy of the
repository (tiny stages that write their params), so the behaviour under test is the real one.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from toy_pipeline import BIN, ROOT, TOY_STAGES, build_toy, dvc_stale, run, set_param, snakemake_jobs

from spsagan.pipeline.registry import dvc_yaml, dvc_yaml_is_current, load_registry

# What each toy step imports from the toy package (tests/toy_pipeline.py: TOY_IMPORTS): its expected closure.
CLOSURES = {
    "fetch": {"__init__.py", "io.py"},
    "side": {"__init__.py"},
    "train": {"__init__.py", "io.py", "train/__init__.py", "train/loop.py", "train/model.py", "train/schedule.py"},
    "report": {"__init__.py", "report.py", "train/__init__.py", "train/model.py"},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("toy"))


@pytest.mark.slow
def test_both_tools_agree_on_what_a_params_change_reruns(toy):
    assert snakemake_jobs(toy) == set()
    assert dvc_stale(toy) == set()

    set_param(toy, "train", 5.0)
    # Snakemake names the changed stage and everything downstream of it, nothing upstream.
    assert snakemake_jobs(toy) == {"train", "report"}
    # DVC names the changed stage (each instance); downstream stages follow once it reran.
    assert dvc_stale(toy) == {"train@small", "train@big"}

    log = run([str(BIN / "dvc"), "repro"], toy)
    assert "Running stage 'report'" in log and "Running stage 'fetch'" not in log
    assert json.loads((toy / "results/train/big/metrics.json").read_text()) == {"v": 5.0}
    assert snakemake_jobs(toy) == set()
    assert dvc_stale(toy) == set()


@pytest.mark.slow
def test_other_profile_and_other_stage_do_not_rerun(toy):
    set_param(toy, "train", 9.0, profile="paper")  # not the active profile
    assert snakemake_jobs(toy) == set()
    assert dvc_stale(toy) == set()

    set_param(toy, "side", 3.0)  # only the instance that reads `side` is downstream of it
    assert snakemake_jobs(toy) == {"side", "train", "report"}
    run([str(BIN / "snakemake"), "--cores", "1"], toy)
    # A direct Snakemake run records itself in dvc.lock (`onsuccess`: dvc commit -f), without rerunning.
    assert dvc_stale(toy) == set()
    assert snakemake_jobs(toy) == set()


def test_committed_dvc_yaml_is_current():
    registry = load_registry(ROOT / "workflow" / "stages.yaml")
    assert dvc_yaml_is_current(registry, ROOT / "dvc.yaml"), "run `python -m spsagan.pipeline write-dvc`"


def test_dvc_yaml_names_every_registry_stage():
    registry = load_registry(ROOT / "workflow" / "stages.yaml")
    rendered = yaml.safe_load(dvc_yaml(registry))["stages"]
    assert list(rendered) == list(registry.stages)
    for stage in registry:
        body = rendered[stage.name].get("do", rendered[stage.name])
        assert f"--allowed-rules {stage.name}" in body["cmd"] and "--resources" not in body["cmd"]
        # The computing keys one by one, never the runtime keys (they rerun nothing).
        # A seeded stage's seed is in its instance names, so its list of seeds is not hashed.
        keys = [k for k in registry.hashed_keys(stage.name) if not (stage.per_seed and k == "seeds")]
        hashed = [f"{stage.name}.${{profile}}.{key}" for key in keys]
        # A reader of every run of a seeded stage (evaluate, render_reports) also depends on its seeds.
        readers = dict.fromkeys(d.label.split("/")[0] for deps in stage.deps.values() for d in deps if d.label)
        seeds = [f"{name}.${{profile}}.seeds" for name in readers if registry.stages[name].per_seed]
        assert body["params"] == ["profile", *hashed, *seeds]
        assert bool(seeds) == (stage.name in ("evaluate", "render_reports")), stage.name
        assert not any(p.endswith((".gpus", ".workers", ".log_every")) for p in body["params"]), body["params"]


# --------------------------------------------------------------------------------------------------
# Code dependencies: derived from imports, honoured by both tools


def dvc_stages(names: set[str]) -> set[str]:
    """DVC's names for registry stages: an instanced stage is one DVC stage per instance."""
    instances = {s: list(spec.get("instances", {})) for s, spec in TOY_STAGES["stages"].items()}
    return {f"{s}@{i}" for s in names for i in instances[s]} | {s for s in names if not instances[s]}


DOWNSTREAM = {"fetch": {"train", "report"}, "side": {"train", "report"}, "train": {"report"}, "report": set()}


def test_toy_closures_follow_every_kind_of_import(toy):
    registry = load_registry(toy / "workflow" / "stages.yaml")
    for stage in registry:
        assert {Path(c).relative_to("toypkg").as_posix() for c in stage.code} == CLOSURES[stage.name], stage.name


@pytest.mark.slow
@pytest.mark.parametrize("module", ["train/schedule.py", "report.py"])
def test_editing_a_module_reruns_exactly_the_stages_that_import_it(toy, module):
    affected = {s for s, files in CLOSURES.items() if module in files}
    path = toy / "toypkg" / module
    original = path.read_text()
    path.write_text(original + "# an edit\n")
    try:
        assert snakemake_jobs(toy) == affected | {d for s in affected for d in DOWNSTREAM[s]}
        assert dvc_stale(toy) == dvc_stages(affected)
    finally:
        path.write_text(original)  # same content again: neither tool reruns (both compare content)
    assert snakemake_jobs(toy) == set()
    assert dvc_stale(toy) == set()


def test_real_closures_cover_every_module_a_step_imports():
    """An independent check of the AST closure: importing a step (module level, as Python does) loads no
    project module outside its derived dependencies."""
    registry = load_registry(ROOT / "workflow" / "stages.yaml")
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='probe'); "
        "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] == 'spsagan' and getattr(m, '__file__', None))))"
    )

    def loaded(stage):
        out = subprocess.run(
            [sys.executable, "-c", probe, stage.script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.split()
        return stage, {Path(f).resolve().relative_to(ROOT).as_posix() for f in out}

    with ThreadPoolExecutor(max_workers=4) as pool:  # each probe is a fresh interpreter importing torch
        for stage, files in pool.map(loaded, registry):
            missing = sorted(files - set(stage.code))
            assert not missing, f"{stage.name}: imported but not a dependency: {missing}"


def test_real_closures_are_tight_where_it_matters():
    """Editing the report renderer never retrains a model; editing the training loop always does."""
    code = {s.name: set(s.code) for s in load_registry(ROOT / "workflow" / "stages.yaml")}
    for stage in ("pretrain_psnr", "train_gan"):
        assert {"spsagan/training/loop.py", "spsagan/training/schedule.py", "spsagan/config.py"} <= code[stage]
        assert not {"spsagan/reports/table1.py", "spsagan/reports/ablation.py", "spsagan/evaluation.py"} & code[stage]
    assert "spsagan/training/gan.py" not in code["pretrain_psnr"]
    assert "spsagan/metrics/niqe_pris_params.npz" in load_registry(ROOT / "workflow" / "stages.yaml").stages[
        "evaluate"
    ].inputs(None)
    for stage in ("download_data", "make_lr"):
        assert not any(c.startswith(("spsagan/training/", "spsagan/models/")) for c in code[stage])
