"""The paper's claims, one by one, with the evidence this run has for each (`reports/claims.md`).

Every claim (`CLAIMS`) names where the paper makes it and its words in one line, and gets one
verdict: supported, contradicted, inconclusive, not comparable (the run uses stand-ins) or not
available (a method, score or vote is missing). The rules (docs/reports.md, "Claims"):

- A comparison "A better than B on a metric" uses paired per-image differences on the same images.
  Each image's score is first averaged over a method's training runs (seeds); the effect is the mean
  over images of A - B. Two 95% intervals must agree: the image interval (paired percentile
  bootstrap over images: is the effect larger than the image-to-image noise?) and the run interval
  (Welch t interval of the difference of the per-seed set means: is it larger than the
  run-to-run noise?). Supported when both lie on the claimed side of 0, contradicted when both lie on
  the other side, inconclusive otherwise. A retrained method with fewer than MIN_RUNS runs has no run
  interval: inconclusive. A fixed method (published weights, bicubic) counts as one exact run.
- "A close to B": the same two intervals against an equivalence margin: supported when both lie
  inside [-margin, margin], contradicted when both lie beyond it on the same side.
- A claim over several comparisons (several rival methods or test sets) is supported when every
  comparison is, contradicted when any is, inconclusive otherwise; comparisons that cannot be made are
  named.
- Timing: the ratio of per-image median times (geometric mean over the timing images), its interval
  a percentile bootstrap over each image's timed repeats, against 1.
- User study: a share of votes, with a Wilson interval, against one half.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spsagan.atomic import write_text
from spsagan.reports import output_paths, provenance
from spsagan.reports.names import FIXED, display_name, method_kind
from spsagan.reports.paper import INFERENCE_TIME, canonical_dataset
from spsagan.reports.stats import MIN_IMAGES, mean_interval, paired_bootstrap
from spsagan.tables import markdown

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
NOT_COMPARABLE, NOT_AVAILABLE = "not comparable", "not available"
MIN_RUNS = 3  # runs of a retrained method before its run-to-run spread is estimated
PI_MARGIN = 0.1  # "close to" on PI (docs/decisions.md, "Claims: margins")
SHARE_MARGIN = 0.1  # "comparable" in the user study: a vote share within 0.5 ± this
NO_VOTES = "no votes yet: run the study (docs/study.md)"
HIGHER_BETTER = {"psnr": True, "ssim": True, "niqe": False, "pi": False}
METRIC_LABEL = {"psnr": "PSNR (dB)", "ssim": "SSIM", "niqe": "NIQE", "pi": "PI"}
DIGITS = {"psnr": 2, "ssim": 4, "niqe": 3, "pi": 3}

PSNR_ORIENTED = ["SRCNN", "SRResNet", "SAN", "rrdb_psnr", "rrsb_psnr"]
PERCEPTION_DRIVEN = ["SRGAN", "NatSR", "SFTGAN", "ESRGAN", "spsagan"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper. kind: better | close | tradeoff | faster | study | study_comparable.
    a: the method the claim is about; rivals: what it is compared with; metric, datasets: where."""

    key: str
    source: str
    words: str
    kind: str
    a: str = "spsagan"
    rivals: tuple[str, ...] = ()
    metric: str = "pi"
    datasets: tuple[str, ...] = ("BSD100",)
    study: tuple[tuple[str, str], ...] = field(default=())  # (task, images) of the votes that decide


