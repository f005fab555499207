"""What each kind of kill does to a training run (docs/training.md, "What happens on each kind of kill").

The subprocess tests run a step-like script (a tiny PSNR pretraining under `main_guard`, as
steps/pretrain_psnr.py runs it) and signal it the way SLURM and Snakemake do; the others run in
process with the same tiny network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import spsagan
from spsagan import errors
from spsagan.atomic import atomic_path
from spsagan.image import imresize
from spsagan.pipeline.params import load_config
from spsagan.training import SubImageSet, TrainData, lock, train_psnr

torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups and signals")

REPO = Path(spsagan.__file__).resolve().parent.parent
STARTED_TIMEOUT = 120  # importing torch on a busy shared CPU
STOP_TIMEOUT = 60

# A step as the pipeline runs it: its output buffered (no PYTHONUNBUFFERED), the progress bar on,
# main_guard turning Preempted into exit code 75. Training runs "forever" (no periodic checkpoint
# before the stop); the hook marks the first iteration and paces the loop to spare the shared CPU.
TRAINER = textwrap.dedent("""
    import os, sys, time
    from dataclasses import replace
    from pathlib import Path

    import numpy as np
    import torch

    import spsagan
    from spsagan.image import imresize
    from spsagan.pipeline.params import load_config
    from spsagan.pipeline.step import main_guard
    from spsagan.training import SubImageSet, TrainData, train_psnr

    torch.set_num_threads(1)
    root = Path(sys.argv[1])
    REPO = Path(spsagan.__file__).resolve().parent.parent  # params.yaml, wherever the trainer runs
    repo = dict(params_path=REPO / "params.yaml", schema_path=REPO / "workflow" / "schemas" / "params.schema.yaml")
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000  # the rerun-while-alive test: 40, with live files


    def started(done):
        if done == 1:
            (root / "started").write_text(str(os.getpid()))
        time.sleep(0.02)
        while done >= 20 and (root / "hold").exists():  # a test holds the run here while it reruns the pipeline
            time.sleep(0.05)


    def main():
        print("trainer: starting")  # stays in stdout's buffer until exit, as any print of a step does
        rng = np.random.default_rng(0)
        gts = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
        data = TrainData([SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts])], [1.0])
        cfg = replace(load_config("pretrain_psnr", "demo", **repo), num_feat=4, num_block=1, num_grow_ch=4,
                      iters=iters, batch_size=1, crop_size=32, val_every=1_000_000,
                      ckpt_every=1_000_000, log_every=10, seeds=[1])
        live = root / "out" / "live" if iters < 1_000_000 else None
        train_psnr(cfg, "esrgan", data, root / "out" / "model.pt", root / "ckpt", live, device="cpu",
                   progress=True, on_step=started)


    main_guard(main)
""")


def trainer_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_trainer(root: Path, **popen) -> subprocess.Popen:
    script = root / "trainer.py"
    script.write_text(TRAINER)
    return subprocess.Popen([sys.executable, str(script), str(root)], env=trainer_env(), cwd=REPO, **popen)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def wait_started(root: Path, proc: subprocess.Popen) -> None:
    def ready():
        assert proc.poll() is None, f"the trainer exited early with code {proc.returncode}"
        return (root / "started").exists()

    wait_for(ready, STARTED_TIMEOUT, "the first training iteration")


def checkpoints(root: Path) -> list[Path]:
    return sorted((root / "ckpt").glob("pretrain_psnr-out/*/step_*.pt"))


def end(proc: subprocess.Popen) -> None:
    """Kill a trainer this test started if it is still running (by its own id)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


# --------------------------------------------------------------------------------------------------
# A: signals to the whole process group


