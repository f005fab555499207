"""Running the pipeline elsewhere: on SLURM (a fake cluster), from a team's DVC remote, after a move, and the
setup's reinstall rule.

Each check runs the project's own Snakefile, profiles, dvc.yaml generator and Makefile on a toy copy of the
repository (tests/toy_pipeline.py); only the steps and the cluster commands are stand-ins.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from toy_pipeline import (
    BIN,
    ROOT,
    build_toy,
    commit,
    dvc_stale,
    run,
    set_param,
    snakemake_jobs,
    toy_env,
)

DVC = str(BIN / "dvc")
SNAKEMAKE = str(BIN / "snakemake")

# --------------------------------------------------------------------------------------------------
# SLURM: the project's SLURM profile against fake sbatch/sacct/srun/... that run each job at once, here.

# Stage names of the real SLURM profile's set-resources, so its per-stage values apply. `train_ddp` stands for a
# training stage with `gpus: 2` in its section (the typed training configs do not take a `gpus` key on this
# branch); the test gives it the profile's train_gan entry.
SLURM_STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "download_data": {
            "desc": "toy download",
            "script": "steps/download_data.py",
            "outs": {"out": "results/download_data/"},
            "local": True,
        },
        "pretrain_psnr": {
            "desc": "toy GPU training, one GPU",
            "script": "steps/pretrain_psnr.py",
            "deps": {"data": "@download_data.out"},
            "outs": {"out": "results/pretrain_psnr/{instance}/model.txt"},
            "instances": {"rrdb": {}},
            "per_seed": True,  # two seeds below: one SLURM job each
            "gpu": 1,
            "threads": 4,
        },
        "prune": {
            "desc": "toy CPU stage",
            "script": "steps/prune.py",
            "deps": {"model": "@pretrain_psnr.out[rrdb]"},
            "outs": {"out": "results/prune/mask.json"},
        },
        "train_ddp": {
            "desc": "toy GPU training, two GPUs (torchrun)",
            "script": "steps/train_ddp.py",
            "deps": {"mask": "@prune.out"},
            "outs": {"out": "results/train_ddp/model.txt"},
            "gpu": 1,
        },
        "evaluate": {
            "desc": "toy GPU evaluation",
            "script": "steps/evaluate.py",
            "deps": {"models": ["@pretrain_psnr.out", "@train_ddp.out"]},
            "outs": {"out": "results/evaluate/per_image.csv"},
            "metrics": {"metrics": "results/evaluate/summary.json"},
            "gpu": 1,
        },
    },
}

FAKE_SLURM = {
    # Records its argv, runs the job here at once (the --wrap command, or the script on stdin) in the -D folder
    # with its stdout in --output, records the exit status, and prints the job id as `--parsable` does.
    "sbatch": """
import json, os, subprocess, sys
state, argv = os.environ["FAKE_SLURM_DIR"], sys.argv[1:]
def value(flag):
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
wrap = value("--wrap")
script = sys.stdin.read() if wrap is None else None
jobid = 1000
while True:  # a unique id, also for concurrent submissions
    try:
        os.close(os.open(os.path.join(state, f"{jobid}.id"), os.O_CREAT | os.O_EXCL))
        break
    except FileExistsError:
        jobid += 1
with open(os.path.join(state, "sbatch.jsonl"), "a") as fh:
    fh.write(json.dumps({"id": jobid, "argv": argv}) + "\\n")
env = {**os.environ, "SLURM_JOB_ID": str(jobid), "SLURM_JOBID": str(jobid)}
if value("--gpus"):
    env["SLURM_GPUS"] = value("--gpus")
log = value("--output").replace("%j", str(jobid))
os.makedirs(os.path.dirname(log), exist_ok=True)
with open(log, "w") as out:
    cmd = ["/bin/sh", "-c", wrap] if wrap is not None else ["/bin/sh", "-s"]
    code = subprocess.run(cmd, input=script, text=True, cwd=value("-D"), env=env, stdout=out,
                          stderr=subprocess.STDOUT, stdin=None if script is not None else subprocess.DEVNULL).returncode