CLAIMS = [
    Claim(
        "best_pi_bsd100",
        "Sec. 4.2 / Table 1",
        "SPSAGAN achieves the best PI on BSD100 (2.365).",
        "better",
        rivals=("SRGAN", "NatSR", "SFTGAN", "ESRGAN"),
    ),
    Claim(
        "ost_pi_close_to_sftgan",
        "Sec. 4.2 / Table 1",
        "The PI on OST is also close to the best method, SFTGAN.",
        "close",
        rivals=("SFTGAN",),
        datasets=("OST300",),
    ),
    Claim(
        "tradeoff",
        "Sec. 4.2 / Table 1",
        "PSNR-oriented methods have better PSNR/SSIM, perception-driven methods better PI.",
        "tradeoff",
        datasets=("BSD100", "OST300"),
    ),
    Claim(
        "fa_over_esrgan",
        "Sec. 4.4 / Fig. 11",
        "Feature attention removes blur and artifacts (+FA over ESRGAN).",
        "better",
        a="+fa",
        rivals=("esrgan",),
        datasets=("OST300", "BSD100"),
    ),
    Claim(
        "spsa_over_fa",
        "Sec. 4.4 / Fig. 11",
        "Segmentation attention gives clearer, more regular textures (+SPSA over +FA).",
        "better",
        a="+spsa",
        rivals=("+fa",),
        datasets=("OST300", "BSD100"),
    ),
    Claim(
        "rrsb_over_spsa",
        "Sec. 4.4 / Fig. 11",
        "RRSB further improves the overall visual quality (SPSAGAN over +SPSA).",
        "better",
        rivals=("+spsa",),
        datasets=("OST300", "BSD100"),
    ),
    Claim(
        "rrsb_faster",
        "Sec. 4.4",
        "Average inference time per OST image 0.368 s before and 0.296 s after pruning (1.24x, GTX 1080Ti).",
        "faster",
        a="spsagan",
        rivals=("+spsa",),
    ),
    Claim(
        "study_rank",
        "Sec. 4.3 / Fig. 9",
        "SPSAGAN is ranked better than SRResNet and SAN, on OST and on out-of-category images.",
        "study",
        rivals=("SRResNet", "SAN"),
        study=(("rank", "OST300"), ("rank", "out-of-category")),
    ),
    Claim(
        "study_pairs",
        "Sec. 4.3 / Fig. 10",
        "SPSAGAN is preferred over SFTGAN, ESRGAN and NatSR, on OST and on out-of-category images.",
        "study",
        rivals=("SFTGAN", "ESRGAN", "NatSR"),
        study=(("pair", "OST300"), ("pair", "out-of-category")),
    ),
    Claim(
        "out_of_category",
        "Sec. 4.3 / Fig. 8",
        'On out-of-category images SPSAGAN is "comparable" to other methods.',
        "study_comparable",
        rivals=("SFTGAN", "ESRGAN", "NatSR"),
        study=(("pair", "out-of-category"),),
    ),
]


# --------------------------------------------------------------------------------------------------
# Evidence from per-image scores


def _runs(per_image: pd.DataFrame, method: str, dataset: str, metric: str) -> tuple[pd.Series, np.ndarray]:
    """(each image's score averaged over the method's seeds, indexed by name; the per-seed set means)."""
    rows = per_image[(per_image["method"] == method) & (per_image["dataset"] == dataset)]
    seeds = rows["seed"].fillna(-1) if "seed" in rows.columns else pd.Series(-1, index=rows.index)
    by_image = rows.groupby("name")[metric].agg(lambda c: c.mean(skipna=False))
    by_seed = rows.groupby(seeds)[metric].agg(lambda c: c.mean(skipna=False)).to_numpy(dtype=np.float64)
    return by_image, by_seed


def _run_interval(a_runs: np.ndarray, b_runs: np.ndarray, a_fixed: bool, b_fixed: bool, confidence: float):
    """Interval of mean(A) - mean(B) over training runs; None when a retrained side has < MIN_RUNS runs.

    A fixed side is one exact value. Both retrained: Welch's t interval; one retrained: the one-sample t
    interval of its runs minus the fixed value; both fixed: the difference itself (no run noise)."""
    from scipy.stats import t

    if (not a_fixed and len(a_runs) < MIN_RUNS) or (not b_fixed and len(b_runs) < MIN_RUNS):
        return None
    if a_fixed and b_fixed:
        d = float(a_runs.mean() - b_runs.mean())
        return d, d
    if a_fixed or b_fixed:
        runs, const, sign = (b_runs, a_runs.mean(), -1.0) if a_fixed else (a_runs, b_runs.mean(), 1.0)
        iv = mean_interval(runs, confidence)
        ends = sorted((sign * (iv["low"] - const), sign * (iv["high"] - const)))
        return ends[0], ends[1]
    va, vb = a_runs.var(ddof=1) / len(a_runs), b_runs.var(ddof=1) / len(b_runs)
    se = math.sqrt(va + vb)
    if se == 0:
        d = float(a_runs.mean() - b_runs.mean())
        return d, d
    df = (va + vb) ** 2 / (va**2 / (len(a_runs) - 1) + vb**2 / (len(b_runs) - 1))
    half = float(t.ppf((1 + confidence) / 2, df)) * se
    d = float(a_runs.mean() - b_runs.mean())
    return d - half, d + half


def _side(low: float, high: float, margin: float = 0.0) -> int:
    """+1 when [low, high] lies above margin, -1 when below -margin, 0 when it touches [-margin, margin]."""
    return 1 if low > margin else -1 if high < -margin else 0


