"""study_report: the user study's section of the reports (paper Sec. 4.3, Fig. 9 and 10) from its votes.

Reads `--votes` (study/votes.csv, written by `spsagan-study export`; git keeps it, header-only before
a study). Writes `--report` (reports/study.md: rank frequencies, mean ranks with a bootstrap interval
over raters, preference shares with Wilson intervals and binomial tests) and `--figures`
(reports/study/: fig9_user_study.png, fig10_user_study.png, stats.json) and `--vote-summary` (people's
votes per task, image group and opponent of SPSAGAN: what render_reports' claims read). Without votes
the section says how to run the study; votes of scripted raters are labelled simulated everywhere.
"""

from pathlib import Path

from spsagan.pipeline.step import main_guard, parse, stage_parser
from spsagan.study.report import render_study


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--votes", required=True, type=Path, help="the exported votes (CSV)")
    parser.add_argument("--report", required=True, type=Path, help="the study section (markdown)")
    parser.add_argument("--figures", required=True, type=Path, help="folder for Fig. 9, Fig. 10 and stats.json")
    parser.add_argument("--vote-summary", required=True, type=Path, help="people's votes for the claims (CSV)")
    args, cfg = parse(parser, "study_report")
    result = render_study(
        args.votes,
        args.report.parent,
        seed=cfg.seed,
        n_resamples=cfg.bootstrap_samples,
        md_path=args.report,
        figures_dir=args.figures,
        summary_path=args.vote_summary,
    )
    print(f"study_report: {result['votes']} votes{' (' + result['label'] + ')' if result.get('label') else ''}")


if __name__ == "__main__":
    main_guard(main)
