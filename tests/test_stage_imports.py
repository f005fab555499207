"""Each stage's code dependencies are what its step really imports: no NIQE in training, no figures in prune.

The pipeline derives a stage's code dependencies from `spsagan.pipeline.imports.closure`, so a module
in a closure it does not need makes that stage (and everything after it) rerun when the module is
edited. These tests pin the closures that used to be too wide, and check at run time that the lazy
metric exports keep their promise.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from spsagan.pipeline.imports import closure

ROOT = Path(__file__).resolve().parents[1]
NIQE = "spsagan/metrics/no_reference.py"


def files(step: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in closure(ROOT / "steps" / f"{step}.py", ROOT / "spsagan")}


@pytest.mark.parametrize("step", ["pretrain_psnr", "train_gan"])
def test_training_does_not_depend_on_niqe(step):
    metric_files = {p for p in files(step) if p.startswith("spsagan/metrics/")}
    assert metric_files == {"spsagan/metrics/__init__.py", "spsagan/metrics/psnr_ssim.py", "spsagan/metrics/scale.py"}


def test_evaluate_depends_on_niqe_and_psnr():
    deps = files("evaluate")
    assert {NIQE, "spsagan/metrics/psnr_ssim.py", "spsagan/metrics/scale.py"} <= deps


def test_prune_does_not_depend_on_figures_but_render_reports_does():
    assert "spsagan/reports/figures.py" not in files("prune")
    assert "spsagan/reports/figures.py" in files("render_reports")


def test_importing_psnr_does_not_import_niqe_and_niqe_stays_a_function():
    code = (
        "import sys\n"
        "from spsagan.metrics.psnr_ssim import psnr\n"
        "assert 'spsagan.metrics.no_reference' not in sys.modules, 'psnr pulled in NIQE'\n"
        "import spsagan.metrics.no_reference\n"
        "from spsagan.metrics import niqe, ssim\n"
        "assert callable(niqe) and niqe.__name__ == 'niqe' and callable(ssim)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_render_reports_draws_fig5_from_prune_data(tmp_path):
    """prune writes ds.csv and summary.json only; render_reports' Fig. 5 reads them back unchanged."""
    import importlib.util
    import json

    import numpy as np
    import pandas as pd

    from spsagan.pruning import decide_mask, ds_from_rows, ds_rows

    rng = np.random.default_rng(0)
    ds = rng.uniform(0.05, 0.6, (2, 3, 3))
    upper, lower = np.triu_indices(3, k=1)
    ds[:, upper, lower] = np.nan  # i >= l: undefined, as measure_dissimilarity leaves it
    keep = decide_mask(ds, scope="per_block")
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    pd.DataFrame(ds_rows(ds)).to_csv(analysis / "ds.csv", index=False, float_format="%.6f")
    summary = {"scope": "per_block", "dense_blocks": 2, "keep": keep, "train_sets": ["DIV2K"]}
    (analysis / "summary.json").write_text(json.dumps(summary))
    rows = pd.read_csv(analysis / "ds.csv").to_dict("records")
    np.testing.assert_allclose(ds_from_rows(rows, 2), ds, atol=1e-6)

    spec = importlib.util.spec_from_file_location("render_reports_step", ROOT / "steps" / "render_reports.py")
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    out = tmp_path / "figures" / "fig5_pruning.png"
    out.parent.mkdir()
    step.pruning_panel(analysis, tmp_path / "make_lr", out, "demo")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
