"""Paired comparisons of two methods on the same images: bootstrap CI of the mean per-image difference.

The images of a test set are the sampling unit: both methods are scored on the same images, so
the per-image difference d_k = a_k - b_k removes the image-difficulty variance that dominates raw
scores. The confidence interval is the percentile bootstrap of mean(d) over images resampled with
replacement, from a seeded generator (the caller passes the seed: no hidden default).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_resamples))
    # Resample in chunks to bound memory (n_resamples x n indices).
    chunk = max(1, 2_000_000 // len(diff))
    for start in range(0, int(n_resamples), chunk):
        stop = min(start + chunk, int(n_resamples))
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"mean_diff": float(diff.mean()), "ci_low": float(low), "ci_high": float(high), "n": int(len(diff)),
            "n_resamples": int(n_resamples), "confidence": float(confidence), "seed": int(seed)}


def compare_methods(per_image: pd.DataFrame, method_a: str, method_b: str, metric: str, seed: int,
                    dataset: str | None = None, n_resamples: int = 10000, confidence: float = 0.95) -> dict:
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
            raise ValueError(f"method {method!r}{where} has several rows for image(s) "
                             f"{', '.join(sorted(set(scores.index[scores.index.duplicated()])))}")
    only = sorted(set(a.index) ^ set(b.index))
    if only:
        raise ValueError(f"{method_a!r} and {method_b!r}{where} were scored on different images "
                         f"(only one has: {', '.join(map(str, only))})")
    names = sorted(a.index)
    result = paired_bootstrap(a[names].to_numpy(), b[names].to_numpy(), seed=seed, n_resamples=n_resamples,
                              confidence=confidence)
    return {"method_a": method_a, "method_b": method_b, "metric": metric, "dataset": dataset, **result}
