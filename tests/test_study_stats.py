"""The study's statistics against values computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from spsagan.reports.claims import VOTE_COLUMNS
from spsagan.study.stats import (
    binomial_test,
    mean_rank,
    preferences,
    rank_frequencies,
    rankings,
    vote_summary,
    wilson_interval,
)


def task1_votes() -> pd.DataFrame:
    # two raters, two images each, methods A, B, C (best first)
    rows = [("p1", "i1", "A;B;C"), ("p1", "i2", "B;A;C"), ("p2", "i1", "A;C;B"), ("p2", "i2", "A;B;C")]
    return pd.DataFrame([{"participant": p, "task": 1, "group": "ost", "image": i, "ranking": r} for p, i, r in rows])


def test_rank_frequencies_by_hand():
    table = rank_frequencies(rankings(task1_votes()))
    assert list(table.columns) == [1, 2, 3]
    assert table.loc["A"].tolist() == [3, 1, 0]
    assert table.loc["B"].tolist() == [1, 2, 1]
    assert table.loc["C"].tolist() == [0, 1, 3]


def test_mean_rank_and_bootstrap_over_raters_by_hand():
    ranks = rankings(task1_votes())
    # per rater: A 1.5 and 1.0; B 1.5 and 2.5; C 3.0 and 2.5
    a = mean_rank(ranks, "A", seed=0, n_resamples=2000)
    assert a["mean"] == 1.25 and a["n_participants"] == 2 and a["n_votes"] == 4
    # resampling two raters gives means 1.0, 1.25 or 1.5: the 95% interval spans the extremes
    assert (a["ci_low"], a["ci_high"]) == (1.0, 1.5)
    assert mean_rank(ranks, "B", seed=0)["mean"] == 2.0 and mean_rank(ranks, "C", seed=0)["mean"] == 2.75
    one = mean_rank(ranks[ranks["participant"] == "p1"], "A", seed=0)
    assert one["mean"] == 1.5 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    with pytest.raises(ValueError, match="'D'"):
        mean_rank(ranks, "D", seed=0)


def test_wilson_interval_by_hand():
    # 8/10, z = 1.96: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.716738, half-width 0.226581
    assert wilson_interval(8, 10, z=1.96) == pytest.approx((0.490157, 0.943319), abs=1e-6)
    assert wilson_interval(0, 10, z=1.96) == pytest.approx((0.0, 0.277540), abs=1e-6)
    assert wilson_interval(5, 10, z=1.96) == pytest.approx((0.236590, 0.763410), abs=1e-6)
    # the default z is the exact 97.5% normal quantile, 1.959964: a hair narrower
    assert wilson_interval(8, 10) == pytest.approx((0.490157, 0.943319), abs=1e-5)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_binomial_test_by_hand():
    assert binomial_test(9, 10) == pytest.approx(22 / 1024)  # 2 * (C(10,9) + C(10,10)) / 2^10
    assert binomial_test(7, 10) == pytest.approx(352 / 1024)  # 2 * (120 + 45 + 10 + 1) / 2^10
    assert binomial_test(0, 5) == pytest.approx(2 / 32)
    assert binomial_test(5, 10) == 1.0


def test_preferences_by_hand():
    won = [
        ("ost", "ESRGAN", 1),
        ("ost", "ESRGAN", 1),
        ("ost", "ESRGAN", 1),
        ("ost", "ESRGAN", 0),
        ("other", "NatSR", 0),
    ]
    votes = pd.DataFrame(
        [{"task": 2, "group": g, "target": "SPSAGAN", "other": o, "target_won": w} for g, o, w in won]
        + [{"task": 1, "group": "ost", "target": "", "other": "", "target_won": ""}]
    )
    prefs = preferences(votes).set_index("other")
    esrgan = prefs.loc["ESRGAN"]
    assert (esrgan["wins"], esrgan["n"], esrgan["share"]) == (3, 4, 0.75)
    assert esrgan["p_value"] == pytest.approx(10 / 16)  # 2 * (C(4,3) + C(4,4)) / 2^4
    assert (esrgan["ci_low"], esrgan["ci_high"]) == pytest.approx(wilson_interval(3, 4))
    assert prefs.loc["NatSR", "wins"] == 0 and prefs.loc["NatSR", "p_value"] == 1.0


def test_vote_summary_for_the_claims_by_hand():
    def vote(sim, task, group, ranking="", other="", won=""):
        return {
            "simulated": sim,
            "task": task,
            "group": group,
            "ranking": ranking,
            "target": "spsagan",
            "other": other,
            "target_won": won,
        }

    votes = pd.DataFrame(
        [
            vote(0, 1, "ost", "HR;spsagan;SRResNet;SAN"),  # beats SRResNet and SAN, loses to HR
            vote(0, 1, "ost", "SAN;spsagan;HR;SRResNet"),  # beats HR and SRResNet, loses to SAN
            vote(0, 2, "other", other="ESRGAN", won=1),
            vote(0, 2, "other", other="esrgan", won=0),  # our retraining: its own opponent
            vote(1, 2, "other", other="ESRGAN", won=0),  # simulated: left out
        ]
    )
    summary = vote_summary(votes)
    assert list(summary.columns) == VOTE_COLUMNS
    got = {(r.task, r.images, r.opponent): (r.wins, r.votes) for r in summary.itertuples()}
    assert got == {
        ("rank", "OST300", "HR"): (1, 2),
        ("rank", "OST300", "SAN"): (1, 2),
        ("rank", "OST300", "SRResNet"): (2, 2),
        ("pair", "out-of-category", "ESRGAN"): (1, 1),
        ("pair", "out-of-category", "ESRGAN (retrained)"): (0, 1),
    }
    assert vote_summary(votes.assign(target="esrgan")).empty  # only a study of SPSAGAN decides its claims
