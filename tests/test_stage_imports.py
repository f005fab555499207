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
