"""The two tools never damage each other's work, and DVC without the environment deletes nothing.

A toy copy of the repository (the project's Snakefile, profiles and registry code; one stage whose
step appends to its outputs while it runs, like dvclive) is used to start `dvc repro` while
Snakemake runs the stage, and to run `dvc repro` with `snakemake` missing from PATH.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "train": {
            "desc": "a step that writes while it runs",
            "script": "steps/train.py",
            "outs": {"out": "results/train/log.txt"},
        }
    },
}
# Appends one line, waits, appends another: a tool that deleted the file in between leaves one line.
STEP = """
import argparse, os, time
parser = argparse.ArgumentParser()
parser.add_argument("--out")
args, _ = parser.parse_known_args()
os.makedirs(os.path.dirname(args.out), exist_ok=True)
with open(args.out, "a") as fh:
    fh.write("start\\n")
time.sleep(float(os.environ.get("TOY_SECONDS", "0")))
with open(args.out, "a") as fh:
    fh.write("end\\n")
"""


def env(path_with_venv: bool = True, **extra) -> dict:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}" if path_with_venv else "/usr/bin:/bin"
    return {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", **extra}


def run(cmd, cwd, check=True, **kw):
    proc = subprocess.run(cmd, cwd=cwd, env=kw.pop("env", env()), capture_output=True, text=True, timeout=300)
    assert not check or proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture()
def toy(tmp_path):
    repo = tmp_path / "toy"
    (repo / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "Snakefile", repo / "workflow" / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "profiles", repo / "workflow" / "profiles")
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")
    (repo / "workflow" / "stages.yaml").write_text(yaml.safe_dump(STAGES))
    schema = {"stages": {"train": {"properties": {"v": {"type": "number"}}}}}
    (repo / "workflow" / "schemas" / "params.schema.yaml").write_text(yaml.safe_dump(schema))
    (repo / "params.yaml").write_text(
        yaml.safe_dump({"profile": "demo", "train": {"demo": {"v": 1.0}, "paper": {"v": 2.0}}})
    )
    (repo / "steps").mkdir()
    (repo / "steps" / "train.py").write_text(STEP)
    (repo / "toypkg").mkdir()
    (repo / "toypkg" / "__init__.py").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run([sys.executable, "-m", "spsagan.pipeline", "write-dvc"], repo)
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", "toy"], repo)
    run([str(BIN / "dvc"), "repro", "-q"], repo)
    return repo


def change_param(repo: Path, value: float) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["demo"]["v"] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_dvc_repro_while_snakemake_runs_stops_before_touching_a_file(toy):
    change_param(toy, 3.0)
    # The job runs long enough for `dvc repro` (and its Snakemake) to start while it runs, even on a busy machine.
    snakemake = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1"],
        cwd=toy,
        env=env(TOY_SECONDS="30"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = toy / "results" / "train" / "log.txt"
    deadline = time.time() + 60
    while not (out.exists() and out.read_text() == "start\n"):  # the job is running
        assert time.time() < deadline and snakemake.poll() is None, snakemake.stdout.read()
        time.sleep(0.1)
    dvc = run([str(BIN / "dvc"), "repro"], toy, check=False)
    during = out.read_text()
    assert snakemake.poll() is None, "the job ended before dvc repro got going: the test proves nothing"
    said = dvc.stdout + dvc.stderr
    assert dvc.returncode != 0 and ("another pipeline run" in said or "cannot be locked" in said), said
    assert during == "start\n"  # DVC deleted nothing of the running job and ran nothing
    assert snakemake.wait(timeout=120) == 0
    assert out.read_text() == "start\nend\n"  # and the job's output is whole


@pytest.mark.slow
def test_dvc_without_the_environment_says_so_and_deletes_nothing(toy):
    before = (toy / "results" / "train" / "log.txt").read_text()
    change_param(toy, 4.0)
    proc = run([str(BIN / "dvc"), "repro"], toy, check=False, env=env(path_with_venv=False))
    assert proc.returncode != 0
    assert "snakemake is not on PATH: activate the environment" in proc.stdout + proc.stderr
    assert (toy / "results" / "train" / "log.txt").read_text() == before  # persist: nothing deleted
    stale = json.loads(run([str(BIN / "dvc"), "status", "--json"], toy).stdout.strip().splitlines()[-1])
    assert set(stale) == {"train"}  # and it still knows what to do once the environment is there
