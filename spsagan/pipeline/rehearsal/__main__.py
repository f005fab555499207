"""`python -m spsagan.pipeline.rehearsal [--reduced] [--out reports/rehearsal.md] [--root rehearsal] [--device auto]
[--cores N] [--timed N]`: the paper-scale rehearsal (see `spsagan.pipeline.rehearsal`).

`python -m spsagan.pipeline.rehearsal --apply-resources [FILE]`: merge its suggested SLURM resources into
workflow/profiles/slurm/profile.yaml (`spsagan.pipeline.rehearsal.resources`)."""

import argparse
import sys

from spsagan.errors import ConfigError
from spsagan.pipeline.rehearsal import rehearse
from spsagan.pipeline.rehearsal.plan import plan_for
from spsagan.pipeline.rehearsal.resources import PROFILE, SUGGESTION, apply
from spsagan.runtime import resolve_device


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spsagan.pipeline.rehearsal", description=__doc__)
    parser.add_argument(
        "--reduced", action="store_true", help="the CI smoke test: small crops of the photos, 2 crops per batch"
    )
    parser.add_argument("--out", default="reports/rehearsal.md", help="the report to write")
    parser.add_argument("--root", default="rehearsal", help="folder for the rehearsal's results, logs and reports")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: each step's auto)")
    parser.add_argument(
        "--cores",
        type=int,
        default=None,
        help="as snakemake --cores: each step gets min(its registry threads, cores) threads "
        "(default: the usable CPUs the load average leaves free, at least 1)",
    )
    parser.add_argument(
        "--timed",
        type=int,
        default=None,
        help="timed iterations per training job after the warm-up one (default: the plan's)",
    )
    parser.add_argument(
        "--apply-resources",
        nargs="?",
        const=str(SUGGESTION),
        default=None,
        metavar="FILE",
        help=f"run nothing: merge a rehearsal's suggested runtime and mem_mb (default {SUGGESTION}) into "
        f"--slurm-profile, keeping its partitions, CPUs per GPU and signals",
    )
    parser.add_argument("--slurm-profile", default=str(PROFILE), help="the profile --apply-resources edits")
    args = parser.parse_args(argv)
    if args.apply_resources:
        try:
            changes = apply(args.apply_resources, args.slurm_profile)
        except ConfigError as exc:
            sys.exit(f"error: {exc}")
        print("\n".join(changes) or "nothing to change", f"\n({args.slurm_profile})")
        sys.exit(0)
    for name in ("timed", "cores"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    cuda = resolve_device(args.device or "auto").type == "cuda"
    ok = rehearse(plan_for(args.reduced, cuda), args.root, args.out, args.device, args.timed, args.cores)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
