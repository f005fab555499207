"""`python -m spsagan.pipeline COMMAND`:

write-dvc | check-dvc     keep dvc.yaml in step with the registry (workflow/stages.yaml)
dry-run [-S key=value]    what `dvc exp run -S key=value` would rerun (DVC's own --dry fails here)
plots-template [--out F]  an HTML template that makes `dvc plots show` pages work offline
params-views              write the params schema and docs/params.md from the declarations (spsagan/config.py)
check-params-views        exit 1 if either differs from the declarations
"""

import argparse
import sys

from spsagan.pipeline.registry import dvc_yaml_is_current, load_registry, write_dvc_yaml


def _dry_run(overrides: list[str]) -> int:
    from spsagan.pipeline.dryrun import dry_run

    try:
        proc = dry_run(overrides, extra=["--quiet", "rules"])
    except Exception as exc:  # DVC's InvalidArgumentError names the bad override in its cause
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        print(f"error: {exc}{cause}", file=sys.stderr)
        return 2
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return proc.returncode
    what = f"with {' '.join(overrides)}" if overrides else "with params.yaml as it is"
    lines = proc.stdout.splitlines()
    if "Job stats:" not in lines:
        print(f"{what}, nothing would rerun")
        return 0
    # The job table (Snakemake prints it twice: once is enough) and the reasons, indented under their header.
    start = lines.index("Job stats:")
    table = lines[start : lines.index("", start)]
    reasons = []
    if "Reasons:" in lines:
        for line in lines[lines.index("Reasons:") + 1 :]:
            if not line.startswith(" "):
                break
            if "check individual jobs" not in line:
                reasons.append(line)
        reasons = ["", "Reasons:", *reasons]
    print(f"{what}, `dvc exp run` would run these jobs (Snakemake's dry run; nothing was changed):\n")
    print("\n".join(table + reasons))
    return 0


def _params_views(check: bool) -> int:
    from spsagan.pipeline import param_views

    if not check:
        changed = param_views.write_views()
        print(f"wrote {', '.join(map(str, changed))}" if changed else "the params views were already current")
        return 0
    stale = param_views.stale_views()
    if stale:
        print(f"stale: {', '.join(map(str, stale))}; run `{param_views.COMMAND}`", file=sys.stderr)
        return 1
    print("the params schema and docs/params.md are current with spsagan/config.py")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spsagan.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command", choices=["write-dvc", "check-dvc", "dry-run", "plots-template", "params-views", "check-params-views"]
    )
    parser.add_argument("--registry", default="workflow/stages.yaml")
    parser.add_argument("--dvc-yaml", default="dvc.yaml")
    parser.add_argument(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dry-run: a params.yaml override, as `dvc exp run -S`",
    )
    parser.add_argument("--out", default="dvc_plots/offline_template.html", help="plots-template: the file to write")
    parser.add_argument("--cache", default="downloads/npm", help="plots-template: where the libraries are kept")
    args = parser.parse_args(argv)
    if args.command == "dry-run":
        return _dry_run(args.overrides)
    if args.command == "plots-template":
        from spsagan.pipeline.plots import write_offline_template

        path = write_offline_template(args.out, args.cache)
        print(f"wrote {path}: use it with `dvc plots show --html-template {path}` (or `dvc plots diff`)")
        return 0
    if args.command in ("params-views", "check-params-views"):
        return _params_views(check=args.command == "check-params-views")
    try:
        registry = load_registry(args.registry)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "write-dvc":
        write_dvc_yaml(registry, args.dvc_yaml)
        print(f"wrote {args.dvc_yaml} from {args.registry}")
        return 0
    if dvc_yaml_is_current(registry, args.dvc_yaml):
        print(f"{args.dvc_yaml} is current with {args.registry}")
        return 0
    print(f"{args.dvc_yaml} is stale: run `python -m spsagan.pipeline write-dvc`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
