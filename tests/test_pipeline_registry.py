"""The stage registry drives both tools: a params change reruns exactly the affected stages.

Runs the project's own Snakefile, registry code and dvc.yaml generator on a toy copy of the
repository (tiny stages that write their params), so the behaviour under test is the real one.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spsagan.pipeline.registry import dvc_yaml, dvc_yaml_is_current, load_registry

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TOY_STAGES = {
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "fetch": {"desc": "toy source", "script": "steps/toy.py", "args": "--out results/fetch/",
                  "outs": ["results/fetch/"]},
        "side": {"desc": "toy side input", "script": "steps/toy.py", "args": "--out results/side.txt",
                 "outs": ["results/side.txt"]},
        "train": {"desc": "toy instanced stage", "script": "steps/toy.py",
                  "args": "--out results/train/{instance}/model.txt",
                  "deps": ["results/fetch/"], "outs": ["results/train/{instance}/model.txt"],
                  "metrics": ["results/train/{instance}/metrics.json"],
                  "instances": {"small": {}, "big": {"deps": ["results/side.txt"]}}},
        "report": {"desc": "toy downstream", "script": "steps/toy.py", "args": "--out results/report.txt",
                   "deps": ["results/train/small/model.txt", "results/train/big/model.txt"],
                   "outs": ["results/report.txt"]},
    },
}
TOY_SCHEMA = {"stages": {name: {"properties": {"v": {"type": "number"}}} for name in TOY_STAGES["stages"]}}
TOY_STEP = '''
import argparse, json, os
parser = argparse.ArgumentParser()
for flag in ("--params", "--profile", "--out"):
    parser.add_argument(flag)
args = parser.parse_args()
out = args.out
if out.endswith("/"):
    os.makedirs(out, exist_ok=True)
    out = os.path.join(out, "data.txt")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    fh.write(args.params)
    if out.endswith("model.txt"):  # over Snakemake's default 1 MB checksum limit, like a real model
        fh.write(" " * 2_000_000)
if out.endswith("model.txt"):
    with open(os.path.join(os.path.dirname(out), "metrics.json"), "w") as fh:
        json.dump(json.loads(args.params), fh)
'''


def run(cmd, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
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
    (repo / "steps" / "toy.py").write_text(TOY_STEP)
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
