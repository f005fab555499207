"""Statistics of the user study's votes (the exported CSV, `spsagan.study.export`).

- Task 1 (Fig. 9): how often each method got each rank, and its mean rank with a percentile
  bootstrap interval over participants (the rater is the sampling unit: the images a rater saw
  are not independent of each other), as `spsagan.reports.stats.bootstrap_mean` does over images.
- Task 2 (Fig. 10): the proportion of votes for the target method against each other method, its
  Wilson score interval, and the exact two-sided binomial test of p = 1/2.
- `vote_summary`: people's votes as the claims report reads them (`spsagan.reports.claims`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from spsagan.reports.claims import VOTE_COLUMNS
from spsagan.reports.names import display_name
from spsagan.reports.stats import bootstrap_mean

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def rankings(votes: pd.DataFrame) -> pd.DataFrame:
    """Task-1 votes as one row per (vote, method): participant, group, image, method, rank (1 = best)."""
    rows = []
    for v in votes[votes["task"] == 1].itertuples():
        for rank, method in enumerate(str(v.ranking).split(";"), start=1):
            rows.append(
                {"participant": v.participant, "group": v.group, "image": v.image, "method": method, "rank": rank}
            )
    return pd.DataFrame(rows, columns=["participant", "group", "image", "method", "rank"])


def rank_frequencies(ranks: pd.DataFrame) -> pd.DataFrame:
    """Counts of each rank per method: index method, columns 1..R (R = methods ranked), ints."""
    table = pd.crosstab(ranks["method"], ranks["rank"])
    table.columns = [int(c) for c in table.columns]
    return table.reindex(columns=range(1, int(ranks["rank"].max()) + 1), fill_value=0)


def mean_rank(ranks: pd.DataFrame, method: str, seed: int, n_resamples: int = 10000, confidence: float = 0.95) -> dict:
    """Mean rank of `method` with a bootstrap interval over participants.

    Each participant contributes the mean of the ranks they gave `method`; the mean rank is the mean of
    those (the pooled mean when every participant saw as many images). Returns {mean, ci_low, ci_high,
    n_participants, n_votes}; the interval is NaN with fewer than 2 participants.
    """
    mine = ranks[ranks["method"] == method]
    if mine.empty:
        raise ValueError(f"no task-1 votes rank method {method!r}")
    per_participant = mine.groupby("participant")["rank"].mean().to_numpy(dtype=np.float64)
    out = {"mean": float(per_participant.mean()), "ci_low": math.nan, "ci_high": math.nan}
    if len(per_participant) >= 2:
        boot = bootstrap_mean(per_participant, seed=seed, n_resamples=n_resamples, confidence=confidence)
        out.update(ci_low=boot["ci_low"], ci_high=boot["ci_high"])
    return {**out, "n_participants": int(len(per_participant)), "n_votes": int(len(mine))}


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (0 <= k <= n, n >= 1); z = 1.96 gives 95%."""
    if not (0 <= k <= n and n >= 1):
        raise ValueError(f"wilson_interval needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_test(k: int, n: int) -> float:
    """Exact two-sided binomial test of p = 1/2: the probability of an outcome no likelier than k of n."""
    return float(scipy_stats.binomtest(int(k), int(n), 0.5, alternative="two-sided").pvalue)


def preferences(votes: pd.DataFrame) -> pd.DataFrame:
    """Task-2 votes per (group, other method): target, other, wins (for the target), n, share,
    ci_low, ci_high (Wilson 95%), p_value (two-sided binomial)."""
    pairs = votes[votes["task"] == 2]
    rows = []
    for (group, other), g in pairs.groupby(["group", "other"], sort=True):
        k, n = int(g["target_won"].astype(int).sum()), int(len(g))
        low, high = wilson_interval(k, n)
        rows.append(
            {
                "group": group,
                "target": g["target"].iloc[0],
                "other": other,
                "wins": k,
                "n": n,
                "share": k / n,
                "ci_low": low,
                "ci_high": high,
                "p_value": binomial_test(k, n),
            }
        )
    cols = ["group", "target", "other", "wins", "n", "share", "ci_low", "ci_high", "p_value"]
    return pd.DataFrame(rows, columns=cols)


CLAIM_IMAGES = {"ost": "OST300", "other": "out-of-category"}  # the claims' names of the two image groups


def vote_summary(votes: pd.DataFrame) -> pd.DataFrame:
    """People's votes (simulated raters left out) per task, image group and opponent of the target.

    Columns VOTE_COLUMNS: task ("rank": wins = task-1 votes ranking the target above the opponent;
    "pair": wins = task-2 votes for the target), images ("OST300" or "out-of-category"), opponent
    (its report name: `ESRGAN (retrained)` is not the paper's `ESRGAN`), wins, votes. Only studies
    whose target is SPSAGAN (`spsagan`) decide the paper's claims, so other targets give no rows.
    """
    people = votes[votes["simulated"].astype(int) == 0]
    counts: dict[tuple[str, str, str], list[int]] = {}
    for v in people.itertuples():
        if display_name(v.target) != "SPSAGAN":
            continue
        images = CLAIM_IMAGES[v.group]
        if int(v.task) == 1:
            ranking = str(v.ranking).split(";")
            duels = [(m, ranking.index(v.target) < ranking.index(m)) for m in ranking if m != v.target]
            task = "rank"
        else:
            duels, task = [(v.other, bool(int(v.target_won)))], "pair"
        for opponent, won in duels:
            tally = counts.setdefault((task, images, display_name(opponent)), [0, 0])
            tally[0] += int(won)
            tally[1] += 1
    rows = [(task, images, opp, wins, n) for (task, images, opp), (wins, n) in sorted(counts.items())]
    return pd.DataFrame(rows, columns=VOTE_COLUMNS)
