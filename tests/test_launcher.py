"""One launcher (`spsagan.pipeline.launch`): every path starts a job the same way, runtime keys rerun nothing,
`snakemake -n` plans the paper profile without its data, and a Snakemake run leaves `dvc status` clean.

The toy checks run the project's own Snakefile and dvc.yaml generator on a toy copy of the repository
(tests/toy_pipeline.py) whose `pretrain_psnr` stage has the real params section, with `gpus: 2`: on the
CPU, torchrun starts two processes (gloo needs no GPU; the toy step only reads RANK and WORLD_SIZE).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from toy_pipeline import BIN, ROOT, build_toy, dvc_stale, run, snakemake_jobs, toy_env

from spsagan.pipeline import launch
from spsagan.pipeline.registry import load_registry
from spsagan.pipeline.rehearsal.runner import link_project, read_results, run_snakemake, write_params

DVC, SNAKEMAKE = str(BIN / "dvc"), str(BIN / "snakemake")

LAUNCH_STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "fetch": {"desc": "toy source", "script": "steps/fetch.py", "outs": {"out": "results/fetch/"}},
        "pretrain_psnr": {
            "desc": "toy training stage with the real params section",
            "script": "steps/pretrain_psnr.py",
            "deps": {"data": "@fetch.out"},
            "outs": {"out": "results/pretrain_psnr/model.txt"},
            "gpu": 1,
            "threads": 2,
        },
        "report": {
            "desc": "toy downstream",
            "script": "steps/report.py",
            "deps": {"models": "@pretrain_psnr.out"},
            "outs": {"out": "results/report.txt"},
        },
    },
}
# Each process of the toy training step leaves what the launcher gave it (rank, world, threads, signals).
ENV_PROBE = """
import json, os
rank = os.environ.get("RANK", "0")
os.makedirs("results/launched", exist_ok=True)
keys = ("WORLD_SIZE", "OMP_NUM_THREADS", "TORCHELASTIC_SIGNALS_TO_HANDLE")
with open(f"results/launched/rank{rank}.json", "w") as fh:
    json.dump({k: os.environ.get(k) for k in keys}, fh)
