"""`python -m spsagan.pipeline write-dvc | check-dvc`: keep dvc.yaml in step with the registry."""

import argparse
import sys

from spsagan.pipeline.registry import dvc_yaml_is_current, load_registry, write_dvc_yaml


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spsagan.pipeline", description=__doc__)
    parser.add_argument("command", choices=["write-dvc", "check-dvc"])
    parser.add_argument("--registry", default="workflow/stages.yaml")
    parser.add_argument("--dvc-yaml", default="dvc.yaml")
    args = parser.parse_args(argv)
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
