"""Reports: reproduction verdicts, intervals from 10 images on, header reductions, figure sizes,
per-stage training curves and the HTML Table 1."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spsagan.reports import ablation, figures, output_paths, provenance, reductions, stats, table1

PROFILE = "paper"
LONG_STANDINS = [
    "data: scikit-image's bundled photos instead of DIV2K/Flickr2K/OST and the benchmark sets",
    "segmentation prior: standin (colour/texture clustering of the bicubic upsample; 8 soft maps, "
    "not semantic categories)",
    "perceptual loss: vgg19 with seeded random weights instead of ImageNet "
    "VGG19 (torchvision's vgg19-dcbb9e9d.pth is not available offline)",
]
SEED, RESAMPLES = 0, 500


# --------------------------------------------------------------------------------------------------
# Bootstrap interval of a set mean and the verdict


def test_bootstrap_mean_interval_is_seeded_and_about_two_standard_errors():
    values = np.random.default_rng(0).normal(25, 2, size=400)
    res = stats.bootstrap_mean(values, seed=1, n_resamples=4000)
    assert res["mean"] == pytest.approx(values.mean()) and res["n"] == 400
    assert res["ci_low"] < values.mean() < res["ci_high"]
    se = values.std(ddof=1) / math.sqrt(400)
    assert res["ci_high"] - res["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert stats.bootstrap_mean(values, seed=1, n_resamples=4000) == res
    assert stats.bootstrap_mean(values, seed=2, n_resamples=4000)["ci_low"] != res["ci_low"]
    with pytest.raises(ValueError, match="NaN"):
        stats.bootstrap_mean([1.0, math.nan, 2.0], seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        stats.bootstrap_mean([1.0], seed=0)


def test_paired_bootstrap_unchanged_by_the_shared_resampler():
    a, b = np.random.default_rng(3).normal(size=(2, 30))
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 30, size=(1000, 30))
    expected = np.quantile((a - b)[idx].mean(axis=1), [0.025, 0.975])
    res = stats.paired_bootstrap(a, b, seed=7, n_resamples=1000)
    assert (res["ci_low"], res["ci_high"]) == tuple(expected)


@pytest.mark.parametrize(
    "paper, n, low, high, standins, expected",
    [
        (25.0, 20, 24.0, 26.0, [], "inside"),
        (26.5, 20, 24.0, 26.0, [], "above"),
        (23.5, 20, 24.0, 26.0, [], "below"),
        (25.0, 20, 24.0, 26.0, ["VGG19: random"], "not comparable"),
        (25.0, 5, math.nan, math.nan, [], "n < 10: no interval"),
        (25.0, None, math.nan, math.nan, [], "no per-image data"),
        (25.0, 5, math.nan, math.nan, ["x"], "not comparable; n < 10: no interval"),
        (25.0, None, math.nan, math.nan, ["x"], "not comparable; no per-image data"),
    ],
)
def test_reproduction_verdict(paper, n, low, high, standins, expected):
    assert stats.reproduction_verdict(paper, n, low, high, standins) == expected


# --------------------------------------------------------------------------------------------------
# Table 1 verdicts


def _scores(n_images: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-image scores of bicubic and spsagan on B100 (paper: 25.96 / 0.6675 and 25.16 / 0.6344) and
    the set means behind them: bicubic PSNR straddles the paper's, spsagan's PSNR is well above it and
    its SSIM well below."""
    rng = np.random.default_rng(11)
    rows = []
    for method, psnr, ssim in (("bicubic", 25.96, 0.6675), ("spsagan", 27.5, 0.55)):
        for k in range(n_images):
            rows.append(
                {
                    "method": method,
                    "dataset": "B100",
                    "name": f"img{k:03d}",
                    "psnr": psnr + rng.normal(0, 0.5),
                    "ssim": ssim + rng.normal(0, 0.01),
                    "niqe": 5 + rng.normal(0, 0.3),
                    "pi": math.nan,
                }
            )
    per_image = pd.DataFrame(rows)
    per_image.loc[per_image["method"] == "bicubic", "psnr"] -= (
        per_image.loc[per_image["method"] == "bicubic", "psnr"].mean() - 25.96
    )  # centre bicubic on the paper
    results = (
        per_image.groupby(["method", "dataset"], sort=False)[["psnr", "ssim", "niqe", "pi"]]
        .agg(lambda c: c.mean(skipna=False))
        .reset_index()
    )
    return results, per_image


