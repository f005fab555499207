"""What every `steps/<stage>.py` shares: the `--params`/`--profile` flags, typed configs, a clean failure.

A step reads only its own params section, as its typed config (`spsagan.config`). Snakemake passes
the section inline as JSON; by hand you may pass the path of params.yaml instead (`--params
params.yaml`), and the active profile's section is used. Every path a step reads or writes arrives
as a flag from the stage registry (workflow/stages.yaml).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from spsagan.errors import ConfigError
from spsagan.pipeline.params import config_from_arg

SCHEMA = Path("workflow/schemas/params.schema.yaml")


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--params", default="params.yaml", help="the stage's params as JSON, or the path of params.yaml (default)"
    )
    parser.add_argument("--profile", default=None, help="profile label recorded in outputs (demo | paper)")
    return parser


def parse(parser: argparse.ArgumentParser, stage: str, argv=None):
    """Parse the command line and return (args, the stage's typed config)."""
    args = parser.parse_args(argv)
    cfg = config_from_arg(args.params, stage, SCHEMA)  # ConfigError: reported by main_guard
    if args.profile is None:
        args.profile = "custom" if args.params.lstrip().startswith("{") else _profile_of(args.params)
    return args, cfg


def _profile_of(params_path: str) -> str:
    from spsagan.pipeline.params import load_yaml

    return load_yaml(params_path)["profile"]


def labelled(values: list[str], flag: str) -> dict[str, Path]:
    """`label=path` values (the registry's references to every instance of a stage) as {label: path}."""
    out = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"{flag}: expected label=path, got {value!r}")
        out[label] = Path(path)
    return out


def threads() -> int:
    """Worker threads the scheduler gave this job (`threads:` in the registry, as OMP_NUM_THREADS)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


def main_guard(fn) -> None:
    """Run a step's main(); expected failures print one clear line and exit 1 (SPSAGAN_DEBUG=1: traceback).

    An exception with an integer `exit_code` (training's `Preempted`) exits with that code instead,
    even when stdout/stderr can no longer be written.
    """
    try:
        fn()
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):
            # Stopped on purpose with its state saved (training preempted): a rerun resumes.
            _say_if_possible(f"{type(exc).__name__}: {exc}")
            sys.exit(code)
        # Errors the library raises on purpose carry a message meant for the user; others are bugs.
        deliberate = type(exc).__module__.startswith("spsagan") or isinstance(exc, (ValueError, FileNotFoundError))
        if not deliberate or os.environ.get("SPSAGAN_DEBUG"):
            raise
        sys.exit(f"error ({type(exc).__name__}): {exc}")


def _say_if_possible(line: str) -> None:
    """Print `line` to stderr if it can still be written; then make sure the exit status survives.

    SLURM signals every process of a job, so the reader of a piped output may be gone: a failed
    write is dropped, and broken streams are pointed at /dev/null, because Python's final flush of
    a broken stdout at exit would replace the exit status with 120.
    """
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            _to_devnull(stream)


def _to_devnull(stream) -> None:
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