def compare(
    per_image: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    dataset: str,
    standins: list[str],
    seed: int,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    margin: float | None = None,
    kinds: dict[str, str] | None = None,
) -> dict:
    """One comparison of method a with method b on `metric` over the images of `dataset`.

    per_image: method, dataset, name, <metric>[, seed]: results method names, canonical datasets.
    margin: None for "a better than b" (the metric's own direction), a number for "a close to b".
    Returns {a, b, dataset, metric, n, runs_a, runs_b, effect (mean of a - b, metric units),
    image_low, image_high, run_low, run_high, verdict, why}; intervals NaN where none.
    """
    kinds = kinds or {}
    out = {
        "a": a,
        "b": b,
        "dataset": dataset,
        "metric": metric,
        "n": 0,
        "runs_a": 0,
        "runs_b": 0,
        "effect": math.nan,
        "image_low": math.nan,
        "image_high": math.nan,
        "run_low": math.nan,
        "run_high": math.nan,
        "verdict": NOT_AVAILABLE,
        "why": "",
    }
    here = per_image[per_image["dataset"] == dataset]
    missing = [display_name(m) for m in (a, b) if not (here["method"] == m).any()]
    if missing:
        return {**out, "why": f"{' and '.join(missing)} not evaluated on {dataset}"}
    a_img, a_runs = _runs(per_image, a, dataset, metric)
    b_img, b_runs = _runs(per_image, b, dataset, metric)
    only = sorted(set(a_img.index) ^ set(b_img.index))
    if only:  # evaluate scores every method on every image: a mismatch means mixed evaluations
        raise ValueError(
            f"{a!r} and {b!r} on {dataset} were scored on different images (only one has: {', '.join(only)})"
        )
    names = sorted(a_img.index)
    out.update(n=len(names), runs_a=len(a_runs), runs_b=len(b_runs))
    diff = (a_img[names] - b_img[names]).to_numpy(dtype=np.float64)
    complete = len(names) > 0 and bool(np.isfinite(diff).all())
    if complete:
        out["effect"] = float(diff.mean())
    elif metric == "pi":  # offline: NIQE, PI's no-reference half, is shown for information, never judged
        shown = compare(per_image, a, b, "niqe", dataset, standins, seed, n_resamples, confidence, margin, kinds)
        if math.isfinite(shown["effect"]):
            why = "PI not available; NIQE shown for information" + ("; the run uses stand-ins" if standins else "")
            return {**shown, "verdict": NOT_COMPARABLE if standins else NOT_AVAILABLE, "why": why}
    if standins:
        why = "the run uses stand-ins"
        return {**out, "verdict": NOT_COMPARABLE, "why": why if complete else f"{why}; {metric} not available"}
    if not complete:
        return {**out, "why": f"{METRIC_LABEL[metric]} not available for every image"}
    if len(names) < MIN_IMAGES:
        return {**out, "verdict": INCONCLUSIVE, "why": f"n = {len(names)} < {MIN_IMAGES} images: no interval"}
    boot = paired_bootstrap(a_img[names], b_img[names], seed=seed, n_resamples=n_resamples, confidence=confidence)
    out.update(image_low=boot["ci_low"], image_high=boot["ci_high"])
    fixed = [(kinds.get(m) or method_kind(m)) == FIXED for m in (a, b)]
    runs = _run_interval(a_runs, b_runs, fixed[0], fixed[1], confidence)
    if runs is None:
        short = [
            f"{display_name(m)} {len(r)} run{'s' if len(r) != 1 else ''}"
            for m, r, f in zip((a, b), (a_runs, b_runs), fixed)
            if not f and len(r) < MIN_RUNS
        ]
        return {**out, "verdict": INCONCLUSIVE, "why": f"{', '.join(short)}: run-to-run spread unknown"}
    out.update(run_low=runs[0], run_high=runs[1])
    if margin is None:
        sign = 1.0 if HIGHER_BETTER[metric] else -1.0  # +: a better
        sides = {
            _side(*sorted((sign * out["image_low"], sign * out["image_high"]))),
            _side(*sorted((sign * runs[0], sign * runs[1]))),
        }
        if sides == {1}:
            return {**out, "verdict": SUPPORTED, "why": "both intervals favour the claim"}
        if sides == {-1}:
            return {**out, "verdict": CONTRADICTED, "why": "both intervals go against the claim"}
        return {**out, "verdict": INCONCLUSIVE, "why": "an interval includes no difference"}
    inside = all(-margin <= lo and hi <= margin for lo, hi in ((out["image_low"], out["image_high"]), runs))
    if inside:
        return {**out, "verdict": SUPPORTED, "why": f"both intervals within ±{margin:g}"}
    sides = {_side(out["image_low"], out["image_high"], margin), _side(*runs, margin)}
    if sides in ({1}, {-1}):
        better = (sides == {1}) == HIGHER_BETTER[metric]  # beyond the margin on a's better side
        which = f"{display_name(a)} {'better' if better else 'worse'}"
        return {**out, "verdict": CONTRADICTED, "why": f"both intervals beyond ±{margin:g} ({which})"}
    return {**out, "verdict": INCONCLUSIVE, "why": f"an interval crosses ±{margin:g}"}


