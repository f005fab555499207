"""The paper-scale rehearsal (`spsagan.pipeline.rehearsal`): what it changes, how it measures, and (marked
`rehearsal`, excluded from the default run) the reduced rehearsal end to end.

    pytest -m rehearsal tests/test_rehearsal.py      # or `make rehearsal-smoke` (CI)
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spsagan.data.demo import DEMO_IMAGES, demo_image, parse_demo_name, write_demo_dataset
from spsagan.image import imresize
from spsagan.pipeline.params import check_configs, load_config, load_yaml, validate
from spsagan.pipeline.registry import load_registry
from spsagan.pipeline.rehearsal.__main__ import main as rehearsal_main
from spsagan.pipeline.rehearsal.memory import tree_bytes
from spsagan.pipeline.rehearsal.plan import FULL, FULL_GPU, REDUCED, make_rehearsal, plan_for
from spsagan.pipeline.rehearsal.project import Row, _count, printed_summary, project
from spsagan.pipeline.rehearsal.report import render
from spsagan.pipeline.rehearsal.resources import merge, suggest, write_suggestion
from spsagan.pipeline.rehearsal.runner import StepResult, link_project, read_results, write_params
from spsagan.segmentation.classes import RANDOM_WEIGHTS_NOTE, STANDIN_NOTE, standin_note
from spsagan.segmentation.figure import is_semantic_label
from spsagan.segmentation.run import build_segmenter, prior_from_lq
from spsagan.training import SubImageSet, TrainData, ValImage, train_psnr
from spsagan.upscale import parse_segmenter_label

REPO = Path(__file__).resolve().parent.parent

# The keys a rehearsal may change in each stage's paper section; everything else stays the paper's.
ALLOWED = {
    "download_data": {"source", "demo_split", "local"},
    "make_lr": set(),
    "make_seg_maps": {"weights", "weights_sha256", "min_categories", "min_fraction"},
    "pretrain_psnr": {"iters", "batch_size"},
    "prune": {"batches", "batch_size"},
    "train_gan": {"iters", "batch_size", "perceptual_weights"},
    "evaluate": {"timing_images", "timing_warmup", "timing_repeats"},
    "study_report": set(),
    "render_reports": set(),
}


@pytest.mark.parametrize("plan", [FULL, FULL_GPU, REDUCED], ids=["full", "full-gpu", "reduced"])
def test_only_counts_data_and_missing_files_differ_from_the_paper(plan):
    reh = make_rehearsal(plan)
    for stage, cfg in reh.configs.items():
        paper, here = dataclasses.asdict(reh.paper[stage]), dataclasses.asdict(cfg)
        changed = {k for k in paper if paper[k] != here[k]}
        assert changed <= ALLOWED[stage], (stage, changed - ALLOWED[stage])
    psnr, gan = reh.configs["pretrain_psnr"], reh.configs["train_gan"]
    assert (psnr.num_block, psnr.num_feat, psnr.num_grow_ch, psnr.crop_size) == (23, 64, 32, 96)
    assert (gan.perceptual_layer, gan.d_num_feat, gan.crop_size) == ("conv5_4", 64, 96)
    lr = reh.configs["make_lr"]
    assert (lr.subimage_size, lr.subimage_step) == (480, 240)
    assert reh.configs["make_seg_maps"].segmenter == "outdoor_scene_seg"
    assert psnr.iters == gan.iters == 1 + plan.timed
    assert psnr.batch_size == (plan.batch_size or 16)


def test_the_plan_follows_the_device():
    assert plan_for(reduced=False, cuda=False) is FULL and plan_for(reduced=False, cuda=True) is FULL_GPU
    assert plan_for(reduced=True, cuda=True) is REDUCED
    assert FULL_GPU.photos["Urban100"] == ["hubble_deep_field"]  # SPSA over a 1000-pixel test image


def test_every_paper_dataset_is_played_by_a_bundled_photo():
    for plan in (FULL, FULL_GPU, REDUCED):
        reh = make_rehearsal(plan)
        split = reh.configs["download_data"].demo_split
        assert set(split) == set(reh.paper["download_data"].datasets)
        for names in split.values():
            for name in names:
                assert parse_demo_name(name)[0] in DEMO_IMAGES
    assert FULL.photos["DIV2K"] == ["retina"]  # the largest photo plays the 2K training set


def test_stand_ins_are_named_and_your_files_are_used(tmp_path, monkeypatch):
    reh = make_rehearsal(FULL)
    text = "\n".join(reh.stand_ins)
    assert "vgg19-random-seed0" in text and "outdoor_scene_seg(random weights seed=0" in text
    assert "scikit-image" in text and reh.configs["make_seg_maps"].weights == "random"

    # With the paper column's files present (paths relative to the repository), they are used.
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    vgg, seg = tmp_path / "vgg19.pth", tmp_path / "seg.pth"
    vgg.write_bytes(b"x")
    seg.write_bytes(b"x")
    params["train_gan"]["paper"]["perceptual_weights"] = str(vgg)
    params["make_seg_maps"]["paper"]["weights"] = str(seg)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    reh = make_rehearsal(FULL, tmp_path / "params.yaml", REPO / "workflow/schemas/params.schema.yaml")
    assert reh.configs["train_gan"].perceptual_weights == str(vgg)
    assert reh.configs["make_seg_maps"].weights == str(seg)
    assert not any("perceptual" in s or "segmentation prior" in s for s in reh.stand_ins)


def job_names() -> list[str]:
    """The paper profile's jobs (its seeds: the demo's may differ)."""
    params = {**yaml.safe_load((REPO / "params.yaml").read_text()), "profile": "paper"}
    registry = load_registry(REPO / "workflow/stages.yaml", params=params)
    return [f"{s.name}/{i}" if i else s.name for s, i in registry.jobs()]


def test_the_rehearsal_root_is_a_snakemake_directory_of_its_own(tmp_path):
    root = tmp_path / "root"
    link_project(REPO, root)
    for name in ("steps", "workflow", "spsagan"):
        assert (root / name).is_symlink() and (root / name).resolve() == (REPO / name).resolve()
    for name in ("results", "reports", "metrics", ".dvc", "dvc.yaml", ".git", "params.yaml"):
        assert not (root / name).is_symlink(), name  # what a run writes, and DVC, stay out
    reh = make_rehearsal(REDUCED)
    params = yaml.safe_load(write_params(REPO, root, {s: reh.section(s) for s in reh.configs}).read_text())
    assert params["profile"] == "paper" and params["pretrain_psnr"]["paper"]["iters"] == 2
    assert (
        params["pretrain_psnr"]["demo"] == yaml.safe_load((REPO / "params.yaml").read_text())["pretrain_psnr"]["demo"]
    )
    validate(params, load_yaml(REPO / "workflow/schemas/params.schema.yaml")["stages"])  # as the Snakefile does
    check_configs(params)


def test_job_records_are_read_in_the_order_the_jobs_started(tmp_path):
    (tmp_path / "records").mkdir()
    for job, started in (("prune", 3.0), ("make_lr", 1.0), ("train_gan/spsa", 5.0)):
        record = {"job": job, "started": started, "exit": 0, "seconds": 2.0, "peak_bytes": 10, "processes": 1}
        record["args"] = ["--out", "results/prune/analysis", "--preset", "+spsa"]
        (tmp_path / "records" / f"{job.replace('/', '-')}.json").write_text(json.dumps(record))
    (tmp_path / "records" / "prune.probe.json").write_text("{}")  # the step's own facts: not a job
    results = read_results(tmp_path)
    assert [r.job for r in results] == ["make_lr", "prune", "train_gan/spsa"]
    assert results[2].instance == "spsa" and results[2].log == tmp_path / "logs/train_gan/spsa.log"
    assert results[1].flag("--out") == str(tmp_path / "results/prune/analysis")  # under the rehearsal's root
    assert results[1].flag("--preset") == "+spsa"


def test_printed_summaries_and_slurm_suggestions():
    line = "\rbar 100%pretrain_psnr: rrdb: {'timing': {'s_per_iteration': 0.5}, 'metrics': {'val/psnr': nan}}"
    assert printed_summary(f"noise\n{line}\n", "pretrain_psnr: rrdb: ") == {
        "timing": {"s_per_iteration": 0.5},
        "metrics": {"val/psnr": None},
    }
    assert _count(400_000, 5000) == 80 and _count(12, 5) == 3
    row = Row("train_gan/spsa", "train_gan", "", "", 1.0, 10 * 3600, 3 * 2**30, None, True)
    assert row.slurm() == ("900", 5000)
    row.projected_s = 100 * 3600
    assert row.slurm()[0] == "2880 x 4 attempts (each resumes)"
    assert Row("evaluate", "evaluate", "", "", 1.0, 100 * 3600, 0, None, True).slurm()[0].endswith("does not resume)")


def test_demo_photos_can_be_cropped(tmp_path):
    crop = demo_image("chelsea@96x128")
    full = demo_image("chelsea")
    top, left = (full.shape[0] - 96) // 2, (full.shape[1] - 128) // 2
    assert np.array_equal(crop, full[top : top + 96, left : left + 128])
    folder = write_demo_dataset(tmp_path, "Set5", ["chelsea@96x128"])
    assert [p.name for p in (folder / "HR").iterdir()] == ["chelsea_96x128.png"]
    with pytest.raises(ValueError, match="no 4000x4000 crop"):
        demo_image("chelsea@4000x4000")


def test_outdoor_scene_seg_with_random_weights_is_a_labelled_stand_in():
    seg = build_segmenter("outdoor_scene_seg", weights="random", seed=3)
    assert seg.label == "outdoor_scene_seg(random weights seed=3, rehearsal stand-in)"
    assert seg.semantic is False and seg.meta()["weights_sha256"] is None
    assert not is_semantic_label(seg.label) and standin_note(seg.label) == RANDOM_WEIGHTS_NOTE
    assert standin_note("standin(colour-texture-kmeans-v1 seed=0)") == STANDIN_NOTE
    assert parse_segmenter_label(seg.label) == ("outdoor_scene_seg", {"seed": 3, "random_weights": True})
    prior = prior_from_lq(seg, np.full((4, 6, 3), 128, np.uint8))
    assert prior.shape == (8, 16, 24) and np.allclose(prior.sum(0), 1, atol=1e-4)
    again = build_segmenter("outdoor_scene_seg", weights="random", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(seg.model.state_dict().values(), again.model.state_dict().values()))


def test_training_reports_its_time_without_the_warm_up(tmp_path):
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    val_gt = gts[0][:32, :32]
    data = TrainData(
        [SubImageSet.from_arrays("toy", gts, [imresize(g, 0.25) for g in gts])],
        [1.0],
        [ValImage("v", imresize(val_gt, 0.25), val_gt)],
    )
    cfg = replace(
        load_config("pretrain_psnr", "demo"),
        num_feat=8,
        num_block=1,
        num_grow_ch=4,
        iters=4,
        batch_size=2,
        crop_size=32,
        val_every=2,
        ckpt_every=3,
        log_every=1,
    )
    summary = train_psnr(
        cfg, "esrgan", data, tmp_path / "m" / "model.pt", tmp_path / "ckpt", None, device="cpu", progress=False
    )
    timing = summary["timing"]
    assert timing["later_iterations"] == 3 and timing["validations"] == 2 and timing["checkpoints"] == 2
    assert timing["s_per_iteration"] == pytest.approx(timing["iterations_s"] / 3, abs=1e-3)
    parts = sum(timing[k] for k in ("first_iteration_s", "iterations_s", "validation_s", "checkpoint_s"))
    assert 0 < parts <= summary["seconds"] + 1e-3


def test_a_failed_job_is_reported_with_its_log(tmp_path):
    log = tmp_path / "logs" / "make_lr.log"
    log.parent.mkdir()
    log.write_text("error (ConfigError): ...\n")
    ok = StepResult("download_data", "download_data", None, 0, 5.0, 2**28, None, None, tmp_path / "x.log", [])
    failed = StepResult("make_lr", "make_lr", None, 1, 2.0, 2**27, None, None, log, [])
    reh = make_rehearsal(REDUCED)
    rows = project(reh, [ok, failed], tmp_path, {"make_seg_maps"})
    text = render(reh, rows, "cpu", 7.0, failed="make_lr")
    assert "**FAILED at make_lr**" in text and f"exit 1: see {log}" in text
    assert "| make_lr | failed |" in text and "| download_data |" in text


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_memory_of_a_process_tree_is_measured():
    code = "import time; x = b'1' * 200_000_000; time.sleep(3)"
    proc = subprocess.Popen(["bash", "-c", f'{sys.executable} -c "{code}"; true'])
    try:
        peak = 0
        for _ in range(25):
            peak = max(peak, tree_bytes(proc.pid))
            if peak > 150 * 2**20:
                break
            time.sleep(0.2)
        assert peak > 150 * 2**20  # the grandchild's 200 MB, seen through bash
    finally:
        proc.wait()


@pytest.mark.slow
@pytest.mark.rehearsal
def test_reduced_rehearsal_runs_every_stage_at_paper_size(tmp_path):
    """The paper profile's code path end to end: 23-block networks, 480-pixel sub-images, VGG19 to
    conv5_4, a width-64 discriminator, OutdoorSceneSeg, exact SPSA (crops, batch 2, 2 iterations)."""
    out = tmp_path / "rehearsal.md"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # One thread per step: the smoke test checks the code path, and shared CI runners make 2+ threads erratic.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "spsagan.pipeline.rehearsal",
            "--reduced",
            "--cores",
            "1",
            "--root",
            str(tmp_path / "root"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = out.read_text()
    for job in job_names():
        row = next(line for line in report.splitlines() if line.startswith(f"| {job} |"))
        assert "failed" not in row and "n/a | n/a | n/a" not in row, row
    for stand_in in (
        "vgg19-random-seed0",
        "outdoor_scene_seg(random weights seed=0, rehearsal stand-in)",
        "scikit-image's bundled photos",
        "DIV2K <- retina@480x480",
    ):
        assert stand_in in report
    assert "GPU-hours" in report and f"All {len(job_names())} jobs ran." in report
    table1 = (tmp_path / "root" / "reports" / "table1.md").read_text()
    assert "random weights" in table1  # the pipeline's own reports name the stand-in too


def test_suggested_resources_merge_into_the_slurm_profile(tmp_path, capsys):
    profile = tmp_path / "profile.yaml"
    profile.write_text((REPO / "workflow/profiles/slurm/profile.yaml").read_text())
    before = yaml.safe_load(profile.read_text())
    hour, gib = 3600, 2**30
    rows = [
        Row("download_data", "download_data", "", "", 1.0, 2 * hour, gib, None, False),
        Row("make_seg_maps", "make_seg_maps", "", "", 1.0, 1 * hour, 2 * gib, None, True),
        Row("train_gan/esrgan", "train_gan", "", "", 1.0, 100 * hour, 3 * gib, None, True),
        Row("train_gan/spsa", "train_gan", "", "", 1.0, 10 * hour, 5 * gib, None, True),
        Row("evaluate", "evaluate", "", "", 1.0, 300 * hour, gib, None, True),
    ]
    suggestion, warnings = suggest(rows, skip={"download_data"})
    assert "download_data" not in suggestion  # a local rule: SLURM never runs it
    assert suggestion["train_gan"] == {"runtime": 2880, "mem_mb": 8000}  # resumes: one attempt's walltime
    assert suggestion["evaluate"]["runtime"] == 27000 and len(warnings) == 1  # does not resume: all of it
    assert "evaluate" in warnings[0] and "does not resume" in warnings[0]
    write_suggestion(tmp_path / "suggested.yaml", suggestion)

    with pytest.raises(SystemExit) as done:
        rehearsal_main(["--apply-resources", str(tmp_path / "suggested.yaml"), "--slurm-profile", str(profile)])
    assert done.value.code == 0 and "evaluate.runtime: 600 -> 27000" in capsys.readouterr().out
    after = yaml.safe_load(profile.read_text())
    sets, old = after["set-resources"], before["set-resources"]
    for stage in old:  # the partition, CPUs per GPU and signal survive everywhere
        for key in ("slurm_partition", "cpus_per_gpu", "slurm_extra"):
            assert sets[stage].get(key) == old[stage].get(key), (stage, key)
    assert sets["train_gan"]["slurm_extra"] == "'--signal=USR1@300'"
    assert (sets["make_seg_maps"]["runtime"], sets["evaluate"]["runtime"]) == (90, 27000)  # no longer one entry
    assert sets["pretrain_psnr"] == old["pretrain_psnr"]  # not measured: left alone
    assert {k: v for k, v in after.items() if k != "set-resources"} == {
        k: v for k, v in before.items() if k != "set-resources"
    }
    assert "# SIGUSR1 to the job's processes five minutes before the walltime" in profile.read_text()
    assert merge(profile, suggestion) == []  # applied twice: nothing to change


def test_the_report_says_how_to_merge_its_resources():
    row = Row("evaluate", "evaluate", "", "", 1.0, 300 * 3600, 2**30, None, True)
    text = render(make_rehearsal(REDUCED), [row], "cpu", 7.0, None, {"download_data"})
    assert "--apply-resources" in text and "Do not paste this block" in text
    assert "evaluate: {runtime: 27000, mem_mb: 2000}" in text and "**Warning**: evaluate" in text