def _cell(verdicts: pd.DataFrame, method: str, metric: str) -> pd.Series:
    return verdicts[(verdicts["method"] == method) & (verdicts["metric"] == metric)].iloc[0]


def _verdict_table(text: str) -> list[list[str]]:
    return [t for t in _md_tables(text) if "verdict" in t[0]][0]


def test_table1_verdicts_from_per_image_scores(tmp_path):
    results, per_image = _scores(20)
    paths = table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image, seed=SEED, n_resamples=RESAMPLES)
    verdicts = table1.reproduction_verdicts(results, [], per_image, SEED, RESAMPLES)
    # bicubic is a fixed column, centred on the paper's PSNR: the protocol agrees
    assert _cell(verdicts, "Bicubic", "psnr")["kind"] == "fixed"
    assert _cell(verdicts, "Bicubic", "psnr")["verdict"] == "protocol agrees"
    # spsagan is retrained, one run: no verdict, whatever the test-image interval says
    assert _cell(verdicts, "SPSAGAN", "psnr")["kind"] == "retrained"
    assert _cell(verdicts, "SPSAGAN", "psnr")["verdict"] == "one run: no verdict"
    assert _cell(verdicts, "SPSAGAN", "psnr")["image_interval"] == "below"  # paper 25.16 below the interval
    assert _cell(verdicts, "SPSAGAN", "ssim")["image_interval"] == "above"
    assert _cell(verdicts, "Bicubic", "psnr")["image_interval"] == "inside"
    assert _cell(verdicts, "SPSAGAN", "niqe")["verdict"] == ""  # no paper NIQE
    assert _cell(verdicts, "SPSAGAN", "pi")["verdict"] == ""  # no reproduced PI
    # the interval is the seeded bootstrap of the per-image scores, exactly
    spsagan = per_image[per_image["method"] == "spsagan"]["psnr"].to_numpy()
    expected = stats.bootstrap_mean(spsagan, SEED, RESAMPLES)
    row = _cell(verdicts, "SPSAGAN", "psnr")
    assert (row["ci_low"], row["ci_high"], row["n"]) == (expected["ci_low"], expected["ci_high"], 20)

    csv = pd.read_csv(paths["csv"])
    rep = csv[(csv["source"] == "reproduced") & (csv["method"] == "SPSAGAN")].iloc[0]
    assert rep["n"] == 20 and rep["runs"] == 1 and rep["kind"] == "retrained"
    assert rep["psnr_verdict"] == "one run: no verdict" and rep["psnr_image_interval"] == "below"
    assert rep["psnr_ci_low"] == expected["ci_low"] and rep["psnr_ci_high"] == expected["ci_high"]
    for metric in ("psnr", "ssim", "niqe", "pi"):
        suffixes = ("ci_low", "ci_high", "image_interval", "run_low", "run_high", "verdict")
        assert {f"{metric}_{c}" for c in suffixes} <= set(csv.columns)
    assert csv.loc[csv["source"] == "paper", "n"].isna().all()

    text = paths["md"].read_text(encoding="utf-8")
    grid = _md_tables(text)[0]
    cell = {(r[1].split()[0], h): r[i] for r in grid[2:] if r[0] == "BSD100" for i, h in enumerate(grid[0])}
    assert cell[("PSNR", "Bicubic")].endswith("[agrees]") and cell[("PSNR", "SPSAGAN")].endswith("[1 run]")
    assert "[" not in cell[("PI", "SPSAGAN")]
    assert f"{RESAMPLES} resamples, seed {SEED}" in text and "prediction interval" in text
    table = _verdict_table(text)
    spsagan_psnr = next(r for r in table if r[2] == "SPSAGAN" and r[1].startswith("PSNR"))
    assert spsagan_psnr[9] == "one run: no verdict" and spsagan_psnr[10] == "20"
    assert spsagan_psnr[11] == f"[{expected['ci_low']:.2f}, {expected['ci_high']:.2f}]"
    assert spsagan_psnr[12] == "p below"