def combine(rows: list[dict]) -> tuple[str, str]:
    """(verdict, why) of a claim made of several comparisons: supported when every comparison was made
    and is supported; contradicted when any is (one rival beating SPSAGAN is enough to refute "best");
    not comparable when any is (stand-ins); inconclusive otherwise, also when some comparisons could
    not be made and the rest support the claim; not available when none could be made. `why` names
    what was missing."""
    missing = sorted({r["why"] for r in rows if r["verdict"] == NOT_AVAILABLE})
    judged = [r["verdict"] for r in rows if r["verdict"] != NOT_AVAILABLE]
    note = f"missing: {'; '.join(missing)}" if missing else ""
    if not judged:
        return NOT_AVAILABLE, note or "nothing to compare"
    counts = ", ".join(f"{judged.count(v)} {v}" for v in dict.fromkeys(judged))
    why = rows[0]["why"] if len(rows) == 1 else f"{len(judged)} comparisons: {counts}" + (f"; {note}" if note else "")
    for verdict in (NOT_COMPARABLE, CONTRADICTED):
        if verdict in judged:
            return verdict, why
    if set(judged) == {SUPPORTED} and not missing:
        return SUPPORTED, why
    return INCONCLUSIVE, why


def _datasets(claim: Claim, available: list[str], standins: list[str]) -> tuple[list[str], str]:
    """The test sets a claim is judged on, and a note when stand-in sets take the paper's place."""
    wanted = [d for d in claim.datasets if d in available]
    if wanted:
        return wanted, ""
    if standins and available:
        return available, f"{', '.join(available)} in place of {', '.join(claim.datasets)} (stand-in data)"
    return [], f"{', '.join(claim.datasets)} not evaluated"


def _pairs(claim: Claim) -> list[tuple[str, str, str, float | None]]:
    """(a, b, metric, margin) of every comparison a claim makes on one test set."""
    if claim.kind == "better":
        return [(claim.a, b, claim.metric, None) for b in claim.rivals]
    if claim.kind == "close":
        return [(claim.a, b, claim.metric, PI_MARGIN) for b in claim.rivals]
    if claim.kind == "tradeoff":
        return [
            pair
            for p in PSNR_ORIENTED
            for g in PERCEPTION_DRIVEN
            for pair in ((p, g, "psnr", None), (p, g, "ssim", None), (g, p, "pi", None))
        ]
    raise ValueError(f"claim {claim.key}: kind {claim.kind!r} is not a per-image comparison")


# --------------------------------------------------------------------------------------------------
# Timing and votes

MIN_REPEATS = 5


