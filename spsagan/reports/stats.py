"""Bootstrap statistics over the images of a test set.

The images of a test set are the sampling unit. Two uses:

- Paired comparisons of two methods on the same images (`paired_bootstrap`, `compare_methods`): the
  per-image difference d_k = a_k - b_k removes the image-difficulty variance that dominates raw
  scores; the interval is the percentile bootstrap of mean(d).
- Reproduction verdicts (`bootstrap_mean`, `reproduction_verdict`): the percentile bootstrap
  interval of one method's set mean, and where a number reported in the paper lies against it.

Images are resampled with replacement from a seeded generator (the caller passes the seed: no hidden
default). Reports show intervals only from MIN_IMAGES images on: with fewer, a percentile bootstrap
only reshuffles the few images seen and its interval is too narrow to stand for the test set.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_IMAGES = 10
NO_INTERVAL = f"n < {MIN_IMAGES}: no interval"
NO_PER_IMAGE = "no per-image data"
NOT_COMPARABLE = "not comparable"


def _check_options(n_resamples, confidence) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _percentile_interval(values: np.ndarray, seed: int, n_resamples: int, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(values); values: 1-D, finite, length >= 1."""
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_resamples))
    # Resample in chunks to bound memory (n_resamples x n indices).
    chunk = max(1, 2_000_000 // len(values))
    for start in range(0, int(n_resamples), chunk):
        stop = min(start + chunk, int(n_resamples))
        idx = rng.integers(0, len(values), size=(stop - start, len(values)))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_bootstrap(a, b, seed: int, n_resamples: int = 10000, confidence: float = 0.95) -> dict:
    """Mean of a - b over paired samples, with a percentile bootstrap confidence interval.

    a, b: 1-D arrays of the same length n >= 2 (per-image scores of two methods, same image order).
    Returns {mean_diff, ci_low, ci_high, n, n_resamples, confidence, seed}.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs two 1-D arrays of equal length, got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"paired_bootstrap needs at least 2 pairs, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_bootstrap got NaN or infinite scores; drop unavailable metrics before comparing")
    _check_options(n_resamples, confidence)
    diff = a - b
    low, high = _percentile_interval(diff, seed, n_resamples, confidence)
    return {
        "mean_diff": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "n": int(len(diff)),
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
    }


def bootstrap_mean(values, seed: int, n_resamples: int = 10000, confidence: float = 0.95) -> dict:
    """Mean of per-image scores with a percentile bootstrap interval over images.

    values: 1-D array of n >= 2 finite scores (one per image).
    Returns {mean, ci_low, ci_high, n, n_resamples, confidence, seed}.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"bootstrap_mean needs a 1-D array of at least 2 scores, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("bootstrap_mean got NaN or infinite scores; an interval needs every image's score")
    _check_options(n_resamples, confidence)
    low, high = _percentile_interval(values, seed, n_resamples, confidence)
    return {
        "mean": float(values.mean()),
        "ci_low": low,
        "ci_high": high,
        "n": int(len(values)),
        "n_resamples": int(n_resamples),
        "confidence": float(confidence),
        "seed": int(seed),
    }


def reproduction_verdict(paper: float, n: int | None, ci_low: float, ci_high: float, standins) -> str:
    """Where a paper value lies against the interval of the reproduced set mean.

    paper: the reported value (finite). n: images behind the reproduced mean, None when no per-image
    scores were given. ci_low, ci_high: the interval (NaN when there is none). standins: non-empty
    when the run used stand-ins, which makes any agreement or disagreement meaningless.
    Returns "inside", "above" or "below" (paper value vs the interval), or "not comparable",
    "no per-image data" or "n < 10: no interval"; "not comparable; <reason>" when the interval is
    missing too.
    """
    if n is None:
        missing = NO_PER_IMAGE
    elif n < MIN_IMAGES:
        missing = NO_INTERVAL
    elif not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        missing = "no interval"
    else:
        missing = ""
    if standins:
        return f"{NOT_COMPARABLE}; {missing}" if missing else NOT_COMPARABLE
    if missing:
        return missing
    return "above" if paper > ci_high else "below" if paper < ci_low else "inside"


def compare_methods(
    per_image: pd.DataFrame,
    method_a: str,
    method_b: str,
    metric: str,
    seed: int,
    dataset: str | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
) -> dict:
    """paired_bootstrap of `metric` for method_a - method_b, images paired by `name`.

    per_image: columns method, name, <metric> (and dataset when `dataset` is given).
    Raises ValueError naming the images scored for one method but not the other.
    """
    df = per_image if dataset is None else per_image[per_image["dataset"] == dataset]
    a = df[df["method"] == method_a].set_index("name")[metric]
    b = df[df["method"] == method_b].set_index("name")[metric]
    where = f" on {dataset}" if dataset is not None else ""
    for method, scores in ((method_a, a), (method_b, b)):
        if scores.empty:
            raise ValueError(f"no per-image {metric} for method {method!r}{where}")
        if scores.index.duplicated().any():
            raise ValueError(
                f"method {method!r}{where} has several rows for image(s) "
                f"{', '.join(sorted(set(scores.index[scores.index.duplicated()])))}"
            )
    only = sorted(set(a.index) ^ set(b.index))
    if only:
        raise ValueError(
            f"{method_a!r} and {method_b!r}{where} were scored on different images "
            f"(only one has: {', '.join(map(str, only))})"
        )
    names = sorted(a.index)
    result = paired_bootstrap(
        a[names].to_numpy(), b[names].to_numpy(), seed=seed, n_resamples=n_resamples, confidence=confidence
    )
    return {"method_a": method_a, "method_b": method_b, "metric": metric, "dataset": dataset, **result}


# --------------------------------------------------------------------------------------------------
# Several training runs (seeds) of one method


def seed_average(per_image: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Each image's score averaged over the seeds of its method: one row per method, dataset and name.

    per_image: columns method, dataset, name, <metrics>, and optionally `seed` (several rows per image,
        one per training run; absent or NaN for a method with a single run or no training).
    Returns method, dataset, name, <metrics>, n_seeds (distinct seeds behind the row, 1 without a
    `seed` column). A score missing for any seed makes the average NaN: a partial average is never
    reported as the average over the runs.
    """
    keys = ["method", "dataset", "name"]
    if "seed" not in per_image.columns:
        return per_image[keys + metrics].assign(n_seeds=1)
    df = per_image.assign(seed=per_image["seed"].fillna(-1))
    dup = df[df.duplicated([*keys, "seed"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise ValueError(
            f"per-image frame has several rows for {first['method']}/{first['dataset']}/{first['name']} "
            f"seed {first['seed']}"
        )
    grouped = df.groupby(keys, sort=False)
    out = grouped[metrics].agg(lambda c: c.mean(skipna=False)).reset_index()
    out["n_seeds"] = grouped["seed"].nunique().to_numpy()
    return out


def prediction_interval(values, confidence: float = 0.95) -> dict:
    """t-based prediction interval for one more run: mean ± t_{(1+c)/2, n-1} · s · sqrt(1 + 1/n).

    values: 1-D, n >= 2 finite numbers (one per training run, e.g. each seed's set mean).
    Assumes runs are independent draws from a normal distribution. Returns {mean, sd, n, low, high}.
    """
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"prediction_interval needs at least 2 finite values, got {values!r}")
    n, mean, sd = len(values), float(values.mean()), float(values.std(ddof=1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half, "high": mean + half}


def mean_interval(values, confidence: float = 0.95) -> dict:
    """t confidence interval of the mean of n >= 2 values: mean ± t_{(1+c)/2, n-1} · s / sqrt(n).
    Returns {mean, sd, n, low, high}."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"mean_interval needs at least 2 finite values, got {values!r}")
    n, mean, sd = len(values), float(values.mean()), float(values.std(ddof=1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "n": n, "low": mean - half, "high": mean + half}