def test_table1_without_enough_images_gives_no_interval(tmp_path):
    results, per_image = _scores(5)
    paths = table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image, seed=SEED, n_resamples=RESAMPLES)
    csv = pd.read_csv(paths["csv"])
    rep = csv[(csv["source"] == "reproduced") & (csv["method"] == "SPSAGAN")].iloc[0]
    assert rep["n"] == 5 and math.isnan(rep["psnr_ci_low"]) and rep["psnr_image_interval"] == "n < 10: no interval"
    text = paths["md"].read_text(encoding="utf-8")
    table = _verdict_table(text)
    assert all(r[11] == "n < 10: no interval" and r[12] == "" for r in table[2:])
    assert not re.search(r"\[\d+\.\d+, \d+\.\d+\]", text)  # no interval printed anywhere


def test_table1_verdicts_with_standins_or_without_per_image(tmp_path):
    results, per_image = _scores(20)
    verdicts = table1.reproduction_verdicts(results, LONG_STANDINS, per_image, SEED, RESAMPLES)
    row = _cell(verdicts, "SPSAGAN", "psnr")
    assert row["verdict"] == "not comparable" and math.isfinite(row["ci_low"])  # the interval is still given
    assert _cell(verdicts, "Bicubic", "psnr")["verdict"] == "not comparable"
    text = table1.render_table1(results, PROFILE, [], tmp_path)["md"].read_text(encoding="utf-8")
    assert "(none here: no per-image scores were given)" in text
    plain = table1.reproduction_verdicts(results, [])
    assert (plain.loc[plain["verdict"] != "", "image_interval"] == "no per-image data").all()
    assert _cell(plain, "SPSAGAN", "psnr")["verdict"] == "one run: no verdict"


def _seeded(psnr_by_seed: list[float], n_images: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    """spsagan on BSD100 trained with one seed per entry of psnr_by_seed (each seed's set mean PSNR)."""
    rng = np.random.default_rng(5)
    rows = []
    for seed, level in enumerate(psnr_by_seed):
        noise = rng.normal(0, 0.3, n_images)
        for k in range(n_images):
            rows.append(
                {
                    "method": "spsagan",
                    "dataset": "BSD100",
                    "name": f"img{k:02d}",
                    "seed": seed,
                    "psnr": level + noise[k] - noise.mean(),
                    "ssim": 0.6,
                    "niqe": 4.0,
                    "pi": math.nan,
                }
            )
    per_image = pd.DataFrame(rows)
    results = per_image.groupby(["method", "dataset", "seed"])[["psnr", "ssim", "niqe", "pi"]].mean().reset_index()
    return results, per_image


@pytest.mark.parametrize(
    "levels, expected",
    [
        ([25.10, 25.20, 25.15], "within run spread"),  # paper 25.16 among the runs
        ([25.90, 26.00, 25.95, 26.05], "paper below run spread"),  # every run well above the paper
        ([24.30, 24.40, 24.35], "paper above run spread"),
        ([25.90, 24.40], "2 runs: no verdict"),
        ([27.0], "one run: no verdict"),
    ],
)
def test_table1_retrained_verdict_from_the_spread_over_seeds(tmp_path, levels, expected):
    results, per_image = _seeded(levels)
    verdicts = table1.reproduction_verdicts(results, [], per_image, SEED, RESAMPLES)
    row = _cell(verdicts, "SPSAGAN", "psnr")
    assert row["verdict"] == expected and row["runs"] == len(levels)
    assert row["reproduced"] == pytest.approx(np.mean(levels))  # the mean over runs
    if len(levels) >= 3:  # literal t prediction interval for one more run
        n, m, s = len(levels), np.mean(levels), np.std(levels, ddof=1)
        t = {3: 4.302652729911275, 4: 3.182446305284263}[n]
        half = t * s * math.sqrt(1 + 1 / n)
        assert (row["run_low"], row["run_high"]) == pytest.approx((m - half, m + half))
    else:
        assert math.isnan(row["run_low"])
    text = table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image, seed=SEED)["md"].read_text()
    assert expected in text


