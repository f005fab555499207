"""Run one step script in this process and record what only the process itself can see.

    python -m spsagan.pipeline.rehearsal.probe RECORD.json steps/<stage>.py [step flags...]

The script runs exactly as `python steps/<stage>.py ...` would (as `__main__`, same flags, same exit
status). At exit RECORD.json gets: the exit status, the wall seconds, the process's peak resident
memory (ru_maxrss) and, when the step used CUDA, the peak memory torch allocated on each GPU and the
GPU's name. The launcher (`spsagan.pipeline.launch`) starts every step through this when the rehearsal
asks for records; under torchrun, rank 0 writes the record.
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import sys
import time
from pathlib import Path


def gpu_facts() -> dict:
    """Peak allocated bytes (max over devices) and the device name, when this process used CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    peaks = [torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())]
    busiest = max(range(len(peaks)), key=peaks.__getitem__)
    return {"gpu_peak_bytes": int(peaks[busiest]), "gpu_name": torch.cuda.get_device_name(busiest)}


def exit_status(exc: SystemExit) -> int:
    """The status `sys.exit(value)` ends a process with (a message string means 1)."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m spsagan.pipeline.rehearsal.probe RECORD.json SCRIPT [ARGS...]")
    record, script, args = Path(argv[0]), argv[1], argv[2:]
    sys.argv = [script, *args]
    started, status = time.perf_counter(), 1
    try:
        runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = exit_status(exc)
        raise
    finally:
        unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        facts = {
            "exit": status,
            "seconds": round(time.perf_counter() - started, 3),
            "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit,
            **gpu_facts(),
        }
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank runs this: rank 0 speaks for them
            record.write_text(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1:])
