"""The claims report: each verdict rule on synthetic scores whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from spsagan.reports import claims

SEED, RESAMPLES = 0, 2000
STANDINS = ["data: scikit-image's bundled photos instead of DIV2K/Flickr2K/OST and the benchmark sets"]


def _scores(effects: dict[str, float], seeds: dict[str, int], n_images: int = 30, dataset: str = "BSD100", run_sd=0.01):
    """Per-image PI (and PSNR) of each method: a shared image difficulty + the method's effect + a
    per-run offset (sd run_sd) + small per-image noise; one row per method, image and seed."""
    rng = np.random.default_rng(1)
    difficulty = rng.normal(3.0, 0.5, n_images)
    rows = []
    for method, effect in effects.items():
        for seed in range(seeds.get(method, 1)):
            offset = rng.normal(0, run_sd)
            noise = rng.normal(0, 0.02, n_images)
            for k in range(n_images):
                pi = difficulty[k] + effect + offset + noise[k]
                rows.append(
                    {
                        "method": method,
                        "dataset": dataset,
                        "name": f"img{k:03d}",
                        "seed": seed if method in seeds else math.nan,
                        "psnr": 30 - pi,
                        "ssim": 0.7,
                        "niqe": pi + 1,
                        "pi": pi,
                    }
                )
    return pd.DataFrame(rows)


def _compare(per_image, a="spsagan", b="SRGAN", metric="pi", standins=(), margin=None):
    return claims.compare(per_image, a, b, metric, "BSD100", list(standins), SEED, RESAMPLES, margin=margin)


def test_clear_win_with_three_seeds_against_published_weights():
    per_image = _scores({"spsagan": -0.2, "SRGAN": 0.0}, {"spsagan": 3})
    row = _compare(per_image)
    assert row["verdict"] == claims.SUPPORTED and row["runs_a"] == 3 and row["runs_b"] == 1
    assert row["effect"] == pytest.approx(-0.2, abs=0.03) and row["image_high"] < 0 and row["run_high"] < 0
    # the effect is the mean over images of seed-averaged scores
    a = per_image[per_image["method"] == "spsagan"].groupby("name")["pi"].mean()
    b = per_image[per_image["method"] == "SRGAN"].set_index("name")["pi"]
    assert row["effect"] == pytest.approx(float((a - b[a.index]).mean()))


def test_clear_loss_and_tie():
    loss = _compare(_scores({"spsagan": +0.2, "SRGAN": 0.0}, {"spsagan": 3}))
    assert loss["verdict"] == claims.CONTRADICTED and loss["image_low"] > 0 and loss["run_low"] > 0
    tie = _compare(_scores({"spsagan": 0.0, "SRGAN": 0.0}, {"spsagan": 4}, run_sd=0.05))
    assert tie["verdict"] == claims.INCONCLUSIVE
    assert tie["run_low"] < 0 < tie["run_high"] or tie["image_low"] < 0 < tie["image_high"]


def test_higher_is_better_metrics_turn_the_sign():
    per_image = _scores({"rrdb_psnr": -0.5, "spsagan": 0.0}, {"rrdb_psnr": 3, "spsagan": 3})
    assert _compare(per_image, "rrdb_psnr", "spsagan", "psnr")["verdict"] == claims.SUPPORTED  # +0.5 dB
    assert _compare(per_image, "spsagan", "rrdb_psnr", "pi")["verdict"] == claims.CONTRADICTED  # worse PI


def test_one_seed_is_inconclusive_even_for_a_large_effect():
    row = _compare(_scores({"spsagan": -0.5, "SRGAN": 0.0}, {"spsagan": 1}))
    assert row["verdict"] == claims.INCONCLUSIVE and "SPSAGAN 1 run: run-to-run spread unknown" in row["why"]
    assert row["image_high"] < 0 and math.isnan(row["run_low"])  # the image interval is still given


def test_two_retrained_methods_use_welch_over_seeds():
    per_image = _scores({"+spsa": -0.1, "+fa": 0.0}, {"+spsa": 3, "+fa": 4}, run_sd=0.02)
    row = _compare(per_image, "+spsa", "+fa")
    means = per_image.groupby(["method", "seed"])["pi"].mean()
    a, b = means["+spsa"].to_numpy(), means["+fa"].to_numpy()
    from scipy.stats import ttest_ind

    ci = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)  # literal reference: Welch's t
    assert (row["run_low"], row["run_high"]) == pytest.approx((ci.low, ci.high))
    assert row["verdict"] == claims.SUPPORTED


def test_standins_and_missing_method_and_missing_score():
    per_image = _scores({"spsagan": -0.2, "SRGAN": 0.0}, {"spsagan": 3})
    row = _compare(per_image, standins=STANDINS)
    assert row["verdict"] == claims.NOT_COMPARABLE and math.isfinite(row["effect"])
    gone = _compare(per_image, b="NatSR")
    assert gone["verdict"] == claims.NOT_AVAILABLE and gone["why"] == "NatSR not evaluated on BSD100"
    offline = per_image.assign(pi=math.nan)
    row = _compare(offline)  # NIQE shown for information, never judged in PI's place
    assert row["verdict"] == claims.NOT_AVAILABLE and row["metric"] == "niqe" and math.isfinite(row["effect"])
    assert row["why"] == "PI not available; NIQE shown for information"
    assert _compare(offline.assign(niqe=math.nan))["verdict"] == claims.NOT_AVAILABLE
    partial = per_image[~((per_image["method"] == "SRGAN") & (per_image["name"] == "img000"))]
    with pytest.raises(ValueError, match=r"scored on different images \(only one has: img000\)"):
        _compare(partial)


def test_close_to_uses_the_equivalence_margin():
    close = _compare(_scores({"spsagan": 0.02, "SFTGAN": 0.0}, {"spsagan": 5}, run_sd=0.005), b="SFTGAN", margin=0.1)
    assert close["verdict"] == claims.SUPPORTED
    far = _compare(_scores({"spsagan": 0.4, "SFTGAN": 0.0}, {"spsagan": 5}), b="SFTGAN", margin=0.1)
    assert far["verdict"] == claims.CONTRADICTED and far["why"] == "both intervals beyond ±0.1 (SPSAGAN worse)"


def test_combine_over_comparisons():
    s, c, i, n, a = (
        {"verdict": v, "why": w}
        for v, w in [
            (claims.SUPPORTED, ""),
            (claims.CONTRADICTED, ""),
            (claims.INCONCLUSIVE, ""),
            (claims.NOT_COMPARABLE, ""),
            (claims.NOT_AVAILABLE, "NatSR not evaluated on BSD100"),
        ]
    )
    assert claims.combine([s, s])[0] == claims.SUPPORTED
    verdict, why = claims.combine([s, a])  # "best" against a rival that was not evaluated: not shown
    assert verdict == claims.INCONCLUSIVE and "missing: NatSR not evaluated on BSD100" in why
    assert claims.combine([s, i])[0] == claims.INCONCLUSIVE
    assert claims.combine([s, c, i])[0] == claims.CONTRADICTED
    assert claims.combine([c, n])[0] == claims.NOT_COMPARABLE
    assert claims.combine([a])[0] == claims.NOT_AVAILABLE


def _costs(slow: float, fast: float, repeats: int = 9, images: int = 3, jitter: float = 0.02) -> dict:
    rng = np.random.default_rng(2)
    out = {}
    for method, t in (("+spsa", slow), ("spsagan", fast)):
        times = [list(t * (1 + k) * (1 + rng.normal(0, jitter, repeats))) for k in range(images)]
        out[method] = {"median_s": float(np.mean([np.median(x) for x in times])), "times_s": times, "device": "cpu"}
    return out


def test_timing_ratio_interval():
    faster = claims.timing_evidence(_costs(0.368, 0.296), "+spsa", "spsagan", SEED, RESAMPLES)
    assert faster["verdict"] == claims.SUPPORTED and faster["low"] > 1 and faster["ratio"] == pytest.approx(1.24, 0.03)
    same = claims.timing_evidence(_costs(0.3, 0.3, jitter=0.1), "+spsa", "spsagan", SEED, RESAMPLES)
    assert same["verdict"] == claims.INCONCLUSIVE and same["low"] < 1 < same["high"]
    slower = claims.timing_evidence(_costs(0.25, 0.3), "+spsa", "spsagan", SEED, RESAMPLES)
    assert slower["verdict"] == claims.CONTRADICTED
    old = {m: {k: v for k, v in c.items() if k != "times_s"} for m, c in _costs(0.368, 0.296).items()}
    legacy = claims.timing_evidence(old, "+spsa", "spsagan", SEED, RESAMPLES)
    assert legacy["verdict"] == claims.INCONCLUSIVE and "no per-repeat times" in legacy["why"]
    assert claims.timing_evidence({}, "+spsa", "spsagan", SEED)["verdict"] == claims.NOT_AVAILABLE


def test_wilson_interval_literal():
    low, high = claims.wilson(60, 100)
    z = 1.959963984540054
    p, n = 0.6, 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))


def test_study_claims_without_and_with_votes():
    claim = next(c for c in claims.CLAIMS if c.key == "study_pairs")
    rows = claims.study_evidence(claim, None)
    assert all(r["verdict"] == claims.NOT_AVAILABLE and r["why"] == claims.NO_VOTES for r in rows)
    votes = pd.DataFrame(
        [
            {"task": "pair", "images": images, "opponent": rival, "wins": wins, "votes": 300}
            for images in ("OST300", "out-of-category")
            for rival, wins in (("SFTGAN", 200), ("ESRGAN", 190), ("NatSR", 210))
        ]
    )
    assert claims.combine(claims.study_evidence(claim, votes))[0] == claims.SUPPORTED
    split = votes.assign(wins=150)
    assert claims.combine(claims.study_evidence(claim, split))[0] == claims.INCONCLUSIVE
    comparable = next(c for c in claims.CLAIMS if c.key == "out_of_category")
    assert claims.combine(claims.study_evidence(comparable, split))[0] == claims.SUPPORTED


def test_every_claim_is_reported_with_a_verdict(tmp_path):
    effects = {m: e for m, e in (("spsagan", -0.2), ("SRGAN", 0.0), ("esrgan", 0.1), ("+fa", 0.0), ("+spsa", -0.1))}
    per_image = _scores(effects, {"spsagan": 3, "esrgan": 3, "+fa": 3, "+spsa": 3}, dataset="B100")
    per_image = pd.concat([per_image, _scores({"rrdb_psnr": 1.0}, {"rrdb_psnr": 3}, dataset="B100")])
    summary, details = claims.evaluate_claims(per_image, _costs(0.368, 0.296), [], SEED, RESAMPLES)
    assert list(summary["key"]) == [c.key for c in claims.CLAIMS]
    verdict = summary.set_index("key")["verdict"]
    assert verdict["best_pi_bsd100"] == claims.INCONCLUSIVE  # beats SRGAN; the other rivals are missing
    assert "NatSR not evaluated on BSD100" in summary.set_index("key").at["best_pi_bsd100", "why"]
    assert verdict["ost_pi_close_to_sftgan"] == claims.NOT_AVAILABLE  # no OST300
    assert verdict["rrsb_faster"] == claims.SUPPORTED
    assert verdict["study_rank"] == claims.NOT_AVAILABLE
    paths = claims.render_claims(
        summary,
        details,
        "paper",
        [],
        [tmp_path / "claims.md", tmp_path / "claims.html"],
        SEED,
        RESAMPLES,
        per_image=per_image,
    )
    text = paths["md"].read_text(encoding="utf-8")
    for claim in claims.CLAIMS:
        assert claim.words in text
    assert "Runs (seeds) per retrained method: SPSAGAN 3" in text
    assert "no votes yet: run the study (docs/study.md)" in text
    assert "<table>" in paths["html"].read_text(encoding="utf-8")


def test_demo_like_run_is_not_comparable_on_a_stand_in_set(tmp_path):
    per_image = _scores({"spsagan": -0.2, "SRGAN": 0.0, "+fa": 0.0, "+spsa": 0.0, "esrgan": 0.0}, {}, 3, "demo_test")
    summary, _ = claims.evaluate_claims(per_image, {}, STANDINS, SEED, RESAMPLES)
    verdict = summary.set_index("key")
    assert verdict.at["best_pi_bsd100", "verdict"] == claims.NOT_COMPARABLE
    assert "demo_test in place of BSD100 (stand-in data)" in verdict.at["best_pi_bsd100", "why"]
    assert verdict.at["rrsb_faster", "verdict"] == claims.NOT_AVAILABLE
