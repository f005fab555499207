"""The stage registry drives both tools: a params change reruns exactly the affected stages.

Runs the project's own Snakefile, registry code and dvc.yaml generator on a toy copy of the
repository (tiny stages that write their params), so the behaviour under test is the real one.
"""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from spsagan.pipeline.registry import dvc_yaml, dvc_yaml_is_current, load_registry

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TOY_STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "fetch": {"desc": "toy source", "script": "steps/fetch.py", "outs": {"out": "results/fetch/"}},
        "side": {"desc": "toy side input", "script": "steps/side.py", "outs": {"out": "results/side.txt"}},
        "train": {"desc": "toy instanced stage", "script": "steps/train.py",
                  "deps": {"data": "@fetch.out"}, "outs": {"out": "results/train/{instance}/model.txt"},
                  "metrics": {"metrics": "results/train/{instance}/metrics.json"},
                  "instances": {"small": {}, "big": {"deps": {"side": "@side.out"}}}},
        "report": {"desc": "toy downstream", "script": "steps/report.py",
                   "deps": {"models": "@train.out"}, "outs": {"out": "results/report.txt"}},
    },
}
TOY_SCHEMA = {"stages": {name: {"properties": {"v": {"type": "number"}}} for name in TOY_STAGES["stages"]}}
# A toy package whose import graph the registry must follow: module- and function-level imports,
# package __init__ files, lazy re-exports. Each step's closure (in comments) is what the test expects.
TOY_PACKAGE = {
    "toypkg/__init__.py": "",
    "toypkg/io.py": "import os\n",
    "toypkg/train/__init__.py": ("from spsagan._lazy import lazy_exports\n"
                                 '_LAZY = {"fit": "toypkg.train.loop", "Model": "toypkg.train.model"}\n'
                                 "__getattr__ = lazy_exports(__name__, _LAZY)\n"),
    "toypkg/train/loop.py": "from toypkg.train.model import Model\nfrom . import schedule\nfit = Model\n",
    "toypkg/train/model.py": "import numpy\nModel = numpy.ndarray\n",
    "toypkg/train/schedule.py": "",
    "toypkg/report.py": "def render():\n    from toypkg.train import Model\n    return Model\n",
}
TOY_IMPORTS = {
    "fetch": "from toypkg.io import *\n",                      # io
    "side": "import toypkg\n",                                # the package __init__ only
    "train": "from toypkg.train import fit\nimport toypkg.io\n",  # train/__init__, loop, model, schedule, io
    "report": "from toypkg import report\n",                  # report, and lazily train/__init__, model
}
CLOSURES = {
    "fetch": {"__init__.py", "io.py"},
    "side": {"__init__.py"},
    "train": {"__init__.py", "io.py", "train/__init__.py", "train/loop.py", "train/model.py", "train/schedule.py"},
    "report": {"__init__.py", "report.py", "train/__init__.py", "train/model.py"},
}
TOY_STEP = '''
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--params")
parser.add_argument("--out")
parser.add_argument("--metrics")
args, _ = parser.parse_known_args()
out = args.out
if os.path.isdir(out) or not os.path.splitext(out)[1]:
    os.makedirs(out, exist_ok=True)
    out = os.path.join(out, "data.txt")
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as fh:
    fh.write(args.params)
    if out.endswith("model.txt"):  # over Snakemake's default 1 MB checksum limit, like a real model
        fh.write(" " * 2_000_000)
if args.metrics:
    with open(args.metrics, "w") as fh:
        json.dump(json.loads(args.params), fh)
'''


def run(cmd, cwd):
    # PYTHONPATH: the toy steps import the toy package from the toy repository (spsagan is installed)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": str(cwd)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def snakemake_jobs(cwd) -> set[str]:
    """Rules that `snakemake -n` would run (without the aggregate `all`)."""
    out = run([str(BIN / "snakemake"), "-n", "--quiet", "rules"], cwd)
    jobs = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("all", "total", "job"):
            jobs.add(parts[0])
    return jobs


def dvc_stale(cwd) -> set[str]:
    out = run([str(BIN / "dvc"), "status", "--json"], cwd)
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    repo = tmp_path_factory.mktemp("toy")
    (repo / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "Snakefile", repo / "workflow" / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "profiles", repo / "workflow" / "profiles")
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")
    (repo / "workflow" / "stages.yaml").write_text(yaml.safe_dump(TOY_STAGES))
    (repo / "workflow" / "schemas" / "params.schema.yaml").write_text(yaml.safe_dump(TOY_SCHEMA))
    params = {"profile": "demo", **{s: {"demo": {"v": 1.0}, "paper": {"v": 2.0}} for s in TOY_STAGES["stages"]}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "steps").mkdir()
    for stage, imports in TOY_IMPORTS.items():
        (repo / "steps" / f"{stage}.py").write_text(imports + TOY_STEP)
    for path, text in TOY_PACKAGE.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    run([sys.executable, "-m", "spsagan.pipeline", "write-dvc"], repo)
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy"], repo)
    run([str(BIN / "dvc"), "repro", "-q"], repo)
    return repo


def set_param(repo, stage, value, profile="demo"):
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[stage][profile]["v"] = value
    path.write_text(yaml.safe_dump(params))


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
    # A direct Snakemake run is recorded in dvc.lock by `dvc commit`, without rerunning.
    run([str(BIN / "dvc"), "commit", "-f", "-q"], toy)
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
        assert f"--allowed-rules {stage.name}" in body["cmd"]
        assert body["params"] == ["profile", f"{stage.name}.${{profile}}"]


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
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='probe'); "
             "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() "
             "if n.split('.')[0] == 'spsagan' and getattr(m, '__file__', None))))")

    def loaded(stage):
        out = subprocess.run([sys.executable, "-c", probe, stage.script], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=120).stdout.split()
        return stage, {Path(f).resolve().relative_to(ROOT).as_posix() for f in out}

    with ThreadPoolExecutor(max_workers=4) as pool:  # each probe is a fresh interpreter importing torch
        for stage, files in pool.map(loaded, registry):
            assert files <= set(stage.code), f"{stage.name}: imported but not a dependency: {sorted(files - set(stage.code))}"


def test_real_closures_are_tight_where_it_matters():
    """Editing the report renderer never retrains a model; editing the training loop always does."""
    code = {s.name: set(s.code) for s in load_registry(ROOT / "workflow" / "stages.yaml")}
    for stage in ("pretrain_psnr", "train_gan"):
        assert {"spsagan/training/loop.py", "spsagan/training/schedule.py", "spsagan/config.py"} <= code[stage]
        assert not {"spsagan/reports/table1.py", "spsagan/reports/ablation.py", "spsagan/evaluation.py"} & code[stage]
    assert "spsagan/training/gan.py" not in code["pretrain_psnr"]
    assert "spsagan/metrics/niqe_pris_params.npz" in load_registry(ROOT / "workflow" / "stages.yaml").stages[
        "evaluate"].inputs(None)
    for stage in ("download_data", "make_lr"):
        assert not any(c.startswith(("spsagan/training/", "spsagan/models/")) for c in code[stage])
