"""The opt-in compiled fast path (`compile: true`): same training as eager within float tolerance (CPU).

TorchInductor generates C++ on the CPU, so the comparison needs a C++ compiler and is skipped
without one. The first compile of a network takes about a minute on a busy 2-core machine
(TorchInductor caches it on disk for later runs).
"""

from __future__ import annotations

from dataclasses import replace

import ddp_trainer as trainer  # tests/ is on sys.path
import pytest
import torch

from spsagan.errors import ConfigError
from spsagan.runtime import compiler_missing

torch.set_num_threads(1)

CPU = torch.device("cpu")
TOLERANCE = 1e-4  # relative difference of all weights after a few Adam steps (float reordering only)
PSNR = replace(trainer.PSNR, iters=4, val_every=4, ckpt_every=4, log_every=2)


def relative_difference(a: dict, b: dict) -> float:
    num = sum(float((a[k].double() - b[k].double()).norm() ** 2) for k in a)
    den = sum(float(a[k].double().norm() ** 2) for k in a)
    return (num / den) ** 0.5


def model_weights(path):
    return torch.load(path, weights_only=True)["params_g"]


def test_compile_without_a_compiler_is_one_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ConfigError) as info:
        trainer.run("psnr", tmp_path, replace(PSNR, compile=True))
    assert str(info.value) == (
        "pretrain_psnr.compile is true, but no C++ compiler on PATH (c++, g++, clang++); "
        "set pretrain_psnr.compile to false"
    )
    assert not (tmp_path / "psnr" / "model.pt").exists()


@pytest.mark.slow  # compiles the generator's forward and backward: about a minute the first time
@pytest.mark.skipif(compiler_missing(CPU) is not None, reason=f"torch.compile on CPU: {compiler_missing(CPU)}")
def test_compiled_pretraining_trains_the_eager_weights(tmp_path):
    from torch._dynamo.utils import counters

    trainer.run("psnr", tmp_path / "eager", PSNR)
    graphs = counters["stats"]["unique_graphs"]
    compiled = trainer.run("psnr", tmp_path / "compiled", replace(PSNR, compile=True))
    assert counters["stats"]["unique_graphs"] > graphs  # it did compile
    diff = relative_difference(
        model_weights(tmp_path / "eager" / "psnr" / "model.pt"),
        model_weights(tmp_path / "compiled" / "psnr" / "model.pt"),
    )
    print(f"pretrain_psnr, compiled vs eager after {PSNR.iters} iterations: relative difference {diff:.2e}")
    assert diff < TOLERANCE
    assert compiled["iterations_run"] == PSNR.iters and "val/psnr" in compiled["metrics"]


def test_tf32_switches_both_float32_paths_and_restores_them():
    from spsagan.runtime import tf32

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for enabled in (False, True):
        with tf32(enabled):
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (enabled, enabled)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
