"""A toy copy of the repository: the project's own Snakefile, profiles and dvc.yaml generator, driven by a
toy registry, toy params and schema, toy steps and a toy package.

Shared by the pipeline tests (`test_pipeline_registry.py`, `test_cluster.py`): the behaviour under test is the
real one (rules, params, profiles, DVC stages), only the work each step does is tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]

TOY_STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "fetch": {"desc": "toy source", "script": "steps/fetch.py", "outs": {"out": "results/fetch/"}},
        "side": {"desc": "toy side input", "script": "steps/side.py", "outs": {"out": "results/side.txt"}},
        "train": {
            "desc": "toy instanced stage",
            "script": "steps/train.py",
            "deps": {"data": "@fetch.out"},
            "outs": {"out": "results/train/{instance}/model.txt"},
            "metrics": {"metrics": "results/train/{instance}/metrics.json"},
            "instances": {"small": {}, "big": {"deps": {"side": "@side.out"}}},
        },
        "report": {
            "desc": "toy downstream",
            "script": "steps/report.py",
            "deps": {"models": "@train.out"},
            "outs": {"out": "results/report.txt"},
        },
    },
}
# A toy package whose import graph the registry must follow: module- and function-level imports,
# package __init__ files, lazy re-exports.
TOY_PACKAGE = {
    "toypkg/__init__.py": "",
    "toypkg/io.py": "import os\n",
    "toypkg/train/__init__.py": (
        "from spsagan._lazy import lazy_exports\n"
        '_LAZY = {"fit": "toypkg.train.loop", "Model": "toypkg.train.model"}\n'
        "__getattr__ = lazy_exports(__name__, _LAZY)\n"
    ),
    "toypkg/train/loop.py": "from toypkg.train.model import Model\nfrom . import schedule\nfit = Model\n",
    "toypkg/train/model.py": "import numpy\nModel = numpy.ndarray\n",
    "toypkg/train/schedule.py": "",
    "toypkg/report.py": "def render():\n    from toypkg.train import Model\n    return Model\n",
}
TOY_IMPORTS = {
    "fetch": "from toypkg.io import *\n",  # io
    "side": "import toypkg\n",  # the package __init__ only
    "train": "from toypkg.train import fit\nimport toypkg.io\n",  # train/__init__, loop, model, schedule, io
    "report": "from toypkg import report\n",  # report, and lazily train/__init__, model
}
# Every toy step writes its params into --out (a folder gets data.txt) and --metrics. Under torchrun
# (`python -m torch.distributed.run`, RANK and WORLD_SIZE set) only rank 0 writes, and it adds the world size.
TOY_STEP = """
import argparse, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--params")
parser.add_argument("--out")
parser.add_argument("--metrics")
args, _ = parser.parse_known_args()
world = int(os.environ.get("WORLD_SIZE", "1"))
values = {**json.loads(args.params), **({"world": world} if world > 1 else {})}
out = args.out
if int(os.environ.get("RANK", "0")) == 0:
    if os.path.isdir(out) or not os.path.splitext(out)[1]:
        os.makedirs(out, exist_ok=True)
        out = os.path.join(out, "data.txt")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as fh:
        fh.write(json.dumps(values, sort_keys=True))
        if out.endswith("model.txt"):  # over Snakemake's default 1 MB checksum limit, like a real model
            fh.write(" " * 2_000_000)
    if args.metrics:
        with open(args.metrics, "w") as fh:
            json.dump(values, fh)
"""


def toy_env(cwd) -> dict:
    # PYTHONPATH: the toy steps import the toy package from the toy repository, the Snakefile this checkout's
    # spsagan; DVC_NO_ANALYTICS: no network.
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}",
    }


def run(cmd, cwd, env=None, timeout=300) -> str:
    """Run a command in the toy repository; fail the test with its output if it fails. Returns stdout+stderr."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or toy_env(cwd), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def planned_jobs(cwd, python=None) -> dict[str, int]:
    """{rule: jobs} that `snakemake -n` would run (without the aggregate `all`)."""
    cmd = [str(python), "-m", "snakemake"] if python else [str(BIN / "snakemake")]
    out = run([*cmd, "-n", "--quiet", "rules"], cwd)
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("all", "total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


def snakemake_jobs(cwd, python=None) -> set[str]:
    """Rules that `snakemake -n` would run (without the aggregate `all`)."""
    return set(planned_jobs(cwd, python))


def dvc_stale(cwd) -> set[str]:
    out = run([str(BIN / "dvc"), "status", "--json"], cwd)
    return set(json.loads(out.strip().splitlines()[-1]))


def toy_params(stages: dict) -> tuple[dict, dict]:
    """Params (demo v=1.0, paper v=2.0 for every stage) and their schema, for a toy registry's stages."""
    params = {"profile": "demo", **{s: {"demo": {"v": 1.0}, "paper": {"v": 2.0}} for s in stages["stages"]}}
    schema = {"stages": {s: {"properties": {"v": {"type": "number"}}} for s in stages["stages"]}}
    return params, schema


def build_toy(
    repo: Path,
    stages: dict = TOY_STAGES,
    params: dict | None = None,
    schema: dict | None = None,
    steps: dict | None = None,
    package: dict | None = None,
    repro: bool = True,
) -> Path:
    """Write a toy repository at `repo`, commit it (git and DVC initialised), and run `dvc repro` once.

    steps: stage -> text put before TOY_STEP in steps/<stage>.py (default TOY_IMPORTS); package: path -> text
    (default TOY_PACKAGE); params/schema: default toy_params(stages).
    """
    default_params, default_schema = toy_params(stages)
    params = default_params if params is None else params
    schema = default_schema if schema is None else schema
    steps = TOY_IMPORTS if steps is None else steps
    package = TOY_PACKAGE if package is None else package
    (repo / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "Snakefile", repo / "workflow" / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "profiles", repo / "workflow" / "profiles")
    shutil.copytree(ROOT / "workflow" / "plots", repo / "workflow" / "plots")  # training-curve template
    for name in (".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / "workflow" / "stages.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    (repo / "workflow" / "schemas" / "params.schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "steps").mkdir()
    for stage in stages["stages"]:
        (repo / "steps" / f"{stage}.py").write_text(steps.get(stage, "") + TOY_STEP)
    for path, text in package.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    run([sys.executable, "-m", "spsagan.pipeline", "write-dvc"], repo)
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], repo)
    commit(repo, "toy")
    if repro:
        run([str(BIN / "dvc"), "repro", "-q"], repo)
    return repo


def commit(repo: Path, message: str) -> None:
    run([*GIT, "add", "-A"], repo)
    run([*GIT, "commit", "-qm", message], repo)


def set_param(repo: Path, stage: str, value, profile: str = "demo", key: str = "v") -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[stage][profile][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
