"""`spsagan-study`: create, serve, simulate and export the paper's user study (docs/study.md).

spsagan-study create   --out study/ [--category-sets OST300 --rank-methods SRResNet,SAN,SPSAGAN ...]
spsagan-study serve    --study study/ [--host 127.0.0.1 --port 8000 --token SECRET]
spsagan-study simulate --study study/ --raters 20        (or --url of a running server)
spsagan-study export   --study study/ [-o results/study/votes.csv]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
from pathlib import Path

from spsagan.errors import ConfigError, VoteError
from spsagan.study.design import DB_NAME, StudySpec, create_study, load_design

DEFAULT = StudySpec()
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
STUDY = Path("results/study")  # the study folder: design, images and votes database (from the run)
VOTES = Path("study/votes.csv")  # the exported votes: git keeps them, the study_report stage reads them


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spsagan-study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("create", help="build a study folder from a finished run")
    c.add_argument("--out", type=Path, default=STUDY, help=f"study folder to write ({STUDY})")
    c.add_argument("--sr", type=Path, default=Path("results/evaluate/sr"), help="evaluate's SR images")
    c.add_argument("--hr", type=Path, default=Path("results/make_lr"), help="make_lr's output (<set>/HR/)")
    c.add_argument("--category-sets", type=_names, default=DEFAULT.category_sets, help="comma-separated (OST300)")
    c.add_argument("--category-n", type=int, default=DEFAULT.category_n, help="images per rater from them (30)")
    c.add_argument("--other-sets", type=_names, default=DEFAULT.other_sets, help="out-of-category sets ('' for none)")
    c.add_argument("--other-n", type=int, default=DEFAULT.other_n, help="images per rater from them (10)")
    c.add_argument("--rank-methods", type=_names, default=DEFAULT.rank_methods, help="task 1, ranked with HR")
    c.add_argument("--target", default=DEFAULT.target, help="task 2's method (SPSAGAN)")
    c.add_argument("--pair-methods", type=_names, default=DEFAULT.pair_methods, help="task 2: target against each")
    c.add_argument("--participants", type=int, default=DEFAULT.participants, help="rater slots (30)")
    c.add_argument("--patch", type=int, default=DEFAULT.patch, help="task-2 patch side, HR pixels (96)")
    c.add_argument("--zoom", type=int, default=DEFAULT.zoom, help="task-2 enlargement (3)")
    c.add_argument("--seed", type=int, default=DEFAULT.seed)
    c.add_argument("--skip-missing", action="store_true", help="build without requested methods/sets the run lacks")
    c.add_argument("--force", action="store_true", help="replace a study folder that holds votes (they are lost)")

    s = sub.add_parser("serve", help="serve the study (and the results page) over HTTP")
    s.add_argument("--study", type=Path, default=STUDY, help=f"study folder, from create ({STUDY})")
    s.add_argument("--run", type=Path, default=Path("."), help="run whose results the results page shows (.)")
    s.add_argument("--no-study", dest="study", action="store_const", const=None, help="only the results page")
    s.add_argument("--db", type=Path, help="votes database (default: <study>/votes.sqlite)")
    s.add_argument("--host", default="127.0.0.1", help="listen address (beyond loopback a token is required)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--token", default=os.environ.get("SPSAGAN_STUDY_TOKEN"), help="study token (random beyond loopback)"
    )
    s.add_argument(
        "--results",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the results page at /results (it names the methods; default: only on loopback)",
    )

    m = sub.add_parser("simulate", help="scripted raters through the HTTP API (labelled simulated)")
    m.add_argument("--study", type=Path, help=f"study folder, served on a free local port meanwhile ({STUDY})")
    m.add_argument("--url", help="or the URL of a running server")
    m.add_argument("--db", type=Path, help="votes database with --study (default: <study>/votes.sqlite)")
    m.add_argument("--token", default=os.environ.get("SPSAGAN_STUDY_TOKEN"))
    m.add_argument("--raters", type=int, default=20)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--noise", type=float, default=0.5, help="NIQE rater's noise, NIQE units")

    e = sub.add_parser("export", help="votes to CSV, one row per vote")
    e.add_argument("--study", type=Path, default=STUDY, help=f"study folder ({STUDY})")
    e.add_argument("--db", type=Path, help="votes database (default: <study>/votes.sqlite)")
    e.add_argument("-o", "--out", type=Path, default=VOTES, help=f"CSV to write ({VOTES}: git keeps it)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError, VoteError) as exc:
        sys.exit(f"spsagan-study {args.command}: {exc}")


def _create(args) -> None:
    spec = StudySpec(
        **{k: getattr(args, k) for k in StudySpec.__dataclass_fields__ if k != "skip_missing"},
        skip_missing=args.skip_missing,
    )
    design = create_study(args.sr, args.hr, args.out, spec, force=args.force)
    if design["missing"]["methods"] or design["missing"]["sets"]:
        print(f"left out (not in the run): methods {design['missing']['methods']}, sets {design['missing']['sets']}")
    for group, sets, asked in (("ost", args.category_sets, args.category_n), ("other", args.other_sets, args.other_n)):
        if sets and design["per_rater"][group] < asked:
            print(f"{group}: {design['per_rater'][group]} images per rater, not {asked}: the run has no more")
    trials = len(design["slots"][0]) if design["slots"] else 0
    ranked, paired = ", ".join(design["task1_methods"]), ", ".join(design["pair_methods"])
    print(
        f"{args.out}: {len(design['slots'])} rater slots of {trials} trials; task 1 ranks {ranked}; "
        f"task 2 pairs {design['target']} with {paired}; {len(design['images'])} images"
    )


def _serve(args) -> None:
    from spsagan.study.app import create_app

    if args.study is None and args.results is False:
        raise ConfigError("--no-study with --no-results: nothing to serve")
    loopback = is_loopback(args.host)
    token = args.token
    if not loopback and not token:
        token = secrets.token_urlsafe(16)  # beyond this machine, nobody votes without the link
    results = loopback if args.results is None else args.results
    app = create_app(args.study, args.run if results else None, args.db, token, results)
    where = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    suffix = f"/?token={token}" if token else "/"
    if args.study:
        print(f"participants: {where}{suffix}" + ("" if loopback else "  (use this machine's address)"), flush=True)
    if results:
        print(f"results page: {where}/results{'?token=' + token if token else ''}", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)


def _simulate(args) -> None:
    from spsagan.study.app import create_app
    from spsagan.study.simulate import serving, simulate

    if args.study and args.url:
        raise ConfigError("give either --study (served on a free local port) or --url of a running server")
    if args.url:
        done = simulate(args.url, args.raters, args.seed, args.token, args.noise)
    else:
        with serving(create_app(args.study or STUDY, db=args.db, token=args.token, results=False)) as url:
            done = simulate(url, args.raters, args.seed, args.token, args.noise)
    votes = sum(d["votes"] for d in done)
    print(f"simulated {len(done)} raters ({', '.join(sorted({d['kind'] for d in done}))}): {votes} SIMULATED votes")


def _export(args) -> None:
    from spsagan.study.export import export_votes
    from spsagan.study.store import Store

    db = args.db or args.study / DB_NAME
    if not db.is_file():
        raise ConfigError(f"{db} does not exist: no votes yet (serve the study first)")
    n = export_votes(Store(db, load_design(args.study)), args.out)
    print(f"{args.out}: {n} votes")


COMMANDS = {"create": _create, "serve": _serve, "simulate": _simulate, "export": _export}

if __name__ == "__main__":
    main()
