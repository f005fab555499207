"""The paper's figures as PNGs (matplotlib's Agg renderer, seaborn styling; no pyplot global state).

- `crop_grid`: the same regions cut from every method's output (paper Fig. 11).
- `attention_figure`: image, segmentation argmax, beta_fea, beta_seg and beta of one query pixel
  (paper Fig. 6).
- `inference_time_chart`: RRDB vs RRSB inference time, reproduced beside the paper's.
- `training_curves_by_stage`: one figure per training stage (PSNR pretraining, GAN training), one
  panel per named loss, validation PSNR and learning rate, from dvclive's files.
- `training_curves`: every dvclive metric of several runs on shared axes (one panel per metric).

Every figure's title names the profile and the stand-ins, wrapped to the figure's width: a long
stand-ins list makes the title taller, never the figure wider. Each function writes its PNG
atomically and returns its path.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from spsagan.atomic import atomic_path
from spsagan.reports.paper import INFERENCE_TIME
from spsagan.segmentation.classes import COLORS

DPI = 120
MAX_WIDTH_IN = 14.0  # widest figure, inches (1680 px at DPI): wide grids shrink their panels instead
TITLE_FONTSIZE = 10


def _provenance_line(profile: str, standins: list[str]) -> str:
    return f"profile: {profile}; stand-ins: {'; '.join(standins) if standins else 'none'}"


def _save(fig: Figure, out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".png":
        raise ValueError(f"{out_path}: figures are written as PNG; use a .png file name")
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return out_path


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """`text` broken into lines that fit `width_in` inches at `fontsize` points (DejaVu Sans averages
    about 0.6 em per character; 0.65 leaves a margin)."""
    chars = max(20, int(width_in * 72 / (0.65 * fontsize)))
    return "\n".join(textwrap.fill(part, chars) for part in text.split("\n"))


def _suptitle(fig: Figure, title: str, profile: str, standins: list[str]) -> None:
    """Title and provenance line, wrapped to the figure width (a long line would widen the saved PNG)."""
    text = f"{title}\n{_provenance_line(profile, standins)}"
    fig.suptitle(_wrap(text, fig.get_figwidth(), TITLE_FONTSIZE), fontsize=TITLE_FONTSIZE)


def _show(ax, img: np.ndarray) -> None:
    """Draw a uint8 RGB or gray image pixel for pixel (no smoothing), without axis ticks."""
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


# --------------------------------------------------------------------------------------------------
# Fig. 11: crops


def _region(region) -> tuple[int, int, int, int]:
    if len(region) == 3:
        top, left, size = region
        return int(top), int(left), int(size), int(size)
    if len(region) == 4:
        return tuple(int(v) for v in region)
    raise ValueError(f"a region is (top, left, size) or (top, left, height, width), got {region!r}")


def crop_grid(
    images: dict[str, np.ndarray],
    regions: list,
    out_path: str | os.PathLike,
    title: str,
    profile: str,
    standins: list[str],
    overview: str | None = None,
) -> Path:
    """One row per region: the full `overview` image with the region boxed, then each method's crop.

    images: method -> uint8 `(H, W, 3)` or `(H, W)`, all the same size (HR pixel grid).
    regions: (top, left, size) or (top, left, height, width) in HR pixels, inside the image.
    overview: which image to show whole (default: "HR" if present, else the first).
    """
    if not images:
        raise ValueError("crop_grid needs at least one image")
    shapes = {name: np.asarray(img).shape[:2] for name, img in images.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"crop_grid images differ in size: {shapes}")
    height, width = next(iter(shapes.values()))
    boxes = [_region(r) for r in regions]
    if not boxes:
        raise ValueError("crop_grid needs at least one region")
    for top, left, h, w in boxes:
        if top < 0 or left < 0 or h < 1 or w < 1 or top + h > height or left + w > width:
            raise ValueError(f"region (top={top}, left={left}, {h}x{w}) is outside the {height}x{width} image")
    overview = overview or ("HR" if "HR" in images else next(iter(images)))
    names = list(images)
    palette = sns.color_palette("colorblind", len(boxes))
    panel = min(2.2, MAX_WIDTH_IN / (len(names) + 1))  # inches per column
    fig = Figure(figsize=(panel * (len(names) + 1), (panel + 0.1) * len(boxes) + 0.9), layout="constrained")
    axes = fig.subplots(len(boxes), len(names) + 1, squeeze=False)
    for r, (top, left, h, w) in enumerate(boxes):
        ax = axes[r][0]
        _show(ax, np.asarray(images[overview]))
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=palette[r], linewidth=2))
        ax.set_ylabel(f"region {r + 1}\n(top {top}, left {left},\n{h}x{w} px)", fontsize=8)
        if r == 0:
            ax.set_title(f"{overview} (whole)", fontsize=9)
        for c, name in enumerate(names, start=1):
            ax = axes[r][c]
            _show(ax, np.asarray(images[name])[top : top + h, left : left + w])
            for spine in ax.spines.values():
                spine.set_edgecolor(palette[r])
                spine.set_linewidth(2)
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.legend(
        handles=[Patch(edgecolor=palette[r], fill=False, label=f"region {r + 1}") for r in range(len(boxes))],
        loc="outside lower center",
        ncol=len(boxes),
        fontsize=8,
        frameon=False,
    )
    _suptitle(fig, title, profile, standins)
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------------
# Fig. 6: attention maps


def attention_figure(
    image: np.ndarray,
    seg: np.ndarray,
    beta_fea: np.ndarray,
    beta_seg: np.ndarray,
    beta: np.ndarray,
    query: tuple[int, int],
    out_path: str | os.PathLike,
    title: str,
    profile: str,
    standins: list[str],
    class_names: tuple[str, ...] | None = None,
) -> Path:
    """Five panels for one query pixel j: image, segmentation argmax, beta_fea, beta_seg, beta.

    image: uint8 `(H, W, 3)` or `(H, W)` (HR or LR grid). seg: `(8, H', W')` probabilities or an
    `(H', W')` label map (any grid). beta_*: `(h, w)` attention rows of the query over the LR grid
    (each sums to 1). query: (row, col) on the LR grid; it is marked on every panel, scaled to
    each panel's grid. class_names: names of the 8 channels (stand-in maps: "cluster k").
    """
    maps = [np.asarray(b, dtype=np.float64) for b in (beta_fea, beta_seg, beta)]
    if any(m.ndim != 2 or m.shape != maps[0].shape for m in maps):
        raise ValueError(f"beta maps must be 2-D (h, w) of one shape, got {[m.shape for m in maps]}")
    h, w = maps[0].shape
    row, col = query
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"query {query} is outside the {h}x{w} LR grid")
    seg = np.asarray(seg)
    labels = seg.argmax(axis=0) if seg.ndim == 3 else seg.astype(np.int64)
    num_classes = seg.shape[0] if seg.ndim == 3 else len(COLORS)
    names = class_names or tuple(f"class {k}" for k in range(num_classes))
    colors = (
        np.array(COLORS[:num_classes], dtype=np.uint8)
        if num_classes <= len(COLORS)
        else (np.array(sns.color_palette("tab20", num_classes)) * 255).astype(np.uint8)
    )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"segmentation labels must lie in 0..{num_classes - 1}")

    def mark(ax, grid_shape):  # the query pixel's centre on this panel's grid
        ax.plot(
            (col + 0.5) * grid_shape[1] / w - 0.5,
            (row + 0.5) * grid_shape[0] / h - 0.5,
            marker="+",
            color="red",
            markersize=12,
            markeredgewidth=2,
        )

    fig = Figure(figsize=(MAX_WIDTH_IN, 4.2), layout="constrained")
    axes = fig.subplots(1, 5)
    image = np.asarray(image)
    _show(axes[0], image)
    axes[0].set_title("image", fontsize=9)
    mark(axes[0], image.shape[:2])
    _show(axes[1], colors[labels])
    axes[1].set_title("segmentation prior (argmax)", fontsize=9)
    mark(axes[1], labels.shape)
    present = sorted(set(np.unique(labels).tolist()))
    axes[1].legend(
        handles=[Patch(color=colors[k] / 255.0, label=names[k]) for k in present],
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=2,
        frameon=False,
    )
    for ax, m, label in zip(axes[2:], maps, ("beta_fea (eq. 2)", "beta_seg (eq. 4)", "beta (eq. 6)")):
        im = ax.imshow(m, cmap="magma", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{label}, query ({row}, {col})", fontsize=9)
        mark(ax, m.shape)
        fig.colorbar(im, ax=ax, shrink=0.8).set_label("attention weight", fontsize=8)
    _suptitle(
        fig, f"{title} (each beta row sums to 1 over the {h}x{w} LR pixels; + marks the query)", profile, standins
    )
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------------
# RRDB vs RRSB inference time


# The paper's timing pair under this project's display names, and the RRDB-body / RRSB-body pairs.
PAPER_NETWORKS = {"RRDB+SPSA": "+SPSA", "RRSB+SPSA": "SPSAGAN"}
SPEEDUP_PAIRS = [("+SPSA", "SPSAGAN"), ("RRDB (PSNR)", "RRSB (PSNR)"), ("RRDB", "RRSB")]


def inference_time_chart(
    timings: pd.DataFrame,
    out_path: str | os.PathLike,
    title: str,
    profile: str,
    standins: list[str],
    include_paper: bool = True,
) -> Path:
    """Bar chart of median inference time per image, one panel per source (reproduced, paper).

    timings: columns network (the method's display name, e.g. "+SPSA", "SPSAGAN", "RRDB (PSNR)"),
    median_s (per image: the median of the timed repeats, averaged over the timing images), device,
    dtype. Each panel has its own y axis (a demo network on a CPU and the paper's GTX 1080Ti differ by
    orders of magnitude) and states the speed-up RRDB body / RRSB body when both bars are present. The
    paper's bars take the same names (its RRDB+SPSA is +SPSA, its RRSB+SPSA is SPSAGAN).
    """
    missing = [c for c in ("network", "median_s", "device", "dtype") if c not in timings.columns]
    if missing:
        raise ValueError(f"timings frame lacks column(s) {', '.join(missing)}")
    panels = []
    for (device, dtype), sub in timings.groupby(["device", "dtype"], sort=False):
        panels.append((f"reproduced ({device}, {dtype})", sub[["network", "median_s"]]))
    if include_paper:
        paper = pd.DataFrame(INFERENCE_TIME)
        paper["network"] = paper["network"].map(lambda n: PAPER_NETWORKS.get(n, n))
        panels.append((f"paper ({paper['device'].iloc[0]})", paper[["network", "median_s"]]))
    networks = list(dict.fromkeys([n for _, sub in panels for n in sub["network"]]))
    palette = dict(zip(networks, sns.color_palette("colorblind", len(networks))))
    fig = Figure(figsize=(min(MAX_WIDTH_IN, 4.6 * len(panels)), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, sub) in zip(axes, panels):
        sns.barplot(data=sub, x="network", y="median_s", hue="network", palette=palette, ax=ax, legend=False)
        for patch, value in zip(ax.patches, sub["median_s"]):
            ax.annotate(
                f"{value:.4g} s",
                (patch.get_x() + patch.get_width() / 2, patch.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        speed = dict(zip(sub["network"], sub["median_s"]))
        for rrdb, rrsb in SPEEDUP_PAIRS:
            if rrdb in speed and rrsb in speed and speed[rrsb] > 0:
                label += f"\nspeed-up {rrdb}/{rrsb}: {speed[rrdb] / speed[rrsb]:.2f}x"
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("method")
        ax.set_ylabel("time per image (s): median of repeats, mean over images")
    fig.legend(
        handles=[Patch(color=palette[n], label=n) for n in networks],
        loc="outside lower center",
        ncol=len(networks),
        fontsize=8,
        frameon=False,
    )
    _suptitle(fig, title, profile, standins)
    return _save(fig, out_path)


# --------------------------------------------------------------------------------------------------
# Training curves


def read_live_metrics(live_dir: str | os.PathLike) -> pd.DataFrame:
    """All dvclive step metrics under `<live_dir>/plots/metrics/` as a long frame: metric, step, value.

    The metric name is the TSV's path below `plots/metrics` without `.tsv` (e.g. `train/l_g_pix`).
    """
    root = Path(live_dir) / "plots" / "metrics"
    files = sorted(root.rglob("*.tsv")) if root.is_dir() else []
    if not files:
        raise ValueError(f"{root}: no dvclive metric files (*.tsv); run the training stage first")
    frames = []
    for path in files:
        df = pd.read_csv(path, sep="\t")
        if "step" not in df.columns or len(df.columns) < 2:
            raise ValueError(f"{path}: expected dvclive columns 'step' and the metric, got {list(df.columns)}")
        value = [c for c in df.columns if c not in ("step", "timestamp")][-1]
        frames.append(
            pd.DataFrame(
                {
                    "metric": path.relative_to(root).with_suffix("").as_posix(),
                    "step": df["step"],
                    "value": df[value].astype(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _finish_run_grid(fig: Figure, unused_axes, runs: list[str], palette: dict) -> None:
    """Hide the grid's unused panels and put one colour legend of the runs under the figure."""
    for ax in unused_axes:
        ax.set_visible(False)
    fig.legend(
        handles=[Patch(color=palette[r], label=r) for r in runs],
        loc="outside lower center",
        ncol=min(4, len(runs)),
        fontsize=8,
        frameon=False,
    )


def training_curves(
    live_dirs: dict[str, str | os.PathLike],
    out_path: str | os.PathLike,
    title: str,
    profile: str,
    standins: list[str],
    metrics: list[str] | None = None,
) -> Path:
    """One panel per metric, one line per run: value against training iteration.

    live_dirs: run label (e.g. "pretrain_psnr", "train_gan/spsagan") -> dvclive directory.
    metrics: which metric names to plot (default all found, in name order).
    """
    frames = [read_live_metrics(d).assign(run=label) for label, d in live_dirs.items()]
    if not frames:
        raise ValueError("training_curves needs at least one dvclive directory")
    data = pd.concat(frames, ignore_index=True)
    names = metrics or sorted(data["metric"].unique())
    unknown = [m for m in names if m not in set(data["metric"])]
    if unknown:
        logged = ", ".join(sorted(data["metric"].unique()))
        raise ValueError(f"metrics not logged: {', '.join(unknown)}; logged: {logged}")
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.3 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    runs = list(live_dirs)
    palette = dict(zip(runs, sns.color_palette("colorblind", len(runs))))
    for ax, name in zip(axes, names):
        sub = data[data["metric"] == name]
        sns.lineplot(
            data=sub,
            x="step",
            y="value",
            hue="run",
            hue_order=[r for r in runs if r in set(sub["run"])],
            palette=palette,
            ax=ax,
            legend=False,
        )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(name.rsplit("/", 1)[-1])
    _finish_run_grid(fig, axes[len(names) :], runs, palette)
    _suptitle(fig, title, profile, standins)
    return _save(fig, out_path)


# dvclive metric -> (panel title, line label within the panel or None); panels appear in this order.
SERIES = {
    "train/l1": ("L1 (pixel)", None),
    "train/perceptual": ("perceptual", None),
    "train/gan_g": ("GAN (generator)", None),
    "train/total_g": ("total (generator)", None),
    "train/d": ("discriminator", None),
    "train/d_real_logit": ("discriminator mean logit", "real"),
    "train/d_fake_logit": ("discriminator mean logit", "fake"),
    "val/psnr": ("validation PSNR (dB)", None),
    "lr/g": ("learning rate", "generator"),
    "lr/attention": ("learning rate", "attention"),
    "lr/d": ("learning rate", "discriminator"),
}
LOG_PANELS = {"learning rate"}
BICUBIC = "val/psnr_bicubic"  # a reference value (dvclive summary), drawn on the validation PSNR panel
# run label prefix (the stage) -> (file key: training_curves_<key>.png, title)
STAGES = {"pretrain_psnr": ("psnr", "PSNR pretraining"), "train_gan": ("gan", "GAN training")}
LINESTYLES = ["-", ":", "-.", (0, (1, 3))]


def training_panels(metrics) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """[(panel title, [(metric, line label or None), ...]), ...] for the logged metric names.

    Known names (SERIES) get readable titles and share panels (the learning rates of generator,
    attention and discriminator; the real and fake logits); any other metric gets a panel of its
    own, titled by its name, after the known ones. The bicubic reference is not a panel.
    """
    known = [m for m in SERIES if m in set(metrics)]
    other = sorted(set(metrics) - set(SERIES) - {BICUBIC})
    panels: dict[str, list] = {}
    for metric in known:
        title, label = SERIES[metric]
        panels.setdefault(title, []).append((metric, label))
    for metric in other:
        panels[metric] = [(metric, None)]
    return list(panels.items())


def _summary_value(live_dir: Path, name: str) -> float | None:
    """A value of dvclive's summary (`metrics.json`, nested by '/'), or None."""
    path = Path(live_dir) / "metrics.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text())
    for part in name.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def _bicubic_references(data: pd.DataFrame, live_dirs: dict[str, Path]) -> dict[str, float]:
    """{run: bicubic validation PSNR (dB)}, from the step metrics or else the run's summary."""
    refs = {}
    for run, live_dir in live_dirs.items():
        logged = data[(data["run"] == run) & (data["metric"] == BICUBIC)]["value"]
        value = float(logged.iloc[-1]) if len(logged) else _summary_value(live_dir, BICUBIC)
        if value is not None and math.isfinite(value):
            refs[run] = value
    return refs


def _draw_bicubic(ax, refs: dict[str, float], palette: dict) -> None:
    """Dashed reference line(s): one grey line when every run shares the value (same held-out images)."""
    if len(set(refs.values())) == 1:
        value = next(iter(refs.values()))
        ax.axhline(value, color="0.4", linestyle="--", linewidth=1.2, label=f"bicubic ({value:.2f} dB)")
        return
    for run, value in refs.items():
        ax.axhline(value, color=palette[run], linestyle="--", linewidth=1.0, label=f"bicubic, {run} ({value:.2f})")


def training_stage_figure(
    data: pd.DataFrame, title: str, profile: str, standins: list[str], bicubic: dict[str, float] | None = None
) -> Figure:
    """One training stage: a panel per named loss, validation PSNR and learning rate (log axis).

    data: long frame with columns run, metric, step, value (`read_live_metrics` plus a run name).
    bicubic: {run: bicubic validation PSNR (dB)}, drawn dashed on the validation PSNR panel.
    Each panel's x axis is the stage's own iterations; one colour per run, one line style per series.
    """
    panels = training_panels(data["metric"].unique())
    if not panels:
        raise ValueError(f"{title}: no training metrics to plot")
    runs = list(dict.fromkeys(data["run"]))
    palette = dict(zip(runs, sns.color_palette("colorblind", len(runs))))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(min(MAX_WIDTH_IN, 4.4 * cols), 3.1 * rows + 1.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (panel, series) in zip(axes, panels):
        for style, (metric, label) in zip(LINESTYLES * len(series), series):
            for run in runs:
                sub = data[(data["run"] == run) & (data["metric"] == metric)].sort_values("step")
                if len(sub):  # a learning rate is a step schedule: hold each value until the next
                    ax.plot(
                        sub["step"],
                        sub["value"],
                        color=palette[run],
                        linestyle=style,
                        linewidth=1.3,
                        marker="o" if len(sub) <= 3 else None,
                        markersize=3,
                        drawstyle="steps-post" if panel in LOG_PANELS else "default",
                    )
            if label:  # a black sample line per series, for the panel's legend
                ax.plot([], [], color="black", linestyle=style, label=label)
        if panel == SERIES["val/psnr"][0] and bicubic:
            _draw_bicubic(ax, {r: v for r, v in bicubic.items() if r in palette}, palette)
        if panel in LOG_PANELS:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("iteration")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _finish_run_grid(fig, axes[len(panels) :], runs, palette)
    _suptitle(fig, title, profile, standins)
    return fig


def _stage_paths(out, keys: list[str]) -> dict[str, Path]:
    """{file key: path}: `out` is a folder, or a list of paths named training_curves_<key>.png."""
    if not isinstance(out, (list, tuple)):
        return {k: Path(out) / f"training_curves_{k}.png" for k in keys}
    given = {Path(p).stem.removeprefix("training_curves_"): Path(p) for p in out}
    if sorted(given) != sorted(keys) or len(given) != len(out):
        raise ValueError(
            f"training curves: expected one path training_curves_<key>.png for each stage key "
            f"{', '.join(keys)} of the runs given, got {list(map(str, out))}"
        )
    return {k: given[k] for k in keys}


def training_curves_by_stage(
    runs: dict[str, str | os.PathLike], out, profile: str, standins: list[str], title: str = "Training curves"
) -> dict[str, Path]:
    """One figure per training stage: `training_curves_psnr.png` (PSNR pretraining) and
    `training_curves_gan.png` (GAN training), each with its own iteration axes.

    runs: "<stage>/<run>" label (e.g. "pretrain_psnr/rrdb", "train_gan/spsagan") -> dvclive folder;
        runs are grouped by the stage, the part before the slash (other stages: training_curves_<stage>.png).
    out: a folder, or a list with one path per stage present (named training_curves_<key>.png).
    Returns {key: path} of the figures written ("psnr", "gan", ...).
    """
    if not runs:
        raise ValueError("training_curves_by_stage needs at least one dvclive directory")
    stages: dict[str, dict[str, Path]] = {}
    for label, live_dir in runs.items():
        stage, _, name = str(label).partition("/")
        stages.setdefault(stage, {})[name or stage] = Path(live_dir)
    keys = {stage: STAGES.get(stage, (stage, stage))[0] for stage in stages}
    paths = _stage_paths(out, list(keys.values()))
    for stage, live_dirs in stages.items():
        data = pd.concat([read_live_metrics(d).assign(run=name) for name, d in live_dirs.items()], ignore_index=True)
        stage_title = f"{title}: {STAGES.get(stage, (stage, stage))[1]}"
        fig = training_stage_figure(data, stage_title, profile, standins, _bicubic_references(data, live_dirs))
        _save(fig, paths[keys[stage]])
    return paths


def pruning_figure(
    ds: np.ndarray, keep, out_path: str | os.PathLike, title: str, profile: str, standins: list[str]
) -> Path:
    """Paper Fig. 5: the dense block's connections x_i -> conv_k, kept or pruned, with mean DS.

    ds: (num_dense_blocks, 3, 3) DS(i, l) from `spsagan.pruning.measure_dissimilarity` ([d, l-2, i-1]).
    keep: the shared mask (5 lists; entry k-1 = conv k's sources x_0..x_{k-1}).
    """
    mean = np.nanmean(np.asarray(ds, dtype=np.float64), axis=0)
    fig = Figure(figsize=(7.5, 4.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for k, sources in enumerate(keep, start=1):
        for i, kept in enumerate(sources):
            colour = "#1b7837" if kept else "#d6d6d6"
            ax.scatter([k], [i], s=420, marker="s", color=colour, edgecolor="black", linewidth=0.6, zorder=2)
            if 1 <= i and 2 <= k - 1 <= 4 and i <= k - 2:  # DS(i, l) with l = k - 1 exists
                ax.text(
                    k,
                    i,
                    f"{mean[k - 3, i - 1]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if kept else "black",
                    zorder=3,
                )
    ax.set_xticks(range(1, 6), [f"conv{k}" for k in range(1, 6)])
    ax.set_yticks(range(0, 5), [f"x{i}" for i in range(0, 5)])
    ax.set_xlim(0.4, 5.6)
    ax.set_ylim(-0.6, 4.6)
    ax.invert_yaxis()
    ax.set_xlabel("convolution in the dense block (input of)")
    ax.set_ylabel("source feature")
    ax.grid(alpha=0.3, zorder=0)
    handles = [Patch(color="#1b7837", label="kept"), Patch(color="#d6d6d6", label="pruned")]
    ax.legend(handles=handles, loc="lower left", fontsize=8, title="numbers: mean DS(i, l = k - 1)", title_fontsize=7)
    _suptitle(fig, title, profile, standins)
    return _save(fig, out_path)
