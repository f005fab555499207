"""Data-parallel training (torchrun, gloo on CPU) against the single-process run (docs/training.md,
"From one GPU to a cluster").

The torchrun tests launch `tests/ddp_trainer.py` on two processes with tiny networks; the
single-process references run here, in process, on the same data and configs. Two processes with
the same global batch train the same generator within float reduction order (the discriminator's
batch statistics are per process, so the GAN compares without its adversarial term); a run stopped
by SIGTERM resumes to the very weights of an uninterrupted one, on two processes or on one; a signal
to one rank, or the loss of torchrun, stops every rank at the same iteration with a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import ddp_trainer as trainer  # tests/ is on sys.path
import pytest
import torch

import spsagan
import spsagan.training.torchrun
from spsagan.errors import ConfigError
from spsagan.training import lock

torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available() and hasattr(os, "killpg")),
    reason="needs torch.distributed with gloo, POSIX",
)

REPO = Path(spsagan.__file__).resolve().parent.parent
RUN_TIMEOUT = 300  # torch imported by three processes on a busy shared CPU
SAME = 1e-5  # relative difference of weights that counts as the same training (float reduction order)


def torchrun(
    root: Path, jobs: str, init: Path | None = None, launcher: str = "torch.distributed.run", env=None, **popen
) -> subprocess.Popen:
    """Start `ddp_trainer.py` on two processes under torchrun (a free rendezvous port: --standalone);
    its output goes to root/torchrun-<n>.log (a file: the workers outlive a killed torchrun).
    launcher: the module that runs torchrun (spsagan.training.torchrun: the pipeline's); env: extra variables."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    argv = [
        sys.executable,
        "-m",
        launcher,
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "tests" / "ddp_trainer.py"),
        str(root),
        jobs,
    ] + ([str(init)] if init else [])
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"torchrun-{len(list(root.glob('torchrun-*.log')))}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, **popen)
    proc.log = log
    return proc


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for a torchrun this test started: (exit code, output). One that hangs is stopped (by its
    id: SIGTERM, which it passes on to its workers, then SIGKILL) and fails the test."""
    try:
        code = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise AssertionError(f"torchrun did not finish in {RUN_TIMEOUT} s:\n{proc.log.read_text()[-3000:]}") from None
    return code, proc.log.read_text()


def relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||a|| over all tensors of two state dicts."""
    assert a.keys() == b.keys()
    num = sum(float((a[k].double() - b[k].double()).norm() ** 2) for k in a)
    den = sum(float(a[k].double().norm() ** 2) for k in a)
    return (num / den) ** 0.5