def timing_evidence(
    costs: dict, slow: str, fast: str, seed: int, n_resamples: int = 10000, confidence: float = 0.95
) -> dict:
    """Speed-up slow/fast: the geometric mean over timing images of the ratio of per-image medians.

    costs: {method: cost record}; a record's `times_s` is one list of timed repeats (seconds) per
    timing image, the same images for both methods. Interval: percentile bootstrap, each image's
    repeats resampled with replacement for each method (measurement noise on this machine; not other
    hardware). Returns {a, b, ratio, low, high, n, repeats, device, statistic, verdict, why}.
    """
    out = {"a": fast, "b": slow, "metric": "inference time", "ratio": math.nan, "low": math.nan, "high": math.nan}
    out.update(n=0, repeats=0)
    out.update(device="", statistic="", verdict=NOT_AVAILABLE, why="")
    missing = [display_name(m) for m in (slow, fast) if m not in costs]
    if missing:
        return {**out, "why": f"{' and '.join(missing)} not timed"}
    a, b = costs[slow], costs[fast]
    out["device"] = ", ".join(str(b[k]) for k in ("device", "dtype") if b.get(k))
    out["statistic"] = b.get("statistic", "median of repeats, mean over images")
    out["scope"] = b.get("timing_scope", "not recorded")
    if not (a.get("times_s") and b.get("times_s")):
        ratio = float(a["median_s"]) / float(b["median_s"])
        return {**out, "ratio": ratio, "verdict": INCONCLUSIVE, "why": "no per-repeat times recorded: no interval"}
    ta = [np.asarray(t, dtype=np.float64) for t in a["times_s"]]
    tb = [np.asarray(t, dtype=np.float64) for t in b["times_s"]]
    if len(ta) != len(tb):
        raise ValueError(f"timing: {slow} was timed on {len(ta)} images, {fast} on {len(tb)}")
    logs = [np.log(np.median(x)) - np.log(np.median(y)) for x, y in zip(ta, tb)]
    repeats = min(min(len(x), len(y)) for x, y in zip(ta, tb))
    out.update(ratio=float(np.exp(np.mean(logs))), n=len(ta), repeats=repeats)
    if repeats < MIN_REPEATS:
        return {**out, "verdict": INCONCLUSIVE, "why": f"{repeats} repeats per image < {MIN_REPEATS}: no interval"}
    rng = np.random.default_rng(seed)
    total = np.zeros(int(n_resamples))
    for x, y in zip(ta, tb):
        mx = np.median(x[rng.integers(0, len(x), size=(int(n_resamples), len(x)))], axis=1)
        my = np.median(y[rng.integers(0, len(y), size=(int(n_resamples), len(y)))], axis=1)
        total += np.log(mx) - np.log(my)
    alpha = (1 - confidence) / 2
    low, high = np.exp(np.quantile(total / len(ta), [alpha, 1 - alpha]))
    out.update(low=float(low), high=float(high))
    side = _side(float(np.log(low)), float(np.log(high)))
    verdict = SUPPORTED if side == 1 else CONTRADICTED if side == -1 else INCONCLUSIVE
    why = {1: "the interval lies above 1x", -1: "the interval lies below 1x", 0: "the interval includes 1x"}[side]
    return {**out, "verdict": verdict, "why": why}


