"""A literal, per-element MATLAB bicubic imresize (SPEC section 4), the tests' independent reference.

Slow by design (Python loops over every output sample); use it on tiny images only.
"""

import math

import numpy as np


def ref_cubic(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def ref_fold(i, n):
    """1-based index folded into 1..n by mirroring with the edge sample repeated."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i


def ref_resize_1d(line, out_len, s, round_uint8):
    n = len(line)
    width = 4.0 / s if s < 1 else 4.0
    out = []
    for x in range(1, out_len + 1):
        u = x / s + 0.5 * (1 - 1 / s)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        w = [s * ref_cubic(s * (u - j)) if s < 1 else ref_cubic(u - j) for j in taps]
        total = sum(w)
        v = sum(wk / total * line[ref_fold(j, n) - 1] for wk, j in zip(w, taps))
        if round_uint8:
            v = min(max(v, 0.0), 255.0)
            v = math.floor(v + 0.5)
        out.append(v)
    return out


def ref_imresize(img, s):
    """Per element: every column along H first, then every row along W."""
    is_uint8 = img.dtype == np.uint8
    a = img.astype(np.float64)
    h, w = a.shape[:2]
    oh, ow = math.ceil(h * s), math.ceil(w * s)
    mid = np.zeros((oh, w) + a.shape[2:])
    for c in np.ndindex(a.shape[2:]):
        for col in range(w):
            mid[(slice(None), col) + c] = ref_resize_1d(list(a[(slice(None), col) + c]), oh, s, is_uint8)
    out = np.zeros((oh, ow) + a.shape[2:])
    for c in np.ndindex(a.shape[2:]):
        for row in range(oh):
            out[(row, slice(None)) + c] = ref_resize_1d(list(mid[(row, slice(None)) + c]), ow, s, is_uint8)
    return out.astype(np.uint8) if is_uint8 else out