def model_weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["params_g"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process PSNR run (the GAN's init model too)."""
    root = tmp_path_factory.mktemp("single")
    trainer.run("psnr", root)
    return root


@pytest.fixture(scope="module")
def two(single, tmp_path_factory):
    """One torchrun launch on two processes: PSNR, GAN without and with the adversarial term."""
    root = tmp_path_factory.mktemp("two")
    code, out = finish(torchrun(root, "psnr,gan,gan-adv", single / "psnr" / "model.pt"))
    assert code == 0, out[-3000:]
    return root


# --------------------------------------------------------------------------------------------------
# Bad world sizes: one line each, before anything runs


def test_a_batch_that_does_not_split_over_the_processes_is_one_config_error():
    with pytest.raises(ConfigError, match=r"^pretrain_psnr\.batch_size: 4 is not divisible by pretrain_psnr\.gpus 3 "):
        replace(trainer.PSNR, gpus=3)
    with pytest.raises(ConfigError, match=r"^train_gan\.batch_size: 4 is not divisible by train_gan\.gpus 8 "):
        replace(trainer.GAN, gpus=8)


@pytest.mark.parametrize("job, stage", [("psnr", "pretrain_psnr"), ("gan", "train_gan")])
def test_several_gpus_without_torchrun_name_the_command(job, stage, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    cfg = replace(trainer.JOBS[job], gpus=2)
    with pytest.raises(ConfigError) as info:  # before anything is read: the init model need not exist
        trainer.run(job, tmp_path, cfg, init=tmp_path / "init.pt")
    message = str(info.value)
    assert "\n" not in message and f"{stage}.gpus is 2, but this process was not started by torchrun" in message
    assert f"`torchrun --standalone --nproc_per_node 2 steps/{stage}.py ...`" in message
    assert not (tmp_path / "ckpt").exists()


def test_gpus_other_than_the_torchrun_world_size_is_one_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError) as info:
        trainer.run("psnr", tmp_path, replace(trainer.PSNR, gpus=4))
    message = str(info.value)
    assert "\n" not in message
    assert "pretrain_psnr.gpus is 4, but torchrun started 2 processes (WORLD_SIZE)" in message
    assert not torch.distributed.is_initialized() and not (tmp_path / "ckpt").exists()


def test_gpus_and_compile_leave_the_resume_key_unchanged():
    from spsagan.training.loop import resume_key

    for stage, cfg in (("pretrain_psnr", trainer.PSNR), ("train_gan", trainer.GAN)):
        key = resume_key(stage, cfg, {"preset": "esrgan"}, {})
        assert resume_key(stage, replace(cfg, gpus=2, compile=True), {"preset": "esrgan"}, {}) == key
        assert resume_key(stage, replace(cfg, workers=3, ckpt_every=7), {"preset": "esrgan"}, {}) == key
        # log_every is a runtime key but stays hashed: existing checkpoints keep their key
        assert resume_key(stage, replace(cfg, log_every=7), {"preset": "esrgan"}, {}) != key
        assert resume_key(stage, replace(cfg, batch_size=8), {"preset": "esrgan"}, {}) != key


def test_the_sampler_splits_each_global_batch_over_the_ranks():
    data = trainer.toy_data()
    whole = data.sampler(6, 3)
    shares = [data.sampler(6, 3, rank, 3) for rank in range(3)]
    for step in (0, 1, 17):
        assert sum((s.draw(step) for s in shares), []) == whole.draw(step) == whole.global_draw(step)
    assert shares[1].state_dict() == whole.state_dict()  # a checkpoint does not depend on the share
    with pytest.raises(ValueError, match="batch_size: 6 is not divisible by gpus 4"):
        data.sampler(6, 3, 0, 4)


# --------------------------------------------------------------------------------------------------
# Two processes train what one trains


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_two_processes_pretrain_the_same_generator_as_one(single, two):
    diff = relative_difference(model_weights(single / "psnr" / "model.pt"), model_weights(two / "psnr" / "model.pt"))
    print(f"pretrain_psnr, 2 processes vs 1: relative difference {diff:.2e}")
    assert diff < SAME
    summary = json.loads((two / "psnr.json").read_text())
    assert summary["iterations_run"] == trainer.PSNR.iters and summary["device"].endswith("x 2 processes")
    assert {"train/l1", "val/psnr", "val/psnr_bicubic"} <= set(summary["metrics"])
    ranks = [torch.load(two / f"psnr.rank{r}.pt", weights_only=True)["g"] for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # DDP keeps the ranks identical


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_two_processes_train_the_same_gan_generator_as_one_without_the_adversarial_term(single, two, tmp_path):
    trainer.run("gan", tmp_path, init=single / "psnr" / "model.pt")
    diff = relative_difference(model_weights(tmp_path / "gan" / "model.pt"), model_weights(two / "gan" / "model.pt"))
    print(f"train_gan (w_gan 0), 2 processes vs 1: relative difference {diff:.2e}")
    assert diff < SAME


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_gan_ranks_share_every_weight_but_keep_their_own_batchnorm_statistics(single, two, tmp_path):
    ranks = [torch.load(two / f"gan-adv.rank{r}.pt", weights_only=True) for r in (0, 1)]
    differ = {
        net: sorted(k for k in ranks[0][net] if not torch.equal(ranks[0][net][k], ranks[1][net][k]))
        for net in ("g", "d")
    }
    assert differ["g"] == []
    assert differ["d"] and all(re.fullmatch(r"bn\d_\d\.running_(mean|var)", k) for k in differ["d"])
    # Per-process batch statistics (and relativistic averages): close to, not equal to, one process.
    trainer.run("gan-adv", tmp_path, init=single / "psnr" / "model.pt")
    diff = relative_difference(
        model_weights(tmp_path / "gan-adv" / "model.pt"), model_weights(two / "gan-adv" / "model.pt")
    )
    print(f"train_gan (w_gan 5e-3), 2 processes vs 1: relative difference {diff:.2e}")
    assert 0 < diff < 1e-2


# --------------------------------------------------------------------------------------------------
# Stopping and resuming


def stopped_at(out: str) -> list[int]:
    return [int(s) for s in re.findall(r"saved a resumable checkpoint at step (\d+)", out)]


def stop_paced_run(root: Path, send, new_session: bool = True, **launch) -> tuple[int, str]:
    """Start the paced two-process run, call `send(torchrun)` once it trained 3 iterations, wait for the end."""
    proc = torchrun(root, "psnr-paced", start_new_session=new_session, **launch)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (root / "started").exists():
            assert proc.poll() is None, proc.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "timed out waiting for the first iterations"
            time.sleep(0.1)
        send(proc)
    finally:
        code, out = finish(proc)
    return code, out


@pytest.mark.slow  # three torchrun launches: a minute on a shared CPU
def test_sigterm_stops_both_ranks_at_one_step_and_any_world_size_resumes_to_the_same_weights(two, tmp_path):
    cut = tmp_path / "cut"
    # torchrun and everything in its group, as `scancel` or Ctrl-C: torchrun passes it on to its workers
    code, out = stop_paced_run(cut, lambda proc: os.killpg(proc.pid, signal.SIGTERM))
    steps = stopped_at(out)
    assert code != 0 and len(steps) == 2 and steps[0] == steps[1], out[-3000:]  # both ranks, the same step
    step = steps[0]
    assert 3 <= step < trainer.PSNR.iters and not (cut / "psnr" / "model.pt").exists()
    shutil.copytree(cut, tmp_path / "cut1", ignore=shutil.ignore_patterns("started"))

    code, out = finish(torchrun(cut, "psnr"))  # resumed on two processes: bitwise the uninterrupted run
    assert code == 0, out[-3000:]
    assert json.loads((cut / "psnr.json").read_text())["resumed_from"] == step
    uninterrupted, resumed = model_weights(two / "psnr" / "model.pt"), model_weights(cut / "psnr" / "model.pt")
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)
    logged = [(two / "live-psnr" / "metrics.json"), (cut / "live-psnr" / "metrics.json")]
    a, b = (json.loads(p.read_text())["train"]["l1"] for p in logged)
    assert a == pytest.approx(b, rel=1e-9)

    summary = trainer.run("psnr", tmp_path / "cut1")  # resumed on one process: gpus is not in the resume key
    assert summary["resumed_from"] == step
    diff = relative_difference(uninterrupted, model_weights(tmp_path / "cut1" / "psnr" / "model.pt"))
    print(f"stopped at step {step} on 2 processes, resumed on 1: relative difference {diff:.2e}")
    assert diff < SAME


# What the launcher sets for torchrun in the pipeline (workflow/Snakefile): torchrun ignores it (below).
LAUNCHER_ENV = {"TORCHELASTIC_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"}


def test_torchrun_takes_the_signals_it_passes_on_from_its_option_not_torchelastic_signals_to_handle(monkeypatch):
    from torch.distributed.run import parse_args

    for name, value in LAUNCHER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PET_SIGNALS_TO_HANDLE", raising=False)
    assert "SIGUSR1" not in parse_args(["--standalone", "x.py"]).signals_to_handle  # and it overwrites the variable
    monkeypatch.setenv("PET_SIGNALS_TO_HANDLE", spsagan.training.torchrun.SIGNALS)  # what our wrapper defaults to
    assert "SIGUSR1" in parse_args(["--standalone", "x.py"]).signals_to_handle.split(",")


@pytest.mark.slow  # two torchrun launches: a minute on a shared CPU
def test_sigusr1_to_the_torchrun_agent_saves_exits_75_and_the_rerun_resumes_bitwise(two, tmp_path):
    # SLURM's --signal=USR1@300 reaches torchrun (here alone, not its group): the pipeline's wrapper
    # makes torchrun pass it on, and turns torchrun's own exit status 1 into the step's 75.
    code, out = stop_paced_run(
        tmp_path,
        lambda proc: os.kill(proc.pid, signal.SIGUSR1),
        launcher="spsagan.training.torchrun",
        env=LAUNCHER_ENV,
    )
    steps = stopped_at(out)
    assert code == 75 and len(steps) == 2 and steps[0] == steps[1], out[-3000:]
    assert out.count("Preempted: received SIGUSR1: saved") == 2, out[-3000:]  # both ranks got it from torchrun
    assert list((tmp_path / "ckpt" / "pretrain_psnr-psnr").glob(f"*/step_{steps[0]:08d}.pt"))
    assert not (tmp_path / "psnr" / "model.pt").exists()

    code, out = finish(torchrun(tmp_path, "psnr", launcher="spsagan.training.torchrun"))
    assert code == 0, out[-3000:]
    assert json.loads((tmp_path / "psnr.json").read_text())["resumed_from"] == steps[0]
    assert (tmp_path / "psnr" / "model.pt").read_bytes() == (two / "psnr" / "model.pt").read_bytes()


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    # SLURM signals every process of a job, but not at the same instant: the ranks agree each iteration.
    code, out = stop_paced_run(
        tmp_path, lambda proc: os.kill(int((tmp_path / "rank1.pid").read_text()), signal.SIGUSR1)
    )
    steps = stopped_at(out)
    assert code != 0 and len(steps) == 2 and steps[0] == steps[1], out[-3000:]
    assert "Preempted: received SIGUSR1: saved" in out
    assert "Preempted: another process of this data-parallel run was asked to stop: saved" in out
    assert list((tmp_path / "ckpt" / "pretrain_psnr-psnr").glob(f"*/step_{steps[0]:08d}.pt"))


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_workers_whose_torchrun_is_killed_save_and_stop(tmp_path):
    # torchrun starts each worker in a session of its own; the workers still watch it (not a session leader here).
    stop_paced_run(tmp_path, lambda proc: proc.kill(), new_session=False)  # SIGKILL: torchrun passes nothing on
    pids = [int((tmp_path / f"rank{r}.pid").read_text()) for r in (0, 1)]
    deadline = time.monotonic() + RUN_TIMEOUT
    while any(running(pid) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if running(pid):
                    os.kill(pid, signal.SIGKILL)  # the workers this test started, by their ids
            raise AssertionError("the workers of a killed torchrun kept running")
        time.sleep(0.2)
    out = next(tmp_path.glob("torchrun-*.log")).read_text()
    steps = stopped_at(out)
    assert len(steps) == 2 and steps[0] == steps[1] and "that started this run exited" in out, out[-3000:]
    assert list((tmp_path / "ckpt" / "pretrain_psnr-psnr").glob(f"*/step_{steps[0]:08d}.pt"))


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.slow  # torchrun on two processes: tens of seconds on a shared CPU
def test_a_second_data_parallel_run_on_a_held_folder_stops_with_one_line(tmp_path):
    folder = tmp_path / "ckpt" / "pretrain_psnr-psnr"
    with lock.exclusive_folder(folder):  # another trainer, still running
        code, out = finish(torchrun(tmp_path, "psnr"))
    lines = [line for line in out.splitlines() if line.startswith("error (InUse)")]
    assert code != 0 and len(lines) == 2, out[-3000:]  # every rank stops, with rank 0's message
    assert all(f"{folder} is in use by another trainer (PID {os.getpid()}" in line for line in lines)
    assert not list(folder.glob("*/step_*.pt")) and not (tmp_path / "psnr" / "model.pt").exists()