def test_table1_fixed_column_tolerance_and_declared_kinds():
    results = pd.DataFrame(
        [
            {"method": "SRGAN", "dataset": "BSD100", "psnr": 25.20, "ssim": 0.6688, "niqe": 3.0, "pi": 2.615},
            {"method": "SRResNet", "dataset": "BSD100", "psnr": 27.58, "ssim": 0.7595, "niqe": 5.0, "pi": 5.437},
        ]
    )
    verdicts = table1.reproduction_verdicts(results, [])
    assert _cell(verdicts, "SRGAN", "psnr")["verdict"] == "protocol agrees"  # |+0.04| <= 0.05 dB
    assert _cell(verdicts, "SRGAN", "pi")["verdict"] == "protocol agrees"  # |+0.05| <= 0.05 (edge)
    assert _cell(verdicts, "SRResNet", "ssim")["verdict"] == "differs by -0.0025"  # beyond 0.002
    assert table1.marker("differs by -0.0025") == "Δ>tol" and table1.marker("protocol agrees") == "agrees"
    # a declared kind wins over the name: the same SRGAN column as our retraining (one run)
    declared = table1.reproduction_verdicts(results, [], kinds={"SRGAN": "retrained"})
    assert _cell(declared, "SRGAN", "psnr")["verdict"] == "one run: no verdict"
    with pytest.raises(ValueError, match="column kind"):
        table1.reproduction_verdicts(results, [], kinds={"SRGAN": "other"})


def test_table1_per_image_must_match_the_set_means(tmp_path):
    results, per_image = _scores(12)
    shifted = per_image.assign(psnr=per_image["psnr"] + 0.01)
    with pytest.raises(ValueError, match="do not match the set mean"):
        table1.render_table1(results, PROFILE, [], tmp_path, per_image=shifted, seed=SEED)
    with pytest.raises(ValueError, match="seed"):
        table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image)
    with pytest.raises(ValueError, match="name"):
        table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image.drop(columns="name"), seed=SEED)
    assert not any(tmp_path.iterdir())
    # rounding of the per-image CSV (6 decimals) is not a mismatch
    table1.render_table1(results, PROFILE, [], tmp_path, per_image=per_image.round(6), seed=SEED, n_resamples=RESAMPLES)


def _md_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


# --------------------------------------------------------------------------------------------------
# Table 1 as HTML


class _Cells(HTMLParser):
    """Rows of <th>/<td> texts per table, the tags and attributes seen; asserts every tag is closed."""

    VOID = {"meta", "br", "hr", "img", "link"}

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self.attrs, self.stack, self.text = [], set(), [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("th", "td"):
            self.text = ""

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag
        if tag in ("th", "td"):
            self.tables[-1][-1].append(self.text)
            self.text = None

    def handle_data(self, data):
        if self.text is not None:
            self.text += data


def test_table1_html_only_when_asked_and_self_contained(tmp_path):
    results, per_image = _scores(12)
    plain = table1.render_table1(
        results, PROFILE, LONG_STANDINS, [tmp_path / "a" / f"table1.{s}" for s in ("md", "csv", "tex")]
    )
    assert set(plain) == {"md", "csv", "tex"} and not (tmp_path / "a" / "table1.html").exists()
    folder = table1.render_table1(results, PROFILE, LONG_STANDINS, tmp_path / "b")
    assert "html" not in folder and not (tmp_path / "b" / "table1.html").exists()

    out = [tmp_path / "c" / f"table1.{s}" for s in ("md", "csv", "tex", "html")]
    paths = table1.render_table1(
        results, PROFILE, LONG_STANDINS, out, per_image=per_image, seed=SEED, n_resamples=RESAMPLES
    )
    text = paths["html"].read_text(encoding="utf-8")
    parser = _Cells()
    parser.feed(text)
    assert not parser.stack  # every tag closed
    assert not {"script", "link", "img", "iframe"} & parser.tags
    assert not any(k in ("src", "href") for k, _ in parser.attrs) and "url(" not in text
    assert "<strong>paper</strong>" in text and LONG_STANDINS[0].replace("'", "&#x27;") in text
    grid, verdicts = parser.tables
    md_grid = _md_tables(paths["md"].read_text(encoding="utf-8"))[0]
    assert grid[0] == md_grid[0]  # same header as the Markdown grid
    assert len(grid) == len(md_grid) - 1  # no rule row
    assert grid[1][0] == "BSD100" and len(grid[1]) == len(grid[0]) and len(grid[2]) == len(grid[0]) - 1  # rowspan
    assert grid[1][1:] == md_grid[2][1:]  # the cells, markers included, as in the Markdown
    assert "[n.c.]" in grid[1][grid[0].index("SPSAGAN")]
    column = verdicts[0].index("verdict")
    assert all(r[column] == "not comparable" for r in verdicts[1:])


def test_output_paths_optional_suffixes(tmp_path):
    paths = output_paths([tmp_path / "t.md", tmp_path / "t.html"], "t", ("md",), optional=("html",))
    assert set(paths) == {"md", "html"}
    assert set(output_paths(tmp_path, "t", ("md",), optional=("html",))) == {"md"}
    with pytest.raises(ValueError, match="optional: html"):
        output_paths([tmp_path / "t.md", tmp_path / "t.pdf"], "t", ("md",), optional=("html",))
    with pytest.raises(ValueError, match="expected one path"):
        output_paths([tmp_path / "t.html"], "t", ("md",), optional=("html",))
    with pytest.raises(ValueError, match="expected one path"):
        output_paths([tmp_path / "t.md", tmp_path / "u.md"], "t", ("md",))


# --------------------------------------------------------------------------------------------------
# Ablation: intervals from 10 images on


def _ablation_images(n_images: int, dataset: str = "demo_test") -> pd.DataFrame:
    rng = np.random.default_rng(4)
    base = rng.normal(25, 1.0, size=n_images)
    return pd.DataFrame(
        [
            {
                "method": m,
                "dataset": dataset,
                "name": f"i{k}",
                "psnr": base[k] + 0.2 * j,
                "ssim": 0.6 + 0.01 * j + rng.normal(0, 0.001),
                "niqe": 5.0 - 0.1 * j + rng.normal(0, 0.05),
                "pi": math.nan,
            }
            for j, m in enumerate(ablation.PRESET_ORDER)
            for k in range(n_images)
        ]
    )


def _costs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": m,
                "params": 1,
                "flops": 1e9,
                "median_s": 0.1,
                "device": "cpu",
                "dtype": "float32",
                "size": "32x32",
            }
            for m in ablation.PRESET_ORDER
        ]
    )