def wilson(wins: int, votes: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion wins/votes (votes >= 1)."""
    from scipy.stats import norm

    z = float(norm.ppf((1 + confidence) / 2))
    p = wins / votes
    centre = (p + z * z / (2 * votes)) / (1 + z * z / votes)
    half = z * math.sqrt(p * (1 - p) / votes + z * z / (4 * votes * votes)) / (1 + z * z / votes)
    return centre - half, centre + half


VOTE_COLUMNS = ["task", "images", "opponent", "wins", "votes"]


def study_evidence(claim: Claim, votes: pd.DataFrame | None, confidence: float = 0.95) -> list[dict]:
    """One row per rival and image group: SPSAGAN's share of the votes against that rival.

    votes: the study's summary, VOTE_COLUMNS: task ("rank": Fig. 9, wins = votes ranking SPSAGAN above
    the opponent; "pair": Fig. 10, wins = votes preferring SPSAGAN), images ("OST300" or
    "out-of-category"), opponent (a method name), wins, votes. None: no study yet.
    A "study" claim's comparison is supported when the Wilson interval of the share lies above 1/2,
    contradicted below; "study_comparable" is supported inside 1/2 ± SHARE_MARGIN.
    """
    rows = []
    for task, images in claim.study:
        for rival in claim.rivals:
            row = {"a": claim.a, "b": rival, "dataset": f"{images} ({task})", "metric": "vote share"}
            row.update(share=math.nan, low=math.nan, high=math.nan, n=0, verdict=NOT_AVAILABLE, why=NO_VOTES)
            if votes is not None:
                hit = votes[(votes["task"] == task) & (votes["images"] == images) & (votes["opponent"] == rival)]
                if hit.empty or int(hit["votes"].sum()) == 0:
                    row["why"] = f"no {task} votes against {display_name(rival)} on {images}"
                else:
                    wins, n = int(hit["wins"].sum()), int(hit["votes"].sum())
                    low, high = wilson(wins, n, confidence)
                    row.update(share=wins / n, low=low, high=high, n=n)
                    if claim.kind == "study_comparable":
                        inside = 0.5 - SHARE_MARGIN <= low and high <= 0.5 + SHARE_MARGIN
                        side = _side(low - 0.5, high - 0.5, SHARE_MARGIN)
                        row["verdict"] = SUPPORTED if inside else CONTRADICTED if side else INCONCLUSIVE
                        row["why"] = f"share interval against 0.5 ± {SHARE_MARGIN:g}"
                    else:
                        side = _side(low - 0.5, high - 0.5)
                        row["verdict"] = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}[side]
                        row["why"] = "share interval against 0.5"
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# All claims

SUMMARY_COLUMNS = ["key", "source", "words", "verdict", "evidence", "why"]
DETAIL_COLUMNS = [
    "key",
    "a",
    "b",
    "dataset",
    "metric",
    "n",
    "runs_a",
    "runs_b",
    "effect",
    "image_low",
    "image_high",
    "run_low",
    "run_high",
    "verdict",
    "why",
]


def _effect_text(row: dict) -> str:
    """'PI −0.050, images [−0.080, −0.020], runs [−0.090, −0.010]' of one comparison."""
    metric = row["metric"]
    d = DIGITS.get(metric, 3)
    if not math.isfinite(row.get("effect", math.nan)):
        return "n/a"
    text = f"Δ{METRIC_LABEL[metric]} {row['effect']:+.{d}f}"
    if math.isfinite(row["image_low"]):
        text += f", images [{row['image_low']:+.{d}f}, {row['image_high']:+.{d}f}]"
    if math.isfinite(row["run_low"]):
        text += f", runs [{row['run_low']:+.{d}f}, {row['run_high']:+.{d}f}]"
    return text


def _timing_claim(claim: Claim, costs: dict, seed: int, n_resamples: int, confidence: float):
    """(rows, verdict, why, evidence) of the speed-up claim."""
    row = timing_evidence(costs, claim.rivals[0], claim.a, seed, n_resamples, confidence)
    paper = {r["network"]: r["median_s"] for r in INFERENCE_TIME}
    evidence = "n/a"
    if math.isfinite(row["ratio"]):
        interval = f" [{row['low']:.2f}, {row['high']:.2f}]" if math.isfinite(row["low"]) else ""
        evidence = (
            f"speed-up {row['ratio']:.2f}x{interval} over {row['n']} image(s), {row['repeats']} repeats "
            f"({row['device']}; paper {paper['RRDB+SPSA'] / paper['RRSB+SPSA']:.2f}x on {INFERENCE_TIME[0]['device']})"
        )
    return [row], row["verdict"], row["why"], evidence


def _study_claim(claim: Claim, votes: pd.DataFrame | None, confidence: float):
    """(rows, verdict, why, evidence) of a user-study claim."""
    rows = study_evidence(claim, votes, confidence)
    verdict, why = combine(rows)
    shares = [f"{display_name(r['b'])} {r['dataset']}: {r['share']:.2f}" for r in rows if r["n"]]
    return rows, verdict, why, "; ".join(shares) or "no votes"


def _score_claim(claim: Claim, per_image: pd.DataFrame, standins, seed, n_resamples, confidence, kinds):
    """(rows, verdict, why, evidence) of a claim decided by per-image scores."""
    datasets, note = _datasets(claim, list(dict.fromkeys(per_image["dataset"])), standins)
    evaluated = set(zip(per_image["method"], per_image["dataset"]))
    rows = [
        compare(per_image, a, b, metric, dataset, standins, seed, n_resamples, confidence, margin, kinds)
        for dataset in datasets
        for a, b, metric, margin in _pairs(claim)
        # the trade-off is judged on the pairs that were evaluated; other claims name what is missing
        if claim.kind != "tradeoff" or {(a, dataset), (b, dataset)} <= evaluated
    ]
    if not rows:
        return rows, NOT_AVAILABLE, note or "no pair of methods to compare was evaluated", "n/a"
    verdict, why = combine(rows)
    evidence = "; ".join(
        f"{display_name(r['a'])} − {display_name(r['b'])} on {r['dataset']}: {_effect_text(r)}" for r in rows
    )
    if len(rows) > 3:
        evidence = f"{len(rows)} comparisons (listed under Evidence)"
    if claim.kind == "close":
        evidence += f" (margin ±{PI_MARGIN:g})"
    return rows, verdict, f"{note}; {why}" if note else why, evidence


def evaluate_claims(
    per_image: pd.DataFrame,
    costs: dict,
    standins: list[str],
    seed: int,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    votes: pd.DataFrame | None = None,
    kinds: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per claim: SUMMARY_COLUMNS; one row per comparison: DETAIL_COLUMNS plus timing/vote fields).

    per_image: method, dataset, name, psnr, ssim, niqe, pi[, seed] (results method names).
    costs: evaluate's summary["costs"] ({method: record with median_s and, per timing image, times_s}).
    votes: the user study's summary (`study_evidence`), or None. kinds: {method: fixed | retrained}.
    """
    per_image = per_image.assign(dataset=per_image["dataset"].map(canonical_dataset))
    summary, details = [], []
    for claim in CLAIMS:
        if claim.kind == "faster":
            rows, verdict, why, evidence = _timing_claim(claim, costs, seed, n_resamples, confidence)
        elif claim.kind.startswith("study"):
            rows, verdict, why, evidence = _study_claim(claim, votes, confidence)
        else:
            rows, verdict, why, evidence = _score_claim(
                claim, per_image, standins, seed, n_resamples, confidence, kinds
            )
        summary.append(
            {"key": claim.key, "source": claim.source, "words": claim.words, "verdict": verdict}
            | {"evidence": evidence, "why": why}
        )
        details += [{"key": claim.key, **r} for r in rows]
    return pd.DataFrame(summary, columns=SUMMARY_COLUMNS), pd.DataFrame(details)


