"""Reports: paper numbers, Table 1, paired bootstrap, ablation and figures."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from spsagan.reports import ablation, figures, names, paper, stats, table1

torch.set_num_threads(1)

SPEC = Path(__file__).resolve().parents[2] / "shared" / "SPEC.md"
PROFILE = "demo"
STANDINS = ["segmentation: colour/texture clustering", "VGG19: seeded random weights", "data: scikit-image photos"]


# --------------------------------------------------------------------------------------------------
# Paper numbers


def test_paper_spot_values():
    df = paper.reported_values()
    row = df[(df["method"] == "SPSAGAN") & (df["dataset"] == "BSD100")].iloc[0]
    assert (row["psnr"], row["ssim"], row["pi"]) == (25.16, 0.6344, 2.365)
    row = df[(df["method"] == "Bicubic") & (df["dataset"] == "BSD100")].iloc[0]
    assert (row["psnr"], row["ssim"], row["pi"]) == (25.96, 0.6675, 7.003)
    san = df[(df["method"] == "SAN") & (df["dataset"] == "BSD100")].iloc[0]
    assert math.isnan(san["psnr"]) and san["ssim"] == 0.7436 and "lost" in san["note"]
    unplaced = paper.table1_unplaced()
    assert sorted(unplaced["psnr"]) == [25.33, 27.76] and all("column" in n for n in unplaced["note"])
    assert paper.canonical_dataset("B100") == "BSD100" and paper.canonical_dataset("OST") == "OST300"
    assert paper.canonical_dataset("demo_test") == "demo_test"


def test_every_paper_number_appears_in_the_spec():
    """No number is invented: each finite reported value is written in SPEC section 7."""
    if not SPEC.is_file():
        pytest.skip("shared/SPEC.md not available")
    section = SPEC.read_text(encoding="utf-8").split("## 7. Reference numbers", 1)[1]
    numbers = set(re.findall(r"\d+\.\d+", section))
    values = paper.reported_values()[["psnr", "ssim", "pi"]].to_numpy().ravel().tolist()
    values += [r["pi"] for r in paper.PER_IMAGE_PI] + [r["median_s"] for r in paper.INFERENCE_TIME]
    for v in values:
        if isinstance(v, float) and math.isfinite(v) and v != 1.0:
            assert any(float(n) == v for n in numbers), f"{v} is not in SPEC section 7"


# --------------------------------------------------------------------------------------------------
# Table 1


def _results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("B100", "demo_test"):
        for method in ("bicubic", "esrgan", "+fa", "spsagan"):
            rows.append(
                {
                    "method": method,
                    "dataset": dataset,
                    "psnr": 24 + 4 * rng.random(),
                    "ssim": 0.6 + 0.2 * rng.random(),
                    "niqe": 3 + 4 * rng.random(),
                    "pi": math.nan,
                    "pi_reason": "pyiqa not installed",
                }
            )
    return pd.DataFrame(rows)


def _md_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_table1_csv_reproduced_values_equal_results_cell_by_cell(tmp_path):
    results = _results()
    paths = table1.render_table1(results, PROFILE, STANDINS, tmp_path)
    assert set(paths) == {"md", "csv", "tex"} and all(p.is_file() for p in paths.values())
    # parse numbers with Python's float(): exact for the shortest-repr digits pandas writes
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    for col in ("psnr", "ssim", "niqe", "pi"):
        csv[col] = [float(v) if v else math.nan for v in csv[col]]
    for col in ("method", "dataset", "psnr", "ssim", "niqe", "pi", "source"):
        assert col in csv.columns
    assert set(csv["source"]) == {"reproduced", "paper"}
    rep = csv[csv["source"] == "reproduced"].reset_index(drop=True)
    assert len(rep) == len(results)
    for i, row in results.iterrows():
        got = rep.iloc[i]
        assert got["results_method"] == row["method"]
        assert got["dataset"] == paper.canonical_dataset(row["dataset"])
        for col in ("psnr", "ssim", "niqe"):
            assert got[col] == row[col]  # exact: written at full precision
        assert math.isnan(got["pi"])
        assert got["profile"] == PROFILE
    pap = csv[(csv["source"] == "paper")]
    ref = paper.table1_values()
    merged = pap.merge(ref, on=["method", "dataset"], suffixes=("", "_ref"))
    assert len(merged) == len(ref)
    for col in ("psnr", "ssim", "pi"):
        same = (merged[col] == merged[f"{col}_ref"]) | (merged[col].isna() & merged[f"{col}_ref"].isna())
        assert same.all()


def test_table1_markdown_layout_and_cells(tmp_path):
    results = _results()
    text = table1.render_table1(results, PROFILE, STANDINS, tmp_path)["md"].read_text(encoding="utf-8")
    assert "Profile: **demo**" in text and all(s in text for s in STANDINS)
    table = _md_tables(text)[0]  # the paper-layout grid; the verdict table follows
    head, rows = table[0], table[2:]
    assert all(len(r) == len(head) for r in table)
    assert head[:2] == ["Dataset", "Metric"]
    # Paper columns in the paper's order, then our own: the retrained ESRGAN never takes the paper's column.
    assert head[2:] == [m for m in paper.TABLE1_METHODS if m in head] + ["ESRGAN (retrained)", "+FA"]
    assert head.index("Bicubic") < head.index("SPSAGAN") < head.index("+FA")
    assert all(" r" not in r[head.index("ESRGAN")] for r in rows)  # the paper's values alone
    cell = {(r[0], r[1], h): r[i] for r in rows for i, h in enumerate(head)}
    spsagan = results[(results["method"] == "spsagan") & (results["dataset"] == "B100")].iloc[0]
    psnr_cell = cell[("BSD100", "PSNR (dB) ↑", "SPSAGAN")]
    # stand-ins: the verdict marker says the two are not comparable
    assert psnr_cell == f"{spsagan['psnr']:.2f} r / 25.16 p (Δ {spsagan['psnr'] - 25.16:+.2f}) [n.c.]"
    assert cell[("BSD100", "SSIM ↑", "SPSAGAN")].startswith(f"{spsagan['ssim']:.4f} r / 0.6344 p")
    assert cell[("BSD100", "PI ↓", "SPSAGAN")] == "n/a r / 2.365 p"
    assert cell[("BSD100", "PI ↓", "SRGAN")] == "2.565 p"
    assert cell[("BSD100", "PSNR (dB) ↑", "HR")] == ""  # not reported: never filled in
    assert cell[("OST300", "SSIM ↑", "SFTGAN")] == "0.6340 p"
    assert cell[("OST300", "PSNR (dB) ↑", "SFTGAN")] == ""
    fa = results[(results["method"] == "+fa") & (results["dataset"] == "demo_test")].iloc[0]
    assert cell[("demo_test", "NIQE ↓", "+FA")] == f"{fa['niqe']:.3f} r"
    assert "PI not available: pyiqa not installed" in text
    assert "25.33" in text and "27.76" in text  # unplaced cells are listed, not dropped


def test_table1_tex_is_well_formed(tmp_path):
    text = table1.render_table1(_results(), PROFILE, STANDINS, tmp_path)["tex"].read_text(encoding="utf-8")
    assert "demo" in text and "colour/texture clustering" in text
    body = re.sub(r"\\[{}&%$#_]", "", text)  # drop escaped characters
    assert body.count("{") == body.count("}")
    for env in ("table*", "tabular"):
        assert text.count(rf"\begin{{{env}}}") == 1 == text.count(rf"\end{{{env}}}")
    spec = re.search(r"\\begin\{tabular\}\{([lc]+)\}", text).group(1)
    rows = [line for line in text.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + 3 * 4  # header + 3 datasets x 4 metrics
    for line in rows:
        assert len(re.findall(r"(?<!\\)&", line)) == len(spec) - 1, line
    assert "$\\Delta$" in text and "\\textsuperscript{r}" in text


def test_table1_rejects_bad_results(tmp_path):
    results = _results()
    with pytest.raises(ValueError, match="niqe"):
        table1.render_table1(results.drop(columns="niqe"), PROFILE, STANDINS, tmp_path)
    dup = pd.concat([results, results.iloc[[0]].assign(dataset="BSD100")])
    with pytest.raises(ValueError, match="Bicubic/BSD100"):
        table1.render_table1(dup, PROFILE, STANDINS, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------------------------------
# Paired bootstrap


def test_bootstrap_ci_contains_true_mean_difference():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(27, 2, size=200)  # shared per-image difficulty, cancels in the pairing
    a = difficulty + 0.3 + rng.normal(0, 0.5, 200)
    b = difficulty + rng.normal(0, 0.5, 200)
    res = stats.paired_bootstrap(a, b, seed=0, n_resamples=4000)
    assert res["ci_low"] < 0.3 < res["ci_high"]
    assert res["ci_low"] > 0  # the difference is detected
    assert res["mean_diff"] == pytest.approx(np.mean(a - b))
    # the interval is about +-1.96 standard errors of the mean difference
    se = np.std(a - b, ddof=1) / np.sqrt(200)
    assert res["ci_high"] - res["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(2)
    hits = 0
    for k in range(200):
        d = rng.normal(0.1, 1.0, size=40)
        res = stats.paired_bootstrap(d, np.zeros_like(d), seed=k, n_resamples=1000)
        hits += res["ci_low"] <= 0.1 <= res["ci_high"]
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_is_seeded_and_validates():
    a, b = np.random.default_rng(0).normal(size=(2, 10))
    assert stats.paired_bootstrap(a, b, seed=3) == stats.paired_bootstrap(a, b, seed=3)
    assert stats.paired_bootstrap(a, b, seed=3)["ci_low"] != stats.paired_bootstrap(a, b, seed=4)["ci_low"]
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_bootstrap(a, b[:5], seed=0)
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_bootstrap(a, np.full(10, np.nan), seed=0)


def test_compare_methods_pairs_by_image_name():
    df = pd.DataFrame(
        {
            "method": ["x"] * 3 + ["y"] * 3,
            "name": ["a", "b", "c", "c", "a", "b"],
            "psnr": [30.0, 31.0, 32.0, 29.0, 28.0, 30.5],
        }
    )
    res = stats.compare_methods(df, "x", "y", "psnr", seed=0, n_resamples=200)
    assert res["mean_diff"] == pytest.approx(((30 - 28) + (31 - 30.5) + (32 - 29)) / 3)
    with pytest.raises(ValueError, match="only one has: d"):
        stats.compare_methods(
            pd.concat([df, pd.DataFrame({"method": ["x"], "name": ["d"], "psnr": [1.0]})]), "x", "y", "psnr", seed=0
        )


# --------------------------------------------------------------------------------------------------
# Ablation


def _per_image(n_images: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for dataset in ("demo_test", "Set5"):
        base = rng.normal(27, 1.5, size=n_images)
        for shift, method in zip((0.0, 0.1, 0.2, 0.35), ablation.PRESET_ORDER):
            for k in range(n_images):
                rows.append(
                    {
                        "method": method,
                        "dataset": dataset,
                        "name": f"img{k}",
                        "psnr": base[k] + shift + rng.normal(0, 0.05),
                        "ssim": 0.7 + 0.01 * shift,
                        "niqe": 5 - shift + rng.normal(0, 0.1),
                        "pi": math.nan,
                    }
                )
    return pd.DataFrame(rows)


def _costs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": m,
                "params": 1000 + i,
                "flops": 2e9 + i,
                "median_s": 0.01 * (i + 1),
                "device": "cpu",
                "dtype": "float32",
                "size": "1x3x32x32",
            }
            for i, m in enumerate(ablation.PRESET_ORDER)
        ]
    )


def test_ablation_report(tmp_path):
    per_image = _per_image(n_images=12)  # intervals from 10 images on
    paths = ablation.render_ablation(per_image, _costs(), PROFILE, STANDINS, tmp_path, seed=0, n_resamples=500)
    text = paths["md"].read_text(encoding="utf-8")
    assert "Profile: **demo**" in text and STANDINS[0] in text
    for m in ablation.PRESET_ORDER:
        sub = per_image[(per_image["method"] == m) & (per_image["dataset"] == "Set5")]
        assert f"| {names.display_name(m)} | {sub['psnr'].mean():.2f} |" in text
    assert "| SPSAGAN | 1,003 | 2.000 | 0.0400 |  | cpu | float32 | 1x3x32x32 |" in text
    comp = pd.read_csv(paths["csv"])
    assert len(comp) == 2 * 3 * 4  # datasets x other presets x metrics
    row = comp[(comp["dataset"] == "Set5") & (comp["metric"] == "psnr") & (comp["method_b"] == "esrgan")].iloc[0]
    a = per_image[(per_image["method"] == "spsagan") & (per_image["dataset"] == "Set5")]["psnr"].to_numpy()
    b = per_image[(per_image["method"] == "esrgan") & (per_image["dataset"] == "Set5")]["psnr"].to_numpy()
    assert row["mean_diff"] == pytest.approx(np.mean(a - b))
    assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"] and row["n"] == 12
    pi_rows = comp[comp["metric"] == "pi"]
    assert pi_rows["mean_diff"].isna().all() and (pi_rows["note"] == "pi not available for every image").all()
    assert f"{row['mean_diff']:+.2f}" in text


def test_ablation_needs_the_baseline(tmp_path):
    per_image = _per_image()
    with pytest.raises(ValueError, match="spsagan"):
        ablation.render_ablation(
            per_image[per_image["method"] != "spsagan"], _costs(), PROFILE, STANDINS, tmp_path, seed=0
        )
    with pytest.raises(ValueError, match="median_s"):
        ablation.render_ablation(per_image, _costs().drop(columns="median_s"), PROFILE, STANDINS, tmp_path, seed=0)


# --------------------------------------------------------------------------------------------------
# Figures


def _is_png(path: Path, min_size=(200, 150)) -> bool:
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def test_crop_grid(tmp_path):
    rng = np.random.default_rng(0)
    images = {m: rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for m in ("HR", "bicubic", "spsagan")}
    images["gray"] = images["HR"][:, :, 0]
    out = figures.crop_grid(
        images, [(0, 0, 16), (20, 30, 12, 20)], tmp_path / "crops.png", "Fig. 11 crops", PROFILE, STANDINS
    )
    assert _is_png(out)
    with pytest.raises(ValueError, match="outside"):
        figures.crop_grid(images, [(40, 60, 16)], tmp_path / "bad.png", "x", PROFILE, STANDINS)
    with pytest.raises(ValueError, match="differ in size"):
        figures.crop_grid(
            {"a": images["HR"], "b": images["HR"][:8]}, [(0, 0, 4)], tmp_path / "bad.png", "x", PROFILE, STANDINS
        )
    assert not (tmp_path / "bad.png").exists()


def test_attention_figure(tmp_path):
    rng = np.random.default_rng(1)
    h, w = 6, 8
    betas = [rng.dirichlet(np.ones(h * w)).reshape(h, w) for _ in range(3)]
    seg = rng.dirichlet(np.ones(8), size=(4 * h, 4 * w)).transpose(2, 0, 1)
    image = rng.integers(0, 256, size=(4 * h, 4 * w, 3), dtype=np.uint8)
    out = figures.attention_figure(
        image,
        seg,
        *betas,
        query=(2, 3),
        out_path=tmp_path / "attn.png",
        title="Fig. 6",
        profile=PROFILE,
        standins=STANDINS,
        class_names=tuple(f"cluster {k}" for k in range(8)),
    )
    assert _is_png(out)
    with pytest.raises(ValueError, match="outside"):
        figures.attention_figure(
            image, seg, *betas, query=(6, 0), out_path=tmp_path / "x.png", title="t", profile=PROFILE, standins=STANDINS
        )


def test_inference_time_chart(tmp_path):
    timings = pd.DataFrame(
        [
            {"network": "RRDB", "median_s": 0.02, "device": "cpu", "dtype": "float32"},
            {"network": "RRSB", "median_s": 0.016, "device": "cpu", "dtype": "float32"},
        ]
    )
    out = figures.inference_time_chart(timings, tmp_path / "time.png", "RRDB vs RRSB", PROFILE, STANDINS)
    assert _is_png(out)
    with pytest.raises(ValueError, match="median_s"):
        figures.inference_time_chart(timings.drop(columns="median_s"), tmp_path / "t.png", "t", PROFILE, STANDINS)


def test_training_curves_from_dvclive(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(tmp_path)
    from dvclive import Live

    for run, scale in (("pretrain", 1.0), ("gan", 2.0)):
        with Live(str(tmp_path / run), save_dvc_exp=False, dvcyaml=None) as live:
            for step in range(5):
                live.log_metric("train/l_pix", scale / (step + 1))
                live.log_metric("val/psnr", 20 + step)
                live.next_step()
    data = figures.read_live_metrics(tmp_path / "gan")
    assert set(data["metric"]) == {"train/l_pix", "val/psnr"}
    assert data[data["metric"] == "train/l_pix"]["value"].tolist() == pytest.approx([2 / (s + 1) for s in range(5)])
    out = figures.training_curves(
        {"pretrain": tmp_path / "pretrain", "gan": tmp_path / "gan"},
        tmp_path / "curves.png",
        "training",
        PROFILE,
        STANDINS,
    )
    assert _is_png(out)
    with pytest.raises(ValueError, match="no dvclive metric files"):
        figures.training_curves({"x": tmp_path / "empty"}, tmp_path / "c.png", "t", PROFILE, STANDINS)
    with pytest.raises(ValueError, match="not logged: nope"):
        figures.training_curves({"gan": tmp_path / "gan"}, tmp_path / "c.png", "t", PROFILE, STANDINS, metrics=["nope"])


def test_ablation_with_a_single_test_image_says_why_there_is_no_interval():
    from spsagan.reports.ablation import ablation_comparisons

    per_image = pd.DataFrame(
        [
            {
                "method": m,
                "dataset": "one",
                "name": "img",
                "psnr": 20.0 + i,
                "ssim": 0.5,
                "niqe": 5.0,
                "pi": float("nan"),
            }
            for i, m in enumerate(["esrgan", "spsagan"])
        ]
    )
    table = ablation_comparisons(per_image, seed=0)
    psnr = table[table["metric"] == "psnr"].iloc[0]
    assert psnr["mean_diff"] == 1.0 and math.isnan(psnr["ci_low"]) and psnr["note"] == "n < 10: no interval"


def test_timing_compares_the_papers_pair_and_the_psnr_models_with_device_and_sizes():
    from spsagan.reports.ablation import timing_lines

    costs = pd.DataFrame(
        [
            {
                "method": "+spsa",
                "median_s": 0.5,
                "images": 3,
                "sizes": [[64, 64], [32, 48], [64, 64]],
                "size": [64, 64],
                "device": "cpu",
                "dtype": "float32",
            },
            {
                "method": "spsagan",
                "median_s": 0.4,
                "images": 3,
                "sizes": [[64, 64], [32, 48], [64, 64]],
                "size": [64, 64],
                "device": "cpu",
                "dtype": "float32",
            },
            {
                "method": "rrdb_psnr",
                "median_s": 0.2,
                "images": 3,
                "sizes": [[64, 64]] * 3,
                "size": [64, 64],
                "device": "cpu",
                "dtype": "float32",
            },
            {
                "method": "rrsb_psnr",
                "median_s": 0.1,
                "images": 3,
                "sizes": [[64, 64]] * 3,
                "size": [64, 64],
                "device": "cpu",
                "dtype": "float32",
            },
        ]
    )
    text = "\n".join(timing_lines(costs))
    assert "| +SPSA vs SPSAGAN (the paper's comparison) | 0.5000 | 0.4000 | 1.25x | 3 | 1,536-4,096 | cpu |" in text
    assert "| RRDB (PSNR) vs RRSB (PSNR) (no attention) | 0.2000 | 0.1000 | 2.00x | 3 | 4,096 | cpu | float32 |" in text
    assert "| paper, +SPSA vs SPSAGAN | 0.368 | 0.296 | 1.24x | OST300 |" in text