def test_ablation_shows_no_interval_below_ten_images(tmp_path):
    paths = ablation.render_ablation(
        _ablation_images(3), _costs(), "demo", LONG_STANDINS, tmp_path, seed=SEED, n_resamples=RESAMPLES
    )
    comp = pd.read_csv(paths["csv"])
    psnr = comp[comp["metric"] == "psnr"]
    assert psnr["ci_low"].isna().all() and (psnr["note"] == "n < 10: no interval").all()
    assert psnr["mean_diff"].to_numpy() == pytest.approx([0.6, 0.4, 0.2])  # spsagan minus esrgan, +fa, +spsa
    assert (comp["n_resamples"] == RESAMPLES).all() and (comp["seed"] == SEED).all()
    text = paths["md"].read_text(encoding="utf-8")
    assert not re.search(r"\[[+-]\d", text)  # no interval printed
    assert "| ESRGAN (retrained) | psnr | +0.60 | none | 3 | 1/1 | n < 10: no interval |" in text
    assert "paired percentile bootstrap over images" in text and f"{RESAMPLES} resamples" in text
    assert f"seed {SEED}" in text and "n >= 10" in text
    assert "beyond" not in text


def test_ablation_interval_from_ten_images_and_verdict_against_the_paper(tmp_path):
    per_image = _ablation_images(10, dataset="B100")
    paths = ablation.render_ablation(per_image, _costs(), "paper", [], tmp_path, seed=SEED, n_resamples=RESAMPLES)
    comp = pd.read_csv(paths["csv"])
    psnr = comp[(comp["metric"] == "psnr") & (comp["method_b"] == "esrgan")].iloc[0]
    assert psnr["n"] == 10 and psnr["ci_low"] <= psnr["mean_diff"] <= psnr["ci_high"] and psnr["note"] != psnr["note"]
    text = paths["md"].read_text(encoding="utf-8")
    assert f"| ESRGAN (retrained) | psnr | +0.60 | [{psnr['ci_low']:+.2f}, {psnr['ci_high']:+.2f}] | 10 | 1/1 |" in text
    # spsagan on BSD100 has paper numbers (25.16 / 0.6344): a verdict section with the interval
    section = text.split("## Against the paper's Table 1", 1)[1].split("##", 1)[0]
    row = next(r for r in _md_tables(section)[0] if r[0] == "SPSAGAN" and r[2] == "psnr")
    spsagan = per_image[per_image["method"] == "spsagan"]["psnr"].to_numpy()
    expected = stats.bootstrap_mean(spsagan, SEED, RESAMPLES)
    assert row[8] == "10" and row[9] == f"[{expected['ci_low']:.2f}, {expected['ci_high']:.2f}]"
    assert row[4] == "1" and row[7] == "one run: no verdict"  # the test-image interval is no verdict


