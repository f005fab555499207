"""Offline stand-in segmenter: 8 soft maps from unsupervised colour/texture clustering.

For the demo profile, where no pretrained outdoor segmenter can be had offline. It takes the same HR
input and produces maps in the same format as OutdoorSceneSeg ((8, H, W) probabilities summing to 1 per
pixel), so the SPSA layer runs unchanged. The channels are NOT semantic categories: channel k is the
k-th colour/texture cluster of that one image, clusters sorted by increasing lightness (so channel 0 is
the darkest region of every image, which gives the channels a weak meaning shared across images).

Method, per image (deterministic for a seed):
1. Like OutdoorSceneSeg, look only at what the LR image holds: the LR itself (`segment_lq`), or for
   an HR image its LR as make_lr makes it (`spsagan.image.make_lq`: MATLAB bicubic x1/4 of the mod-4 crop).
2. Features per LR pixel: CIELAB colour (slightly blurred) and local texture (standard deviation of
   lightness in a 5x5 window, then blurred), colour and texture each scaled by their spread.
3. K-means with 8 clusters (k-means++ seeding from `numpy.random.default_rng(seed)`, Lloyd iterations,
   fitted on at most `max_fit_points` pixels drawn with the same generator).
4. Soft assignment p_k proportional to exp(-d_k^2 / (2 T)), d_k the distance to centroid k and T the
   mean squared distance of the pixels to their nearest centroid (times `softness`).
5. Maps upsampled x4 with bilinear interpolation (the prior at the x4 output's size); for an HR image
   padded to (H, W) by edge replication.
"""

from __future__ import annotations

import cv2
import numpy as np

from spsagan.image import make_lq
from spsagan.segmentation.classes import NUM_CLASSES, channel_names
from spsagan.segmentation.storage import pad_map

ALGORITHM = "colour-texture-kmeans-v1"