"""


def toy_params(gpus: int = 2) -> tuple[dict, dict]:
    real = yaml.safe_load((ROOT / "params.yaml").read_text())
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())["stages"]
    toy = {"demo": {"v": 1.0}, "paper": {"v": 2.0}}
    section = {"demo": {**real["pretrain_psnr"]["demo"], "gpus": gpus}, "paper": real["pretrain_psnr"]["paper"]}
    params = {"profile": "demo", "fetch": toy, "pretrain_psnr": section, "report": toy}
    toy_schema = {"properties": {"v": {"type": "number"}}}
    return params, {"stages": {"fetch": toy_schema, "pretrain_psnr": schema["pretrain_psnr"], "report": toy_schema}}


def set_key(repo: Path, key: str, value) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["pretrain_psnr"]["demo"][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def launched(repo: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((repo / "results/launched").glob("rank*.json"))}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    params, schema = toy_params()
    repo = build_toy(
        tmp_path_factory.mktemp("launch") / "toy",
        LAUNCH_STAGES,
        params=params,
        schema=schema,
        steps={"pretrain_psnr": ENV_PROBE},
        repro=False,
    )
    return repo


# --------------------------------------------------------------------------------------------------
# The command, unit by unit


def test_above_one_gpu_the_step_runs_under_torchrun_with_sigusr1_forwarded():
    argv, env = launch.command("steps/train_gan.py", ["--params", "{}"], gpus=2, threads=8)
    assert argv[1:5] == ["-m", "spsagan.training.torchrun", "--standalone", "--nproc_per_node=2"]
    assert argv[5:] == ["steps/train_gan.py", "--params", "{}"]
    assert "SIGUSR1" in env["TORCHELASTIC_SIGNALS_TO_HANDLE"].split(",")
    assert env["PET_SIGNALS_TO_HANDLE"] == env["TORCHELASTIC_SIGNALS_TO_HANDLE"]  # torchrun's flag, by env
    assert set(launch.TORCHRUN_SIGNALS.split(",")) == {"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1"}
    assert env["OMP_NUM_THREADS"] == "4"  # the job's threads, shared by its processes
    argv, env = launch.command("steps/train_gan.py", [], gpus=1, threads=4)
    assert argv == [sys.executable, "steps/train_gan.py"] and "TORCHELASTIC_SIGNALS_TO_HANDLE" not in env
    # The rehearsal's records: every rank runs the probe module (torchrun's -m), rank 0 writes.
    argv, _ = launch.command("steps/x.py", [], gpus=2, threads=1, record=Path("r.json"))
    assert argv[5:9] == ["-m", "spsagan.pipeline.rehearsal.probe", "r.json", "steps/x.py"]


def test_runtime_keys_join_the_params_at_run_time_only():
    computing, runtime = launch.split_section("train_gan", {"iters": 5, "gpus": 2, "workers": 4, "log_every": 9})
    assert computing == {"iters": 5} and runtime == {"gpus": 2, "workers": 4, "log_every": 9}
    args = launch.with_runtime(["--params", json.dumps(computing), "--out", "x"], runtime)
    assert json.loads(args[1]) == {"iters": 5, "gpus": 2, "workers": 4, "log_every": 9} and args[2:] == ["--out", "x"]
    assert launch.with_runtime(["--params", "params.yaml"], runtime) == ["--params", "params.yaml"]
    stage = load_registry(ROOT / "workflow/stages.yaml").stages["train_gan"]
    # The template names the runtime keys and the GPUs, never their values: Snakemake hashes the template.
    assert "--runtime {params.runtime:q}" in launch.SHELL and "--gpus {resources.gpu}" in launch.SHELL
    assert not any(ch.isdigit() for ch in launch.SHELL.replace("2>&1", ""))
    assert launch.job_name(stage, "spsa") == "train_gan/spsa"
    assert launch.resources(stage, {"gpus": 4}) == {"gpu": 4, "gpu_jobs": 1, "runtime": 4320, "mem_mb": 4000}


# --------------------------------------------------------------------------------------------------
# The toy pipeline: Snakemake and DVC


@pytest.mark.slow
def test_gpus_2_runs_two_processes_and_runtime_keys_rerun_nothing(toy):
    run([SNAKEMAKE, "--cores", "2"], toy, timeout=600)
    ranks = launched(toy)
    assert set(ranks) == {"rank0", "rank1"}, ranks
    for env in ranks.values():
        assert env["WORLD_SIZE"] == "2" and env["OMP_NUM_THREADS"] == "1"
        assert "SIGUSR1" in env["TORCHELASTIC_SIGNALS_TO_HANDLE"].split(",")  # what the agent forwards
    model = json.loads((toy / "results/pretrain_psnr/model.txt").read_text().strip())
    assert model["world"] == 2 and model["workers"] == 0  # the step saw its runtime keys too
    # onsuccess recorded the run in dvc.lock: both tools have nothing to do.
    assert dvc_stale(toy) == set()
    assert snakemake_jobs(toy) == set()

    # Runtime keys: neither tool reruns anything.
    for key, value in (("gpus", 1), ("workers", 3), ("log_every", 7), ("ckpt_every", 11)):
        set_key(toy, key, value)
    assert snakemake_jobs(toy) == set()
    assert dvc_stale(toy) == set()
    set_key(toy, "gpus", 2)

    # A computing key: both tools rerun the stage (and Snakemake what follows).
    set_key(toy, "iters", 7)
    assert snakemake_jobs(toy) == {"pretrain_psnr", "report"}
    assert dvc_stale(toy) == {"pretrain_psnr"}

    # DVC's command runs the same launcher: two processes again.
    shutil.rmtree(toy / "results/launched")
    log = run([DVC, "repro"], toy, timeout=600)
    assert "Running stage 'pretrain_psnr'" in log and "Running stage 'fetch'" not in log
    assert set(launched(toy)) == {"rank0", "rank1"}
    assert json.loads((toy / "results/pretrain_psnr/model.txt").read_text().strip())["iters"] == 7
    assert dvc_stale(toy) == set()
    assert snakemake_jobs(toy) == set()


def test_dvc_commands_leave_the_gpu_token_to_the_workflow_profile(toy):
    stages = yaml.safe_load((toy / "dvc.yaml").read_text())["stages"]
    cmd = stages["pretrain_psnr"]["cmd"]
    assert "--resources" not in cmd and "snakemake results/pretrain_psnr/model.txt" in cmd
    params = stages["pretrain_psnr"]["params"]
    assert "pretrain_psnr.${profile}.iters" in params
    assert not {f"pretrain_psnr.${{profile}}.{k}" for k in ("gpus", "workers", "log_every", "ckpt_every")} & set(params)
    profile = yaml.safe_load((ROOT / "workflow/profiles/default/profile.yaml").read_text())
    assert profile["resources"] == {"gpu_jobs": 1}


# --------------------------------------------------------------------------------------------------
# The paper profile: planned without its data, refused when run


@pytest.fixture(scope="module")
def bare_copy(tmp_path_factory) -> Path:
    """The project's workflow, params and package without data; download_data's step fails if it ever runs."""
    repo = tmp_path_factory.mktemp("paper") / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("workflow", "steps", "spsagan", "study"):  # study/: the user study's votes, an input
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    (repo / "steps/download_data.py").write_text("raise SystemExit('download_data must not run')\n")
    return repo


def snakemake_in(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**toy_env(repo), "PYTHONPATH": str(ROOT)}
    return subprocess.run([SNAKEMAKE, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_paper_profile_plans_offline_and_a_run_stops_before_any_job(bare_copy):
    dry = snakemake_in(bare_copy, "-n", "--config", "profile=paper")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    out = dry.stdout + dry.stderr
    assert "where to put it" in out and "warning: required files are missing" in out  # the table, as a warning
    for rule in ("download_data", "make_lr", "pretrain_psnr", "train_gan", "evaluate", "render_reports"):
        assert f"rule {rule}:" in out or f"{rule} " in out, rule
    real = snakemake_in(bare_copy, "--cores", "1", "--config", "profile=paper")
    assert real.returncode != 0
    assert "required file(s) missing" in real.stdout + real.stderr
    assert not (bare_copy / "logs").exists()  # no job started


@pytest.mark.slow
def test_the_rehearsal_runs_the_same_launch_path_through_snakemake(tmp_path):
    """The rehearsal's own functions on the toy: Snakemake in the rehearsal's root, torchrun for `gpus: 2`,
    one record per job; nothing written to the project's results or dvc.lock."""
    params, schema = toy_params(gpus=1)  # the demo column stays as it is; the rehearsal's paper column has 2
    repo = build_toy(
        tmp_path / "toy", LAUNCH_STAGES, params=params, schema=schema, steps={"pretrain_psnr": ENV_PROBE}, repro=False
    )
    root = repo / "rehearsal"
    link_project(repo, root)
    write_params(repo, root, {"pretrain_psnr": {**params["pretrain_psnr"]["demo"], "gpus": 2, "iters": 3}})
    proc = run_snakemake(repo, root, cores=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {r.job: r for r in read_results(root)}
    assert list(results) == ["fetch", "pretrain_psnr", "report"]  # in the order they started
    assert results["pretrain_psnr"].processes == 2 and results["fetch"].processes == 1
    assert all(r.ok and r.seconds > 0 and r.peak_rss_bytes > 0 for r in results.values())
    assert set(launched(root)) == {"rank0", "rank1"}
    model = json.loads((root / "results/pretrain_psnr/model.txt").read_text().strip())
    assert (model["world"], model["iters"]) == (2, 3)
    assert results["pretrain_psnr"].flag("--out") == str(root / "results/pretrain_psnr/model.txt")
    assert not (repo / "results").exists() and not (repo / "dvc.lock").exists()


def test_after_a_run_the_user_is_told_what_to_commit_for_exp_show(tmp_path):
    from spsagan.pipeline.dvcsync import commit_hint

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert commit_hint(tmp_path) is None  # nothing changed
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text("{}")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    hint = commit_hint(tmp_path)
    assert "git add dvc.lock metrics" in hint and "dvc exp show" in hint


def test_no_commit_hint_outside_a_git_checkout(tmp_path, monkeypatch):
    from spsagan.pipeline.dvcsync import commit_hint

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git must not find a checkout above
    (tmp_path / "dvc.lock").write_text("")
    assert commit_hint(tmp_path) is None