# --------------------------------------------------------------------------------------------------
# Header: reductions from the paper's setting


def test_reductions_lists_only_what_differs_from_the_paper():
    values = {
        "blocks": (2, 23),
        "features": (32, 64),
        "PSNR iterations": (1500, 1_000_000),
        "GAN iterations": (100, 400_000),
        "px HR crops (PSNR/GAN)": ((64, 96), (96, 96)),
        "batch": (16, 16),
        "learning rate": (1.0e-3, 2.0e-4),
        "precision": ("float32", "float32"),
    }
    assert reductions(values) == [
        "2 blocks (paper: 23)",
        "32 features (paper: 64)",
        "1,500 PSNR iterations (paper: 1,000,000)",
        "100 GAN iterations (paper: 400,000)",
        "64/96 px HR crops (PSNR/GAN) (paper: 96/96)",
        "0.001 learning rate (paper: 0.0002)",
    ]
    assert reductions({"blocks": (23, 23), "crops": ([96, 96], (96, 96))}) == []
    with pytest.raises(ValueError, match="blocks"):
        reductions({"blocks": 2})
    header = provenance("demo", ["VGG19: random"], ["training precision: float32", *reductions(values)])
    assert "Stand-ins" in header and "Settings: training precision: float32; 2 blocks (paper: 23);" in header


# --------------------------------------------------------------------------------------------------
# Figures: width and per-stage training curves


def _width(path) -> int:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size[0]


def test_figures_stay_narrow_with_a_long_standins_list(tmp_path):
    rng = np.random.default_rng(0)
    images = {m: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for m in ("HR", "bicubic", *ablation.PRESET_ORDER)}
    crops = figures.crop_grid(
        images,
        [(0, 0, 32), (40, 40, 32)],
        tmp_path / "crops.png",
        "Ablation crops, demo_test/astronaut",
        "demo",
        LONG_STANDINS,
    )
    h, w = 6, 8
    betas = [rng.dirichlet(np.ones(h * w)).reshape(h, w) for _ in range(3)]
    seg = rng.dirichlet(np.ones(8), size=(4 * h, 4 * w)).transpose(2, 0, 1)
    attn = figures.attention_figure(
        rng.integers(0, 256, (4 * h, 4 * w, 3), dtype=np.uint8),
        seg,
        *betas,
        (2, 3),
        tmp_path / "attn.png",
        "SPSA attention rows, demo_test/astronaut",
        "demo",
        LONG_STANDINS,
        class_names=tuple(f"cluster {k}" for k in range(8)),
    )
    timings = pd.DataFrame(
        [
            {"network": n, "median_s": t, "device": "cpu", "dtype": "float32"}
            for n, t in (("RRDB", 0.02), ("RRSB", 0.016))
        ]
    )
    time = figures.inference_time_chart(
        timings, tmp_path / "time.png", "Inference time per image: RRDB vs RRSB", "demo", LONG_STANDINS
    )
    for path in (crops, attn, time):
        assert 600 < _width(path) < 1800, path.name