@pytest.mark.slow  # a subprocess that imports torch: several seconds
def test_group_signal_with_its_output_pipe_closed_still_saves_and_exits_75(tmp_path):
    # The reader of the step's output (formerly `| tee {log}`) is gone before the trainer hears the
    # signal: every later write to stdout/stderr fails with EPIPE.
    proc = start_trainer(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_started(tmp_path, proc)
        proc.stdout.close()
        os.killpg(proc.pid, signal.SIGUSR1)
        code = proc.wait(timeout=STOP_TIMEOUT)
    finally:
        end(proc)
    assert checkpoints(tmp_path), "no checkpoint saved"
    assert code == errors.Preempted.exit_code == 75


@pytest.mark.slow  # a subprocess that imports torch: several seconds
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_group_with_output_to_a_file_exits_75_and_says_preempted(tmp_path, signame):
    # SIGTERM: SLURM or Snakemake stopping the job; SIGHUP: a closing terminal, or tmux after its
    # Snakemake was SIGKILLed, hangs up on the step's processes.
    log = tmp_path / "step.log"
    with open(log, "wb") as out:  # as Snakemake's `> {log} 2>&1`
        proc = start_trainer(tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_started(tmp_path, proc)
        os.killpg(proc.pid, getattr(signal, signame))
        code = proc.wait(timeout=STOP_TIMEOUT)
    finally:
        end(proc)
    text = log.read_text(errors="replace")
    assert code == 75, text
    assert f"Preempted: received {signame}: saved a resumable checkpoint" in text
    assert checkpoints(tmp_path)


# --------------------------------------------------------------------------------------------------
# B: a trainer left behind by a killed Snakemake


# The process that starts the step, and then exits or is SIGKILLed: "exit" starts the trainer
# itself; "bash" starts it as Snakemake does, through `bash -c "set -euo pipefail; ... > log 2>&1"`,
# whose shell stays alive when the launcher dies.
LAUNCHER = textwrap.dedent("""
    import shlex, subprocess, sys, time
    from pathlib import Path

    root, how = Path(sys.argv[1]), sys.argv[2]
    argv = [sys.executable, str(root / "trainer.py"), str(root)]
    if how == "bash":
        line = "set -euo pipefail; " + shlex.join(argv) + " > " + shlex.quote(str(root / "trainer.log")) + " 2>&1"
        subprocess.Popen(["bash", "-c", line])
        time.sleep(3600)  # until the test SIGKILLs this process
    with open(root / "trainer.log", "wb") as log:
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + float(sys.argv[3])
    while not (root / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # exits without waiting for the trainer, which is left running as an orphan
""")


@pytest.mark.slow  # a subprocess that imports torch: several seconds
@pytest.mark.parametrize("how", ["exit", "bash"])
def test_a_trainer_whose_launcher_is_gone_saves_a_checkpoint_and_stops(tmp_path, how):
    (tmp_path / "trainer.py").write_text(TRAINER)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    launcher = subprocess.Popen(
        [sys.executable, str(tmp_path / "launcher.py"), str(tmp_path), how, str(STARTED_TIMEOUT)],
        env=trainer_env(),
        cwd=REPO,
    )
    log = tmp_path / "trainer.log"
    pid = None
    try:
        started = tmp_path / "started"
        wait_for(
            lambda: started.exists() and started.read_text().isdigit(), STARTED_TIMEOUT, "the first training iteration"
        )
        pid = int(started.read_text())
        if how == "bash":
            launcher.kill()  # SIGKILL, as a killed Snakemake
        assert launcher.wait(timeout=STOP_TIMEOUT) == (-signal.SIGKILL if how == "bash" else 0)
        wait_for(lambda: "Preempted" in log.read_text(errors="replace"), STOP_TIMEOUT, "the orphan to stop")
        wait_for(lambda: not _running(pid), STOP_TIMEOUT, "the orphan to exit")
    finally:
        end(launcher)
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGKILL)  # the trainer this test started, by its id
    text = log.read_text(errors="replace")
    assert checkpoints(tmp_path), text
    assert f"the process {launcher.pid} (python" in text and "that started this run exited" in text


@pytest.mark.slow  # a subprocess that imports torch: several seconds
def test_a_trainer_whose_session_leading_snakemake_is_killed_saves_and_stops(tmp_path):
    # `setsid snakemake ...`: Snakemake leads its session, so the trainer's ancestors stop there. The
    # launcher plays Snakemake (a script named snakemake, as a venv's bin/snakemake runs) and starts the
    # step through `bash -c`, which outlives it.
    (tmp_path / "trainer.py").write_text(TRAINER)
    (tmp_path / "snakemake").write_text(LAUNCHER)
    launcher = subprocess.Popen(
        [sys.executable, str(tmp_path / "snakemake"), str(tmp_path), "bash", str(STARTED_TIMEOUT)],
        env=trainer_env(),
        cwd=REPO,
        start_new_session=True,
    )
    log = tmp_path / "trainer.log"
    pid = None
    try:
        started = tmp_path / "started"
        wait_for(
            lambda: started.exists() and started.read_text().isdigit(), STARTED_TIMEOUT, "the first training iteration"
        )
        pid = int(started.read_text())
        launcher.kill()
        assert launcher.wait(timeout=STOP_TIMEOUT) == -signal.SIGKILL
        wait_for(lambda: not _running(pid), STOP_TIMEOUT, "the trainer to save and exit")
    finally:
        end(launcher)
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGKILL)  # the trainer this test started, by its id
    text = log.read_text(errors="replace")
    assert checkpoints(tmp_path), text
    assert f"Preempted: the process {launcher.pid} (" in text and "that started this run exited" in text, text


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