# --------------------------------------------------------------------------------------------------
# The report

RULES = [
    f"**{SUPPORTED}** / **{CONTRADICTED}**: for every comparison the claim makes, the effect (mean over the "
    "same test images of A − B, each image's score first averaged over the method's seeds) has two 95% "
    "intervals, one over images (paired percentile bootstrap) and one over training runs (Welch t on the "
    "per-seed set means; a fixed method such as published weights counts as one exact run); both lie on the "
    'claimed side of no difference (supported) or both on the other side (contradicted). "Close to" '
    f"claims use an equivalence margin instead of 0 (PI ±{PI_MARGIN:g}). Timing: the bootstrap interval "
    "of the speed-up over timed repeats lies above (below) 1x. User study: the Wilson interval of "
    "SPSAGAN's vote share lies above (below) one half.",
    f"**{INCONCLUSIVE}**: an interval includes no difference, fewer than {MIN_IMAGES} test images, or a "
    f"retrained method has fewer than {MIN_RUNS} runs (its run-to-run spread is unknown; the effect is "
    "still shown).",
    f"**{NOT_COMPARABLE}**: the run uses stand-ins (listed above), so its numbers say nothing about the "
    "paper's claim; the effect is still shown.",
    f"**{NOT_AVAILABLE}**: a method, score (PI offline) or vote that the claim needs is missing; the reason names it.",
]


def _detail_rows(details: pd.DataFrame, key: str) -> tuple[list[str], list[list[str]]]:
    rows = details[details["key"] == key]
    if rows.empty:
        return [], []
    first = rows.iloc[0]
    if first["metric"] == "vote share":
        head = ["SPSAGAN vs", "images (task)", "votes", "share", "95% Wilson interval", "verdict", "why"]
        body = [
            [
                display_name(r["b"]),
                r["dataset"],
                str(int(r["n"])),
                "n/a" if not r["n"] else f"{r['share']:.3f}",
                "n/a" if not r["n"] else f"[{r['low']:.3f}, {r['high']:.3f}]",
                r["verdict"],
                r["why"],
            ]
            for _, r in rows.iterrows()
        ]
        return head, body
    if first["metric"] == "inference time":
        r = first
        head = [
            "faster",
            "slower",
            "speed-up",
            "95% interval",
            "images",
            "repeats",
            "device",
            "statistic",
            "verdict",
            "why",
        ]
        body = [
            [
                display_name(r["a"]),
                display_name(r["b"]),
                "n/a" if not math.isfinite(r["ratio"]) else f"{r['ratio']:.3f}x",
                f"[{r['low']:.3f}, {r['high']:.3f}]" if math.isfinite(r["low"]) else "none",
                str(int(r["n"])),
                str(int(r["repeats"])),
                str(r["device"]),
                str(r["statistic"]),
                str(r.get("scope", "")),
                r["verdict"],
                r["why"],
            ]
        ]
        return head, body
    head = ["A", "B", "test set", "metric", "n", "runs A/B", "A − B", "95% image interval", "95% run interval"]
    head += ["verdict", "why"]
    body = []
    for _, r in rows.iterrows():
        d = DIGITS[r["metric"]]
        body.append(
            [
                display_name(r["a"]),
                display_name(r["b"]),
                r["dataset"],
                METRIC_LABEL[r["metric"]],
                str(int(r["n"])),
                f"{int(r['runs_a'])}/{int(r['runs_b'])}",
                f"{r['effect']:+.{d}f}" if math.isfinite(r["effect"]) else "n/a",
                f"[{r['image_low']:+.{d}f}, {r['image_high']:+.{d}f}]" if math.isfinite(r["image_low"]) else "none",
                "exact (fixed methods)"
                if math.isfinite(r["run_low"]) and r["run_low"] == r["run_high"]
                else f"[{r['run_low']:+.{d}f}, {r['run_high']:+.{d}f}]"
                if math.isfinite(r["run_low"])
                else "none",
                r["verdict"],
                r["why"],
            ]
        )
    return head, body


