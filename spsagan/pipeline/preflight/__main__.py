"""`python -m spsagan.pipeline.preflight [--profile paper] [--fetch] [--mirror DIR_OR_URL]`: the preflight table
(`make preflight`), or downloads first (`make fetch`); exit status 1 when a required file is missing or a
download failed."""

from __future__ import annotations

import argparse
import sys

from spsagan.errors import ConfigError
from spsagan.pipeline.preflight import fetch, inspect


def main(argv: list[str] | None = None) -> int:
    from spsagan.pipeline.params import load_params

    parser = argparse.ArgumentParser(prog="python -m spsagan.pipeline.preflight", description=__doc__)
    parser.add_argument("--profile", choices=["demo", "paper"], help="default: params.yaml's profile")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--schema", default="workflow/schemas/params.schema.yaml")
    parser.add_argument("--fetch", action="store_true", help="download every fetchable asset first (make fetch)")
    parser.add_argument("--mirror", help="folder or URL holding the files (default: download_data.mirror)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params, args.schema)
        if args.fetch:
            report = fetch(params, args.profile, mirror=args.mirror, file=sys.stdout)
        else:
            report = inspect(params, args.profile, mirror=args.mirror)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if not report.ok:
        print(report.error_message(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