@pytest.fixture
def live_runs(tmp_path, monkeypatch):
    """dvclive folders as the training loop writes them: 1,500 PSNR and 100 GAN iterations."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(tmp_path)
    from dvclive import Live

    runs = {}
    for label, iters, every in (
        ("pretrain_psnr/rrdb", 1500, 50),
        ("pretrain_psnr/rrsb", 1500, 50),
        ("train_gan/esrgan", 100, 10),
        ("train_gan/spsagan", 100, 10),
    ):
        gan = label.startswith("train_gan")
        with Live(str(tmp_path / label), save_dvc_exp=False, dvcyaml=None) as live:
            live.log_metric("val/psnr_bicubic", 23.4, plot=False)  # summary only, as RunLog does
            for step in range(every, iters + 1, every):
                live.step = step
                live.log_metric("train/l1", 0.1 / step)
                live.log_metric("lr/g", 1e-3 * 0.5 ** (step // 1000))
                if gan:
                    for name in ("perceptual", "gan_g", "total_g", "d", "d_real_logit", "d_fake_logit"):
                        live.log_metric(f"train/{name}", 1.0 + step / 100)
                    live.log_metric("lr/d", 1e-4)
                if step % (5 * every) == 0:
                    live.log_metric("val/psnr", 22 + step / iters)
        runs[label] = tmp_path / label
    return runs


def test_training_panels_have_readable_names():
    panels = figures.training_panels(
        [
            "lr/d",
            "train/l1",
            "val/psnr",
            "train/d_fake_logit",
            "train/d_real_logit",
            "lr/g",
            "train/custom",
            "val/psnr_bicubic",
        ]
    )
    assert [p for p, _ in panels] == [
        "L1 (pixel)",
        "discriminator mean logit",
        "validation PSNR (dB)",
        "learning rate",
        "train/custom",
    ]
    assert dict(panels)["learning rate"] == [("lr/g", "generator"), ("lr/d", "discriminator")]


def test_training_curves_one_figure_per_stage(live_runs, tmp_path):
    paths = figures.training_curves_by_stage(live_runs, tmp_path / "figs", "demo", LONG_STANDINS)
    assert paths == {
        "psnr": tmp_path / "figs" / "training_curves_psnr.png",
        "gan": tmp_path / "figs" / "training_curves_gan.png",
    }
    assert all(600 < _width(p) < 1800 for p in paths.values())
    listed = [tmp_path / "x" / "training_curves_psnr.png", tmp_path / "x" / "training_curves_gan.png"]
    psnr_runs = {k: v for k, v in live_runs.items() if k.startswith("pretrain_psnr/")}
    assert figures.training_curves_by_stage(psnr_runs, listed[:1], "demo", []) == {"psnr": listed[0]}
    assert listed[0].is_file() and not listed[1].exists()
    with pytest.raises(ValueError, match="training_curves_<key>.png"):
        figures.training_curves_by_stage(live_runs, listed[:1], "demo", [])  # no path for the GAN stage


def _stage_axes(live_runs, stage: str) -> dict:
    dirs = {k.split("/")[1]: v for k, v in live_runs.items() if k.startswith(stage)}
    data = pd.concat([figures.read_live_metrics(d).assign(run=r) for r, d in dirs.items()], ignore_index=True)
    fig = figures.training_stage_figure(data, stage, "demo", [], bicubic={r: 23.4 for r in dirs})
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}


def test_training_stage_figure_panels_axes_and_bicubic_reference(live_runs):
    psnr = _stage_axes(live_runs, "pretrain_psnr")
    gan = _stage_axes(live_runs, "train_gan")
    assert list(psnr) == ["L1 (pixel)", "validation PSNR (dB)", "learning rate"]
    assert list(gan) == [
        "L1 (pixel)",
        "perceptual",
        "GAN (generator)",
        "total (generator)",
        "discriminator",
        "discriminator mean logit",
        "validation PSNR (dB)",
        "learning rate",
    ]
    # each stage on its own iteration axis
    assert max(line.get_xdata().max() for line in psnr["L1 (pixel)"].lines) == 1500
    assert max(line.get_xdata().max() for line in gan["L1 (pixel)"].lines) == 100
    assert psnr["learning rate"].get_yscale() == "log" and gan["L1 (pixel)"].get_yscale() == "linear"
    dashed = [line for line in psnr["validation PSNR (dB)"].lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {23.4} and "bicubic" in dashed[0].get_label()


def test_bicubic_reference_is_read_from_the_dvclive_summary(live_runs):
    dirs = {"rrdb": live_runs["pretrain_psnr/rrdb"]}
    data = figures.read_live_metrics(dirs["rrdb"]).assign(run="rrdb")
    assert "val/psnr_bicubic" not in set(data["metric"])  # not a step metric
    assert figures._bicubic_references(data, dirs) == {"rrdb": 23.4}