with open(os.path.join(state, "jobs.jsonl"), "a") as fh:
    fh.write(json.dumps({"id": jobid, "name": value("--job-name"), "exit": code}) + "\\n")
print(jobid)
""",
    # `sacct ... --format=JobIdRaw,State --name <run>` and `squeue --format=%i|%T --name <run>`: id|STATE per job.
    "sacct": """
import json, os, sys
state, argv = os.environ["FAKE_SLURM_DIR"], sys.argv[1:]
if "--name" in argv:
    name = argv[argv.index("--name") + 1]
    path = os.path.join(state, "jobs.jsonl")
    for line in open(path) if os.path.exists(path) else []:
        job = json.loads(line)
        if job["name"] == name:
            print(f"{job['id']}|{'COMPLETED' if job['exit'] == 0 else 'FAILED'}")
""",
    # A job step: runs its command (everything after srun's own options) in place.
    "srun": """
import json, os, sys
argv = sys.argv[1:]
with open(os.path.join(os.environ["FAKE_SLURM_DIR"], "srun.jsonl"), "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
while argv and argv[0].startswith("-"):
    argv.pop(0)
os.execvp(argv[0], argv)
""",
    "sinfo": 'print("PARTITION\\ncpu*\\ngpu")',
    "scontrol": 'print("MaxArraySize            = 1001")',
    "sacctmgr": 'import os; print(os.environ["FAKE_SLURM_ACCOUNT"])',
    "sshare": 'import os; print(os.environ["FAKE_SLURM_ACCOUNT"])',
    "scancel": "",
}


def fake_slurm(folder: Path) -> Path:
    """Write the fake SLURM commands into folder/bin (each logs its call into folder/calls.jsonl)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in FAKE_SLURM.items():
        log_call = (
            "import json as _j, os as _o, sys as _s\n"
            "with open(_o.path.join(_o.environ['FAKE_SLURM_DIR'], 'calls.jsonl'), 'a') as _f:\n"
            f"    _f.write(_j.dumps(['{name}', *_s.argv[1:]]) + '\\n')\n"
        )
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{log_call}{body}\n")
        path.chmod(0o755)
    return bin_dir


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sbatch_option(argv: list[str], flag: str) -> str | None:
    """The value of `flag` in an sbatch argv (`--flag value`, `--flag=value`, `-t value`)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


@pytest.mark.slow
def test_slurm_profile_submits_each_gpu_stage_with_its_resources(tmp_path):
    real_params = yaml.safe_load((ROOT / "params.yaml").read_text())
    real_schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())["stages"]
    real = [s for s in SLURM_STAGES["stages"] if s in real_schema]
    toy_section = {"v": 1.0, "gpus": 2}
    params = {
        "profile": "demo",
        **{s: real_params[s] for s in real},
        "train_ddp": {"demo": toy_section, "paper": {**toy_section, "gpus": 4}},
    }
    params["pretrain_psnr"]["demo"] = {**params["pretrain_psnr"]["demo"], "seeds": [0, 1]}
    schema = {
        "stages": {
            **{s: real_schema[s] for s in real},
            "train_ddp": {"properties": {"v": {"type": "number"}, "gpus": {"type": "integer"}}},
        }
    }
    repo = build_toy(tmp_path / "toy", SLURM_STAGES, params=params, schema=schema, steps={}, repro=False)

    profile_path = repo / "workflow" / "profiles" / "slurm" / "profile.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    profile["set-resources"]["train_ddp"] = profile["set-resources"]["train_gan"]
    profile_path.write_text(yaml.safe_dump(profile, sort_keys=False))
    account = profile["default-resources"]["slurm_account"]

    state = tmp_path / "slurm"
    fake_bin = fake_slurm(state)
    env = {**toy_env(repo), "FAKE_SLURM_DIR": str(state), "FAKE_SLURM_ACCOUNT": account}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    # Status checks every second (the plugin waits 40 s before its first one by default).
    log = run(
        [
            SNAKEMAKE,
            "--profile",
            "workflow/profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--seconds-between-status-checks",
            "1",
        ],
        repo,
        env=env,
        timeout=240,
    )

    submitted, comments = {}, []
    for call in read_jsonl(state / "sbatch.jsonl"):
        comments.append(sbatch_option(call["argv"], "--comment"))
        rule = comments[-1].split("_wildcards_")[0].removeprefix("rule_")
        submitted[rule] = call["argv"]
    # The local stage ran where Snakemake runs; every other job went through sbatch, once: each seed its own.
    assert set(submitted) == {"pretrain_psnr", "prune", "train_ddp", "evaluate"}, log
    assert len(comments) == 5 and sum(c.startswith("rule_pretrain_psnr") for c in comments) == 2, comments
    assert any("rrdb_s1" in c for c in comments), comments
    assert all(job["exit"] == 0 for job in read_jsonl(state / "jobs.jsonl"))

    sets = profile["set-resources"]
    for rule, gpus in (("pretrain_psnr", 1), ("train_ddp", 2), ("evaluate", 1)):
        argv, want = submitted[rule], sets["train_gan" if rule == "train_ddp" else rule]
        assert f"--gpus={gpus}" in argv, (rule, argv)
        assert f"--cpus-per-gpu={want['cpus_per_gpu']}" in argv, (rule, argv)
        assert sbatch_option(argv, "--mem") == str(want["mem_mb"]), (rule, argv)
        assert sbatch_option(argv, "-t") == str(want["runtime"]), (rule, argv)
        assert sbatch_option(argv, "-p") == want["slurm_partition"] == "gpu", (rule, argv)
        assert sbatch_option(argv, "-A") == account, (rule, argv)
    for rule in ("pretrain_psnr", "train_ddp"):  # training: SIGUSR1 five minutes before the walltime
        assert "--signal=USR1@300" in submitted[rule], submitted[rule]
    assert "--signal=USR1@300" not in submitted["evaluate"]
    # A CPU stage: no GPU, the profile's CPU partition and its own memory and walltime.
    argv = submitted["prune"]
    assert not any(a.startswith("--gpus") for a in argv) and "--ntasks=1" in argv, argv
    assert sbatch_option(argv, "-p") == profile["default-resources"]["slurm_partition"]
    assert (sbatch_option(argv, "--mem"), sbatch_option(argv, "-t")) == (
        str(sets["prune"]["mem_mb"]),
        str(sets["prune"]["runtime"]),
    )
    # Inside the job, the step asks for the job's GPUs, and the two-GPU stage ran under torchrun.
    steps = read_jsonl(state / "srun.jsonl")
    assert any("--gpus=2" in s and "train_ddp" in " ".join(s) for s in steps), steps
    assert json.loads((repo / "results/train_ddp/model.txt").read_text()[:200].strip())["world"] == 2
    assert "world" not in json.loads((repo / "results/evaluate/summary.json").read_text())
    # Job status came from sacct, for this run's jobs only.
    assert any(c[0] == "sacct" and "--name" in c for c in read_jsonl(state / "calls.jsonl"))

    for path in (
        "results/download_data/data.txt",
        "results/pretrain_psnr/rrdb/model.txt",
        "results/pretrain_psnr/rrdb_s1/model.txt",
        "results/prune/mask.json",
        "results/train_ddp/model.txt",
        "results/evaluate/per_image.csv",
        "results/evaluate/summary.json",
    ):
        assert (repo / path).is_file(), path
    assert snakemake_jobs(repo) == set()


# --------------------------------------------------------------------------------------------------
# Sharing results through a team DVC remote


@pytest.fixture(scope="module")
def finished_toy(tmp_path_factory) -> Path:
    """A toy repository after `dvc repro` (each test works on its own copy)."""
    return build_toy(tmp_path_factory.mktemp("finished") / "toy")


def copy_of(repo: Path, where: Path) -> Path:
    shutil.copytree(repo, where, symlinks=True)  # keeps mtimes, like `cp -a`
    return where


def set_mtimes(repo: Path, when: float, *folders: str) -> None:
    for folder in folders:
        for path in (repo / folder).rglob("*"):
            os.utime(path, (when, when))


@pytest.mark.slow
def test_results_pulled_from_a_team_remote_rerun_nothing(finished_toy, tmp_path):
    repo = copy_of(finished_toy, tmp_path / "toy")
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    run([DVC, "remote", "add", "-d", "team", str(tmp_path / "remote")], repo)
    commit(repo, "team remote")  # dvc.lock, .dvc/config and the code; results/ is not in git
    run([DVC, "push"], repo)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "results").exists()
    run([DVC, "pull"], clone)
    # Every output arrived, metrics included (they are cached like every output: results/ is not in git).
    for path in (
        "results/fetch/data.txt",
        "results/train/big/model.txt",
        "results/train/big/metrics.json",
        "results/train/small/metrics.json",
        "results/report.txt",
    ):
        assert (clone / path).is_file(), path
    # The pulled files carry no Snakemake metadata, so Snakemake judges them by mtime alone, and `dvc pull`
    # writes them in no particular order: here the downstream outputs happen to be the older ones.
    assert not (clone / ".snakemake" / "metadata").exists()
    now = time.time()
    set_mtimes(clone, now - 60, "results/train", "results/report.txt")
    set_mtimes(clone, now - 30, "results/fetch")
    assert snakemake_jobs(clone) == {"train", "report"}

    # The documented sequence (`make pull`: dvc pull, dvc status, snakemake --touch --forceall) reruns nothing.
    venv = BIN.parent  # already set up: -o keeps make from considering a reinstall
    run(["make", "-o", f"{venv}/.installed", "pull", f"VENV={venv}"], clone)
    assert snakemake_jobs(clone) == set()
    assert dvc_stale(clone) == set()
    assert "Running stage" not in run([DVC, "repro"], clone)
    # Snakemake now holds the pulled outputs' params: a later change reruns the same stages in both tools.
    set_param(clone, "train", 5.0)
    assert snakemake_jobs(clone) == {"train", "report"}
    assert dvc_stale(clone) == {"train@small", "train@big"}


@pytest.mark.slow
def test_make_pull_refuses_results_that_do_not_match_the_checkout(finished_toy, tmp_path):
    repo = copy_of(finished_toy, tmp_path / "toy")
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    run([DVC, "remote", "add", "-d", "team", str(tmp_path / "remote")], repo)
    commit(repo, "team remote")
    run([DVC, "push"], repo)
    set_param(repo, "report", 7.0)  # a params change committed without `dvc repro`
    commit(repo, "params changed, not reproduced")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    venv = BIN.parent
    proc = subprocess.run(
        ["make", "-o", f"{venv}/.installed", "pull", f"VENV={venv}"],
        cwd=clone,
        env=toy_env(clone),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "do not match this checkout" in proc.stdout + proc.stderr
    assert not (clone / ".snakemake" / "metadata").exists()  # nothing was marked up to date
    assert snakemake_jobs(clone) >= {"report"}


@pytest.mark.slow
def test_a_param_changed_and_changed_back_reruns_and_both_tools_agree(finished_toy, tmp_path):
    """Outputs are `persist: true`, which DVC never restores from its run-cache: changing a param and
    changing it back reruns the stage through Snakemake, so Snakemake's metadata and DVC's lock agree."""
    repo = copy_of(finished_toy, tmp_path / "toy")
    set_param(repo, "train", 5.0)
    run([DVC, "repro"], repo)
    set_param(repo, "train", 1.0)  # back to the first value
    log = run([DVC, "repro"], repo)
    assert "is cached - skipping run" not in log and "Running stage 'train@small'" in log
    assert dvc_stale(repo) == set()
    assert snakemake_jobs(repo) == set()


# --------------------------------------------------------------------------------------------------
# Moving a project: another folder, another interpreter path


def metadata_records(repo: Path) -> dict[str, dict]:
    """Snakemake's metadata: output path -> record."""
    folder = repo / ".snakemake" / "metadata"
    return {base64.urlsafe_b64decode(p.name.encode()).decode(): json.loads(p.read_text()) for p in folder.iterdir()}


@pytest.mark.slow
def test_a_moved_project_with_another_interpreter_reruns_nothing(finished_toy, tmp_path):
    old = copy_of(finished_toy, tmp_path / "old")
    records = metadata_records(old)
    assert {"results/report.txt", "results/train/big/model.txt"} <= set(records)
    # What Snakemake compares to decide a rerun: the rule's code, params, inputs and log, its environment.
    # None of it holds the folder or the interpreter. (The formatted `shellcmd` is stored, never compared.)
    for path, record in records.items():
        compared = json.dumps(
            {
                k: record.get(k)
                for k in ("code", "params", "input", "log", "conda_env", "software_stack_hash", "container_img_url")
            }
        )
        assert str(tmp_path.parent) not in compared and sys.executable not in compared, (path, compared)
        assert "{PYTHON:q}" in record["code"], record["code"]

    new = tmp_path / "moved" / "project"
    shutil.copytree(old, new, symlinks=True)
    shutil.rmtree(old)
    # A plain copy (`cp -r`) also changes every mtime: the code now looks newer than the results.
    now = time.time()
    set_mtimes(new, now - 60, "results")
    set_mtimes(new, now, "steps", "toypkg", "workflow")
    (tmp_path / "envs").mkdir()
    other_venv = tmp_path / "envs" / "venv"
    other_venv.symlink_to(BIN.parent, target_is_directory=True)
    python = other_venv / "bin" / "python"
    interpreter = run([str(python), "-c", "import sys; print(sys.executable)"], new).strip()
    assert interpreter == str(python) != sys.executable

    assert snakemake_jobs(new, python=python) == set()
    assert json.loads(run([str(python), "-m", "dvc", "status", "--json"], new).strip().splitlines()[-1]) == {}
    assert "Running stage" not in run([str(python), "-m", "dvc", "repro"], new)
    # The next run records the new interpreter; the rerun decision still ignores it.
    run([str(python), "-m", "snakemake", "--cores", "1", "--forcerun", "report"], new)
    assert str(python) in metadata_records(new)["results/report.txt"]["shellcmd"]
    assert snakemake_jobs(new) == set()  # back on the first interpreter


# --------------------------------------------------------------------------------------------------
# make setup: reinstalls when EXTRAS or TORCH change, never on a repeated command

# A stand-in for python3 and the venv's python: records each call, and `-m venv DIR` makes DIR/bin/python.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$FAKE_PYTHON_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
"""


def test_make_setup_reinstalls_only_when_its_choices_change(tmp_path):
    """`make -n` cannot show this: the FORCE prerequisite of .setup-args makes a dry run list the install
    commands every time. So make runs for real, with a fake interpreter that records what pip would do."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    fake, log, venv = tmp_path / "python3", tmp_path / "calls.log", tmp_path / "venv"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["FAKE_PYTHON_LOG"] = str(log)

    def setup(*choices: str) -> list[str]:
        """The interpreter calls of one `make setup`."""
        before = len(log.read_text().splitlines())
        proc = subprocess.run(
            ["make", "setup", f"VENV={venv}", f"PYTHON={fake}", *choices],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return log.read_text().splitlines()[before:]

    first = setup()
    torch = next(line.split()[-1] for line in first if "pip install --quiet torch" in line)
    assert first == [
        f"-m venv {venv}",
        "-m pip install --quiet --upgrade pip",
        f"-m pip install --quiet {torch}",
        "-m pip install --quiet -e .",
    ]
    assert setup() == []  # the same command: nothing to do
    gpu = setup("EXTRAS=gpu")  # new extras on the existing venv: reinstall
    assert gpu == [
        "-m pip install --quiet --upgrade pip",
        f"-m pip install --quiet {torch}",
        "-m pip install --quiet -e .[gpu]",
    ]
    assert setup("EXTRAS=gpu") == []
    other = setup("EXTRAS=gpu", "TORCH=torch==2.2.0+cpu")  # another torch
    assert "-m pip install --quiet torch==2.2.0+cpu" in other and "-m pip install --quiet -e .[gpu]" in other
    assert (venv / ".setup-args").read_text().split() == ["TORCH=torch==2.2.0+cpu", "EXTRAS=gpu"]
    assert setup("EXTRAS=gpu", "TORCH=torch==2.2.0+cpu") == []
    later = time.time() + 5
    os.utime(project / "pyproject.toml", (later, later))  # new dependencies: reinstall with the same choices
    assert "-m pip install --quiet -e .[gpu]" in setup("EXTRAS=gpu", "TORCH=torch==2.2.0+cpu")