def _intro(per_image: pd.DataFrame | None, seed, n_resamples: int) -> str:
    text = (
        "Each claim of the paper, where the paper makes it, and what this run found. Verdict rules "
        f'(docs/reports.md, "Claims"); image intervals: {n_resamples} paired bootstrap resamples, seed {seed}.'
    )
    if per_image is not None and "seed" in per_image.columns:
        runs = per_image.groupby("method", sort=False)["seed"].nunique()
        shown = [f"{display_name(m)} {int(n)}" for m, n in runs.items() if method_kind(m) != FIXED]
        text += " Runs (seeds) per retrained method: " + ", ".join(shown) + "; fixed methods are one exact run."
    else:
        text += " Every method here is a single run (no `seed` column in the per-image scores)."
    return text


def render_claims(
    summary: pd.DataFrame,
    details: pd.DataFrame,
    profile: str,
    standins: list[str],
    out: str | os.PathLike | list,
    seed: int,
    n_resamples: int = 10000,
    settings: list[str] = (),
    per_image: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write claims.md (and claims.csv, claims.html when their paths are given in `out`); returns
    {suffix: path}. summary, details: `evaluate_claims`' frames; per_image: to count the runs."""
    paths = output_paths(out, "claims", ("md",), optional=("csv", "html"))
    lines = ["# The paper's claims, one by one", "", provenance(profile, standins, settings), ""]
    lines += [_intro(per_image, seed, n_resamples), "", "Verdicts:", ""] + [f"- {r}" for r in RULES] + [""]
    head = ["#", "claim", "source", "verdict", "evidence", "why"]
    rows = [
        [str(i + 1), r["words"], r["source"], f"**{r['verdict']}**", r["evidence"], r["why"]]
        for i, r in summary.iterrows()
    ]
    lines += markdown(head, rows) + ["", "## Evidence", ""]
    for i, r in summary.iterrows():
        lines += [f"### {i + 1}. {r['words']} ({r['source']})", "", f"Verdict: **{r['verdict']}**. {r['why']}.", ""]
        dh, dr = _detail_rows(details, r["key"])
        lines += (markdown(dh, dr) + [""]) if dr else []
    write_text(paths["md"], "\n".join(lines).rstrip() + "\n")
    if "csv" in paths:
        write_text(paths["csv"], details.assign(profile=profile, seed=seed).to_csv(index=False))
    if "html" in paths:
        body = claims_html(summary, details, profile, standins, seed, n_resamples, settings, per_image)
        page = (
            '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Claims</title></head>\n'
            f"<body>\n{body}\n</body>\n</html>\n"
        )
        write_text(paths["html"], page)
    return paths


def claims_html(
    summary: pd.DataFrame,
    details: pd.DataFrame,
    profile: str,
    standins: list[str],
    seed: int,
    n_resamples: int = 10000,
    settings: list[str] = (),
    per_image: pd.DataFrame | None = None,
) -> str:
    """The claims as an HTML section (no scripts, images or links), for table1.html or its own page."""

    def table(head, rows):
        out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>"]
        out += ["<tbody>"] + ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows]
        return out + ["</tbody>", "</table>"]

    def text(s):
        parts = html.escape(s).split("**")
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))

    lines = ["<h2>The paper's claims</h2>", f"<p>{text(provenance(profile, standins, settings))}</p>"]
    lines += [f"<p>{text(_intro(per_image, seed, n_resamples))}</p>", "<ul>"]
    lines += [f"<li>{text(r)}</li>" for r in RULES] + ["</ul>"]
    rows = [[str(i + 1), r["words"], r["source"], r["verdict"], r["evidence"], r["why"]] for i, r in summary.iterrows()]
    lines += table(["#", "claim", "source", "verdict", "evidence", "why"], rows)
    for i, r in summary.iterrows():
        dh, dr = _detail_rows(details, r["key"])
        if dr:
            lines += [f"<h3>{i + 1}. {html.escape(r['words'])}</h3>", *table(dh, dr)]
    return "\n".join(lines)
