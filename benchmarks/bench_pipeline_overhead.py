"""Pipeline overhead: wall time of no-op Snakemake and DVC commands in this repository.

Run after a complete pipeline run (`make demo` then `dvc commit -f`, or `dvc repro`), from the
repository root: `python benchmarks/bench_pipeline_overhead.py`. Prints median seconds of 5 runs.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "snakemake -n (dry run, nothing to do)": [str(BIN / "snakemake"), "-n", "--quiet", "all"],
    "snakemake (no-op run)": [str(BIN / "snakemake"), "--quiet", "all"],
    "dvc status": [str(BIN / "dvc"), "status"],
    "dvc repro (no-op)": [str(BIN / "dvc"), "repro"],
}


def main() -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    print("| command | median s (5 runs) |\n|---|--:|")
    for label, cmd in COMMANDS.items():
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        print(f"| `{label}` | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
