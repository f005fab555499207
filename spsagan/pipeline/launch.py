"""How a stage's job starts, in one place: its command, its resources, and the entry that runs it.

Every path that runs a step goes through here: the Snakefile's rules (`SHELL`, `resources`),
the dvc.yaml commands (which run Snakemake for a stage's outputs) and the rehearsal (which runs
Snakemake on its own copy of the params). A job's shell command is::

    python -m spsagan.pipeline.launch --job train_gan/spsa --threads 4 --gpus 2 --runtime '{"workers": 8, ...}' \\
        -- steps/train_gan.py --params '{<the computing keys>}' --profile paper <the registry's flags>

and at run time this module turns it into the step's process:

- the section the step reads is the computing keys (hashed by both tools) plus the runtime keys
  (`spsagan.config.runtime_keys`: how to run, never hashed), merged back into `--params`;
- `OMP_NUM_THREADS` is the job's threads, shared by its processes;
- above one GPU the step runs under torchrun (`python -m spsagan.training.torchrun --standalone
  --nproc_per_node=<gpus>`, one node: torchrun, exiting 75 when preempted), with `PET_SIGNALS_TO_HANDLE`
  and `TORCHELASTIC_SIGNALS_TO_HANDLE` set so the agent passes SLURM's SIGUSR1 (and SIGTERM, SIGINT,
  SIGHUP, SIGQUIT) on to every rank;
- with `SPSAGAN_RECORD_DIR` set (the rehearsal), the step runs through the rehearsal's probe and this
  process records the job's exit status, wall seconds and peak memory in `<dir>/<job>.json`;
  `SPSAGAN_DEVICE` gives the GPU stages' steps a `--device`.

The runtime keys and the world size reach the command from what Snakemake never compares: a params
function of the job's resources (a "derived" param, left out of its params record) and the job's
resources themselves. Snakemake compares a rule's params and the *template* of its shell command, never
the filled-in command, so changing them reruns nothing (tests/test_launcher.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# What torchrun's agent forwards to its ranks (its default lacks SIGUSR1, SLURM's walltime warning).
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
RECORD_ENV = "SPSAGAN_RECORD_DIR"
DEVICE_ENV = "SPSAGAN_DEVICE"


# -- what the Snakefile takes from here ----------------------------------------------------------------


def split_section(stage: str, section: dict) -> tuple[dict, dict]:
    """(computing keys, runtime keys) of one resolved params section: only the first is hashed."""
    from spsagan.config import runtime_keys

    runtime = set(runtime_keys(stage))
    return {k: v for k, v in section.items() if k not in runtime}, {k: v for k, v in section.items() if k in runtime}


def world_size(stage, section: dict) -> int:
    """GPUs of one job: the section's `gpus` (a training stage's world size), 1 for another GPU stage, 0 on the CPU."""
    return int(section.get("gpus", 1)) if stage.gpu else 0


def resources(stage, section: dict) -> dict:
    """The job's resources: `gpu` (SLURM's `--gpus`, the world size), `gpu_jobs` (the token the workflow
    profile limits: one GPU stage at a time), runtime (minutes) and mem_mb (SLURM's limits)."""
    return {
        "gpu": world_size(stage, section),
        "gpu_jobs": 1 if stage.gpu else 0,
        "runtime": stage.runtime,
        "mem_mb": stage.mem_mb,
    }


# Every rule's shell command: one constant template. Snakemake evaluates a rule's `shell:` expression again
# when the job runs, after the Snakefile's loop over stages has ended, so the template must not depend on
# the stage it was written for; what differs per job comes from the job's params and resources.
# It is also what Snakemake compares as the rule's code: it holds names, never values.
SHELL = (
    "{PYTHON:q} -m spsagan.pipeline.launch --job {params.job} --threads {threads} --gpus {resources.gpu} "
    "--runtime {params.runtime:q} -- {params.script} --params {params.section:q} "
    "--profile {params.profile} {params.flags} > {log} 2>&1 "
    # Then the listing of each folder output's files, which downstream rules compare by checksum.
    "&& {PYTHON:q} -m spsagan.pipeline.contents {params.contents}"
)


def job_name(stage, instance: str | None) -> str:
    """`stage` or `stage/instance`: names the job's record."""
    return f"{stage.name}/{instance}" if instance else stage.name


# -- run time ----------------------------------------------------------------------------------------


def with_runtime(step_args: list[str], runtime: dict) -> list[str]:
    """The step's flags with the runtime keys merged into its inline `--params` JSON (a path is left as is)."""
    args = list(step_args)
    if runtime and "--params" in args:
        at = args.index("--params") + 1
        if args[at].lstrip().startswith("{"):
            args[at] = json.dumps({**json.loads(args[at]), **runtime}, sort_keys=True)
    return args


def command(script: str, step_args: list[str], gpus: int, threads: int, record: Path | None = None):
    """(argv, environment changes) of one job's process: the step, under torchrun above one GPU.

    record: run the step through the rehearsal's probe, which writes the process's own facts there.
    """
    world = max(1, gpus)
    env = {"OMP_NUM_THREADS": str(max(1, threads // world)), "PYTHONUNBUFFERED": "1"}
    target = ["-m", "spsagan.pipeline.rehearsal.probe", str(record), script] if record else [script]
    if world == 1:
        return [sys.executable, *target, *step_args], env
    # torchrun reads its --signals-to-handle from PET_SIGNALS_TO_HANDLE and then overwrites
    # TORCHELASTIC_SIGNALS_TO_HANDLE with it (torch 2.13); older versions read only the latter.
    env["PET_SIGNALS_TO_HANDLE"] = env["TORCHELASTIC_SIGNALS_TO_HANDLE"] = TORCHRUN_SIGNALS
    # torchrun through its wrapper: SIGUSR1 passed on too, and exit 75 when preempted (as a single process).
    torchrun = [sys.executable, "-m", "spsagan.training.torchrun", "--standalone", f"--nproc_per_node={world}"]
    # With a record, torchrun's -m runs the probe module in every rank (rank 0 writes).
    return [*torchrun, *target, *step_args], env


def _recorded_run(argv: list[str], env: dict, record: Path, facts: dict) -> int:
    """Run the job as a child, watching its process tree's memory; write the record; return its status."""
    from spsagan.pipeline.rehearsal.memory import TreeMemory

    facts = {**facts, "started": time.time()}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    watcher = TreeMemory(proc.pid)
    watcher.start()
    status = proc.wait()
    watcher.stop()
    inner_path = record.with_suffix(".probe.json")
    inner = json.loads(inner_path.read_text()) if inner_path.exists() else {}
    facts = {
        **inner,
        **facts,
        "exit": status,
        "seconds": round(time.perf_counter() - started, 3),
        "peak_bytes": max(watcher.peak, int(inner.get("maxrss_bytes", 0))),
    }
    record.write_text(json.dumps(facts))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spsagan.pipeline.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--job", required=True, help="stage or stage/instance (names the record)")
    parser.add_argument("--threads", type=int, default=1, help="the job's threads (OMP_NUM_THREADS, shared)")
    parser.add_argument("--gpus", type=int, default=0, help="the job's GPUs: torchrun above 1")
    parser.add_argument("--runtime", default="{}", help="the runtime keys as JSON, merged into --params")
    parser.add_argument("script", help="the step script")
    parser.add_argument("step_args", nargs=argparse.REMAINDER, help="the step's flags")
    args = parser.parse_args(argv)
    step_args = with_runtime(args.step_args, json.loads(args.runtime))
    if args.gpus and os.environ.get(DEVICE_ENV):  # the rehearsal's --device, for the GPU stages' steps
        step_args += ["--device", os.environ[DEVICE_ENV]]
    folder = os.environ.get(RECORD_ENV)
    record = Path(folder) / f"{args.job.replace('/', '-')}.json" if folder else None
    inner = record.with_suffix(".probe.json") if record else None
    cmd, changes = command(args.script, step_args, args.gpus, args.threads, inner)
    env = {**os.environ, **changes}
    if record is None:
        os.execve(cmd[0], cmd, env)  # the step replaces this process: signals reach it as before
    record.parent.mkdir(parents=True, exist_ok=True)
    for stale in (record, inner):
        stale.unlink(missing_ok=True)
    facts = {"job": args.job, "processes": max(1, args.gpus), "args": step_args}
    return _recorded_run(cmd, env, record, facts)


if __name__ == "__main__":
    sys.exit(main())