# --------------------------------------------------------------------------------------------------
# In-process runs: a second trainer, leftovers of a kill during a checkpoint write

PSNR = replace(
    load_config("pretrain_psnr", "demo"),
    num_feat=4,
    num_block=1,
    num_grow_ch=4,
    iters=8,
    batch_size=1,
    crop_size=32,
    val_every=100,
    ckpt_every=4,
    log_every=2,
    seeds=[3],
    deterministic=True,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    return TrainData([SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts])], [1.0])


def run_psnr(data, root, **kw):
    return train_psnr(
        PSNR, "esrgan", data, root / "psnr" / "model.pt", root / "ckpt", None, device="cpu", progress=False, **kw
    )


def test_a_second_trainer_on_the_same_folder_stops_at_once_naming_the_holder(data, tmp_path):
    folder = tmp_path / "ckpt" / "pretrain_psnr-psnr"
    steps = []
    with lock.exclusive_folder(folder):  # the first trainer, still running
        with pytest.raises(errors.InUse) as info:
            run_psnr(data, tmp_path, on_step=steps.append)
    message = str(info.value)
    assert f"PID {os.getpid()}" in message and "wait" in message and f"kill {os.getpid()}" in message
    assert "\n" not in message and str(folder) in message
    assert steps == [] and not (tmp_path / "psnr" / "model.pt").exists()
    assert run_psnr(data, tmp_path)["iterations_run"] == PSNR.iters  # free again once the holder is gone


def test_a_pipeline_run_refuses_to_start_while_a_trainer_holds_a_checkpoint_folder(tmp_path):
    folder = tmp_path / "ckpt" / "train_gan-spsa"
    (tmp_path / "ckpt" / "pretrain_psnr-rrdb").mkdir(parents=True)
    (tmp_path / "ckpt" / "pretrain_psnr-rrdb" / lock.LOCK_FILE).write_text("1 node7 2026-01-01T00:00:00\n")  # stale
    with lock.exclusive_folder(folder):  # a trainer, still running
        (line,) = lock.live_trainers(tmp_path / "ckpt")
        assert f"{folder} is in use by another trainer (PID {os.getpid()}" in line
        with pytest.raises(errors.InUse, match="nothing was started or deleted") as info:
            lock.refuse_live_trainers([tmp_path / "ckpt", tmp_path / "ckpt", tmp_path / "elsewhere"])
        assert str(info.value).count("(PID") == 1 and "\n" not in str(info.value)
    assert lock.live_trainers(tmp_path / "ckpt") == []  # the stale file blocks nothing
    lock.refuse_live_trainers([tmp_path / "ckpt"])


def test_leftovers_of_a_kill_during_a_checkpoint_write_are_removed_and_the_run_resumes(data, tmp_path):
    def crash(done):
        if done == 6:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):
        run_psnr(data, tmp_path, on_step=crash)
    (key_dir,) = [p for p in (tmp_path / "ckpt" / "pretrain_psnr-psnr").iterdir() if p.is_dir()]
    assert [p.name for p in key_dir.iterdir()] == ["step_00000004.pt"]
    # A kill inside atomic_path leaves its temporary file: entered, written (or not), never left.
    interrupted = []
    for step, content in ((8, b""), (6, (key_dir / "step_00000004.pt").read_bytes()[:1000])):
        writing = atomic_path(key_dir / f"step_{step:08d}.pt")
        tmp = writing.__enter__()
        tmp.write_bytes(content)
        interrupted.append((writing, tmp))
    model_writing = atomic_path(tmp_path / "psnr" / "model.pt")  # the final model's write, killed too
    interrupted.append((model_writing, model_writing.__enter__()))
    assert all(tmp.exists() for _, tmp in interrupted)

    summary = run_psnr(data, tmp_path)
    assert summary["resumed_from"] == 4 and summary["iterations_run"] == 4
    assert not any(tmp.exists() for _, tmp in interrupted)
    assert sorted(p.name for p in key_dir.iterdir()) == ["step_00000004.pt", "step_00000008.pt"]


