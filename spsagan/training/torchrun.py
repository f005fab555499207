"""torchrun as a preemptible training step needs it: SIGUSR1 passed on, and exit code 75 when preempted.

    python -m spsagan.training.torchrun --standalone --nproc_per_node 4 steps/pretrain_psnr.py ...

takes torchrun's own arguments and runs torchrun (`torch.distributed.run`), with two changes:

- **SIGUSR1 reaches the workers**, as SIGTERM, SIGINT, SIGHUP and SIGQUIT do (SLURM's
  `--signal=USR1@300` goes to torchrun, not to its workers). torchrun takes the signals it passes
  on from its `--signals-to-handle` option or `PET_SIGNALS_TO_HANDLE`, and then overwrites
  `TORCHELASTIC_SIGNALS_TO_HANDLE` with them (torch 2.13), so setting that variable changes nothing.
  `SIGNALS` becomes `PET_SIGNALS_TO_HANDLE`'s default here; an option or variable given still wins.
- **Exit code 75** ("try again later", `errors.Preempted.exit_code`) when the run was preempted:
  torchrun exits 1 both after passing a signal on (its agent raises `SignalException` once the
  workers are gone) and when workers fail. Here a passed-on signal, or workers that all exited 75
  (they saved a checkpoint), exit 75, as a single-process step does; other failures keep
  torchrun's status. After passing a signal on, torchrun waits for the workers (30 s by default,
  `--shutdown-timeout`) before it kills them; saving takes far less.
"""

from __future__ import annotations

import os
import sys

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def main(argv: list[str] | None = None) -> int:
    """Run torchrun with `argv` (default: this process's arguments); returns the exit status."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    from spsagan.errors import Preempted

    os.environ.setdefault("PET_SIGNALS_TO_HANDLE", SIGNALS)
    try:
        torchrun_main(argv)
    except SignalException as err:  # passed on to the workers, which saved and exited
        name = getattr(err.sigval, "name", err.sigval)
        print(f"torchrun: passed {name} on to the workers; exit {Preempted.exit_code}", file=sys.stderr)
        return Preempted.exit_code
    except ChildFailedError as err:
        codes = {failure.exitcode for failure in err.failures.values()}
        if codes == {Preempted.exit_code}:  # every failed worker was preempted (and saved)
            return Preempted.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
