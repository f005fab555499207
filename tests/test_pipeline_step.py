"""main_guard: how a step ends on purpose (clear error, preemption exit code) or on a bug."""

import pytest

from spsagan.config import PretrainPSNRConfig
from spsagan.errors import Preempted
from spsagan.pipeline.params import load_config
from spsagan.pipeline.step import main_guard


def raising(exc):
    def main():
        raise exc

    return main


def test_preemption_exits_with_its_code_for_a_retry():
    with pytest.raises(SystemExit) as stop:
        main_guard(raising(Preempted("SIGTERM", 7, "results/ckpt/x")))
    assert stop.value.code == Preempted.exit_code == 75


def test_expected_error_becomes_one_line_and_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.delenv("SPSAGAN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        main_guard(raising(FileNotFoundError("results/x does not exist")))
    assert stop.value.code == "error (FileNotFoundError): results/x does not exist"
    with pytest.raises(KeyError):
        main_guard(raising(KeyError("bug")))


def test_lr_milestones_from_lr_step():
    paper = load_config("pretrain_psnr", "paper")
    assert isinstance(paper, PretrainPSNRConfig)
    assert paper.lr_milestones() == [200_000, 400_000, 600_000, 800_000]
    assert load_config("train_gan", "demo").lr_milestones() == []  # fewer iterations than lr_step (100k)