def test_ctrl_c_saves_like_sigterm_and_a_second_one_interrupts_at_once(data, tmp_path):
    # Ctrl-C in the terminal of a running Snakemake sends SIGINT to its whole foreground group.
    def ctrl_c(times):
        def hook(done):
            if done == 3:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)

        return hook

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(errors.Preempted, match="received SIGINT") as info:
        run_psnr(data, tmp_path / "once", on_step=ctrl_c(1))
    assert info.value.step == 3 and info.value.path.exists()
    with pytest.raises(KeyboardInterrupt):
        run_psnr(data, tmp_path / "twice", on_step=ctrl_c(2))
    assert not list((tmp_path / "twice" / "ckpt").glob("*/*/step_*.pt"))
    assert signal.getsignal(signal.SIGINT) is previous  # restored


# --------------------------------------------------------------------------------------------------
# C: rerunning the pipeline while a trainer from an earlier run still runs

# A one-rule workflow as workflow/Snakefile builds them: the step writes a model and a dvclive folder,
# and `onstart` refuses to start while a trainer holds a checkpoint folder (the Snakefile's hook).
SNAKEFILE = textwrap.dedent("""
    import sys
    from spsagan.errors import InUse
    from spsagan.training.lock import refuse_live_trainers

    onstart:
        try:
            refuse_live_trainers(["ckpt"])
        except InUse as exc:
            raise WorkflowError(str(exc)) from None

    rule train:
        output: "out/model.pt", "out/live/metrics.json", directory("out/live/plots")
        log: "train.log"
        shell: "SPSAGAN_DETACHED=1 {sys.executable:q} trainer.py . 40 > {log} 2>&1"
""")


def snakemake(root: Path, *args: str, **popen) -> subprocess.Popen:
    """Snakemake in `root` as the workflow profile runs it (`rerun-incomplete`); output to a pipe."""
    argv = [sys.executable, "-m", "snakemake", "--cores", "1", "--rerun-incomplete", *args]
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, **popen}
    return subprocess.Popen(argv, cwd=root, env=trainer_env(), **popen)


def said(proc: subprocess.Popen) -> str:
    return proc.communicate(timeout=STARTED_TIMEOUT)[0].decode(errors="replace")


def outputs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "out").rglob("*") if p.is_file())


@pytest.mark.slow  # Snakemake three times and a trainer: tens of seconds
def test_a_rerun_while_the_trainer_lives_deletes_nothing_and_accepts_nothing_half_done(tmp_path):
    # A detached trainer (as a SLURM job, which outlives the Snakemake on the login node) keeps
    # training after its Snakemake is SIGKILLed; it then waits at step 20 while the test reruns.
    (tmp_path / "trainer.py").write_text(TRAINER)
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "hold").touch()
    first = snakemake(tmp_path, start_new_session=True, stdout=subprocess.DEVNULL)
    pid = None
    try:

        def live():
            assert first.poll() is None, (tmp_path / "train.log").read_text(errors="replace")
            return (tmp_path / "out" / "live" / "metrics.json").exists()

        wait_for(live, STARTED_TIMEOUT, "live metrics")
        pid = int((tmp_path / "started").read_text())
        first.kill()
        first.wait(timeout=STOP_TIMEOUT)
        before = outputs(tmp_path)
        assert "out/live/metrics.json" in before and "out/model.pt" not in before

        assert said(snakemake(tmp_path, "--unlock")) is not None  # the documented recovery: unlock, rerun
        rerun = snakemake(tmp_path)
        text = said(rerun)
        assert rerun.returncode != 0 and f"(PID {pid} " in text and "nothing was started or deleted" in text, text
        assert outputs(tmp_path) == before and _running(pid)  # nothing deleted, the trainer unharmed

        (tmp_path / "hold").unlink()  # the trainer finishes on its own, without a Snakemake
        wait_for(lambda: not _running(pid), STARTED_TIMEOUT, "the trainer to finish")
        assert (tmp_path / "out" / "model.pt").exists()
        rows = (tmp_path / "out" / "live" / "plots" / "metrics" / "train" / "l1.tsv").read_text().split()
        assert rows[2::2] == ["10", "20", "30", "40"]  # the live files are whole

        # The killed run's job never ended in a Snakemake: its outputs are not taken as up to date.
        text = said(snakemake(tmp_path, "-n"))
        assert "Nothing to be done" not in text and "train" in text and "incomplete" in text.lower(), text
    finally:
        end(first)
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGKILL)  # the trainer this test started, by its id