class StandInSegmenter:
    """Deterministic clustering stand-in; see the module docstring.

    segment(images): list of uint8 (H, W, 3) RGB (or (H, W) gray) HR images, H, W >= 4 ->
    list of float32 (8, H, W) probabilities. segment_lq(images): LR images (h, w[, 3]) -> (8, 4h, 4w);
    segment(hr) is segment_lq(make_lq(hr)) padded to (H, W).
    """

    name = "standin"
    semantic = False
    channel_names = channel_names(False)

    def __init__(
        self,
        seed: int,
        texture_weight: float = 0.5,
        softness: float = 1.0,
        max_fit_points: int = 20_000,
        iterations: int = 30,
    ):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"stand-in segmenter seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.texture_weight = float(texture_weight)
        self.softness = float(softness)
        self.max_fit_points = int(max_fit_points)
        self.iterations = int(iterations)
        self.label = f"standin({ALGORITHM} seed={self.seed})"

    def to(self, device) -> StandInSegmenter:
        return self  # numpy on the CPU; nothing to move

    def segment(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [self.segment_one(im) for im in images]

    def segment_one(self, hr: np.ndarray) -> np.ndarray:
        """HR image (H, W[, 3]) uint8 -> (8, H, W): the maps of its LR (`make_lq`), padded to (H, W)."""
        hr = _as_rgb(hr)
        height, width = hr.shape[:2]
        if height < 4 or width < 4:
            raise ValueError(f"image of {height}x{width} pixels is too small for the stand-in (needs >= 4x4)")
        return np.ascontiguousarray(pad_map(self.segment_lq_one(make_lq(hr, 4)), height, width))

    def segment_lq(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """LR images (h, w[, 3]) uint8 -> maps (8, 4h, 4w) float32: the prior at the x4 output's size."""
        return [self.segment_lq_one(im) for im in images]

    def segment_lq_one(self, lq: np.ndarray) -> np.ndarray:
        lq = _as_rgb(lq)
        features = _features(lq, self.texture_weight)
        centroids = self._kmeans(features)
        probs = _soft_assign(features, centroids, self.softness)  # (h*w, 8)
        h, w = lq.shape[:2]
        maps = probs.reshape(h, w, NUM_CLASSES).astype(np.float32)
        maps = cv2.resize(maps, (4 * w, 4 * h), interpolation=cv2.INTER_LINEAR)
        maps = maps.reshape(4 * h, 4 * w, NUM_CLASSES).transpose(2, 0, 1)
        maps = maps / maps.sum(axis=0, keepdims=True)
        return np.ascontiguousarray(maps, dtype=np.float32)

    def _kmeans(self, features: np.ndarray) -> np.ndarray:
        """Centroids (8, F), sorted by lightness (then the other features) for a stable channel order."""
        rng = np.random.default_rng(self.seed)
        points = features
        if len(points) > self.max_fit_points:
            points = points[np.sort(rng.choice(len(points), self.max_fit_points, replace=False))]
        centroids = _kmeans_plus_plus(points, NUM_CLASSES, rng)
        norms = (points**2).sum(axis=1)
        for _ in range(self.iterations):
            nearest = _sq_distances(points, centroids, norms).argmin(axis=1)
            updated = centroids.copy()
            for k in range(NUM_CLASSES):
                members = points[nearest == k]
                if len(members):  # an empty cluster keeps its centroid
                    updated[k] = members.mean(axis=0)
            if np.allclose(updated, centroids, rtol=0.0, atol=1e-9):
                break
            centroids = updated
        return centroids[np.lexsort(centroids.T[::-1])]

    def meta(self) -> dict:
        return {
            "segmenter": self.name,
            "segmenter_label": self.label,
            "semantic": False,
            "algorithm": ALGORITHM,
            "seed": self.seed,
        }


def _as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) as it is, (H, W) gray replicated to 3 channels; anything else is an error."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"stand-in segmenter expects uint8 (H, W, 3) or (H, W), got {img.dtype} {img.shape}")
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def _features(lq: np.ndarray, texture_weight: float) -> np.ndarray:
    """uint8 (h, w, 3) RGB -> float64 (h*w, 4): [L, a, b] / colour spread, texture / its spread."""
    lab = cv2.cvtColor(lq.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab = cv2.GaussianBlur(lab, (0, 0), sigmaX=0.7, borderType=cv2.BORDER_REFLECT)
    lightness = lab[:, :, 0].astype(np.float64)
    mean = cv2.blur(lightness, (5, 5), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.blur(lightness * lightness, (5, 5), borderType=cv2.BORDER_REFLECT)
    texture = np.sqrt(np.clip(mean_sq - mean * mean, 0.0, None))
    # Smoothing turns thin edge responses into region-level texture (fur, foliage vs flat sky).
    texture = cv2.GaussianBlur(texture, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT)
    colour = lab.reshape(-1, 3).astype(np.float64)
    colour = (colour - colour.mean(axis=0)) / (np.sqrt(colour.var(axis=0).sum()) + 1e-6)
    texture = texture.reshape(-1, 1)
    texture = (texture - texture.mean()) / (texture.std() + 1e-6) * texture_weight
    return np.concatenate([colour, texture], axis=1)


def _sq_distances(points: np.ndarray, centroids: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """(N, F), (K, F) -> (N, K) squared Euclidean distances (clipped at 0 against rounding).

    norms: the points' squared norms (N,), when already at hand.
    """
    if norms is None:
        norms = (points**2).sum(axis=1)
    d2 = points @ (-2.0 * centroids.T)
    d2 += norms[:, None]
    d2 += (centroids**2).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding; with fewer distinct points than k, centroids repeat."""
    centroids = [points[rng.integers(len(points))]]
    closest = _sq_distances(points, np.array(centroids))[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        index = rng.choice(len(points), p=closest / total) if total > 0 else rng.integers(len(points))
        centroids.append(points[index])
        closest = np.minimum(closest, _sq_distances(points, points[index][None])[:, 0])
    return np.array(centroids)


def _soft_assign(features: np.ndarray, centroids: np.ndarray, softness: float) -> np.ndarray:
    """(N, F) -> (N, 8) soft memberships: softmax of -d^2 / (2 T), T = mean nearest d^2."""
    d2 = _sq_distances(features, centroids)
    temperature = 2.0 * softness * max(float(d2.min(axis=1).mean()), 1e-12)
    logits = -(d2 - d2.min(axis=1, keepdims=True)) / temperature
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)
