"""Bad inputs to the data steps fail cleanly: exit 1, one message naming the file or key, nothing half-written.

Each case builds small synthetic inputs in its own temporary folder, runs the real
`steps/<stage>.py` as a subprocess (cwd = the repository root, as Snakemake runs it) and then checks
(a) the exit status, (b) that stderr holds one `error ...` message, no traceback, naming the culprit,
(c) that the stage's declared output folder does not exist and no `.<name>.*.tmp` folder is left
beside it (plus any case-specific leftovers, e.g. no map in the --work folder).

Every step is a fresh Python that imports torch (about 2 s), so the cases are started together in a
module fixture and each test only checks its own result.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ERROR_LINE = re.compile(r"^error(?: \((\w+)\))?: ", re.MULTILINE)


@dataclass
class Case:
    """One bad-input run of a step and what it must (not) leave behind."""

    step: str
    args: list[str]
    out: Path  # the step's declared output folder: must not exist afterwards
    exception: str | None  # the name in `error (<Name>): ...`; None: params errors, any `error...` line
    mentions: list[str]  # substrings the message must contain (the file or key, what to do)
    no_files_under: list[Path] = field(default_factory=list)  # folders that must hold no file afterwards
    absent: list[Path] = field(default_factory=list)  # paths that must not exist afterwards
    once: list[str] = field(default_factory=list)  # substrings that must occur exactly once in stderr
    not_mentioned: list[str] = field(default_factory=list)  # substrings that must not occur


# --------------------------------------------------------------------------------------------------
# Synthetic inputs


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_pngs(folder: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, (h, w)) in enumerate(sizes.items()):
        (folder / f"{name}.png").write_bytes(png_bytes(h, w, seed=k))
    return folder


def benchmark_tar(path: Path, truncate: bool) -> Path:
    """A tar laid out like EDSR's benchmark.tar (benchmark/Set5/HR/*.png), optionally cut in half.

    It is not the real file, so its md5 differs from the registry's either way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for k in range(5):
            data = png_bytes(16, 16, seed=k)
            info = tarfile.TarInfo(f"benchmark/Set5/HR/img_{k:03d}.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def truncated_zip(path: Path) -> Path:
    """A zip of OST300-like PNGs with its second half (central directory included) cut off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for k in range(4):
            zf.writestr(f"OutdoorSceneTest300/OST_{k + 1:03d}.png", png_bytes(16, 16, seed=k))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def download_params(tmp: Path, datasets: list[str], *, mirror: str = "", local: dict | None = None) -> str:
    return json.dumps(
        {
            "source": "download",
            "datasets": datasets,
            "demo_split": {},
            "downloads_dir": str(tmp / "downloads"),
            "mirror": mirror,
            "local": local or {},
        }
    )


def make_lr_params(train_sets: list[str], test_sets: list[str], **override) -> str:
    params = {
        "scale": 4,
        "train_sets": train_sets,
        "test_sets": test_sets,
        "subimage_size": 96,
        "subimage_step": 48,
        "min_size": 96,
    }
    return json.dumps({**params, **override})


def seg_params(weights: str, **override) -> str:
    params = {
        "segmenter": "outdoor_scene_seg",
        "weights": weights,
        "weights_sha256": "",
        "sets": ["demo_test"],
        "batch_size": 1,
        "seed": 0,
        "select_set": "demo_test",
        "min_categories": 3,
        "min_fraction": 0.05,
        "figures_per_set": 3,
    }
    return json.dumps({**params, **override})


# --------------------------------------------------------------------------------------------------
# Cases: each builds its inputs under `tmp` and returns what to run and expect


def download(tmp: Path, params: str, exception: str | None, mentions: list[str], **extra) -> Case:
    out = tmp / "results" / "download_data"
    return Case("download_data", ["--params", params, "--out", str(out)], out, exception, mentions, **extra)


def case_download_truncated_local_archive(tmp: Path) -> Case:
    bad = benchmark_tar(tmp / "mine" / "benchmark.tar", truncate=True)
    return download(
        tmp,
        download_params(tmp, ["Set5"], local={"Set5": str(bad)}),
        "ChecksumMismatch",
        [str(bad), "local copy of benchmark.tar", "md5 mismatch", "4ace41d33c2384b97e6b320cd0afd6ba"],
        absent=[tmp / "downloads" / "benchmark.tar"],
    )


def case_download_mirror_with_wrong_file(tmp: Path) -> Case:
    bad = benchmark_tar(tmp / "mirror" / "benchmark.tar", truncate=False)
    return download(
        tmp,
        download_params(tmp, ["Set5", "Set14"], mirror=str(tmp / "mirror")),
        "ChecksumMismatch",
        [str(bad), "mirror copy", "md5 mismatch", "4ace41d33c2384b97e6b320cd0afd6ba"],
        absent=[tmp / "downloads" / "benchmark.tar", tmp / "downloads" / "benchmark.tar.part"],
    )


def case_download_truncated_cached_archive(tmp: Path) -> Case:
    # A cached archive that fails verification is deleted (so the next run downloads it afresh).
    bad = benchmark_tar(tmp / "downloads" / "benchmark.tar", truncate=True)
    return download(
        tmp,
        download_params(tmp, ["Set5"]),
        "ChecksumMismatch",
        [str(bad), "md5 mismatch", "deleted", "run again"],
        absent=[bad],
    )


def case_download_truncated_archive_without_checksum(tmp: Path) -> Case:
    # OST300 has no published checksum: the truncation must be caught by the extraction itself.
    bad = truncated_zip(tmp / "mine" / "OutdoorSceneTest300.zip")
    return download(
        tmp,
        download_params(tmp, ["OST300"], local={"OST300": str(bad)}),
        "ArchiveError",
        [str(bad), "truncated", "download it again"],
    )


def case_download_ost_not_supplied(tmp: Path) -> Case:
    # Set5 comes first and succeeds (from a folder): it must not be left behind either.
    set5 = write_pngs(tmp / "mine" / "Set5", {f"img_{k}": (16, 16) for k in range(5)})
    return download(
        tmp,
        download_params(tmp, ["Set5", "OST"], local={"Set5": str(set5)}),
        "ManualDownloadRequired",
        [
            "OutdoorSceneTrain_v2.zip must be downloaded by hand",
            "https://drive.google.com/drive/folders/1LIb631GU3bOyQVTeuALesD8_eoApNniB",
            str(tmp / "downloads" / "OutdoorSceneTrain_v2.zip"),
            "`local`",
            "Then run the stage again",
        ],
        # one message, not repeated or wrapped in the automatic-download hint (no URL to try)
        once=["must be downloaded by hand"],
        not_mentioned=["Alternatives:"],
    )


def make_lr(tmp: Path, params: str, exception: str | None, mentions: list[str], **extra) -> Case:
    out = tmp / "results" / "make_lr"
    return Case(
        "make_lr",
        ["--params", params, "--src", str(tmp / "download"), "--out", str(out)],
        out,
        exception,
        mentions,
        **extra,
    )


def case_make_lr_corrupt_png(tmp: Path) -> Case:
    # The training set is complete before the test set fails: no part of it may survive.
    write_pngs(tmp / "download" / "good_train" / "HR", {"a": (100, 100)})
    hr = write_pngs(tmp / "download" / "bad_test" / "HR", {"fine": (32, 32), "broken": (64, 64)})
    data = (hr / "broken.png").read_bytes()
    (hr / "broken.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    return make_lr(tmp, make_lr_params(["good_train"], ["bad_test"]), "ImageError", [str(hr / "broken.png"), "corrupt"])


def case_make_lr_training_image_too_small(tmp: Path) -> Case:
    write_pngs(tmp / "download" / "good_train" / "HR", {"a": (100, 100)})
    hr = write_pngs(tmp / "download" / "small_train" / "HR", {"big": (100, 100), "tiny": (61, 83)})
    write_pngs(tmp / "download" / "good_test" / "HR", {"t": (32, 32)})
    return make_lr(
        tmp,
        make_lr_params(["good_train", "small_train"], ["good_test"]),
        "ConfigError",
        [str(hr / "tiny.png"), "60x80 after mod-crop", "smaller than 96", "lower make_lr.min_size"],
        not_mentioned=["set too_small"],
    )  # advice names a key params.yaml accepts


def case_make_lr_user_image_too_small(tmp: Path) -> Case:
    """An image imported from the user's `local:` folder is named as the user's file, not our copy."""
    write_pngs(tmp / "download" / "good_train" / "HR", {"a": (100, 100)})
    hr = write_pngs(tmp / "download" / "mine_train" / "HR", {"big": (100, 100), "img3": (61, 83)})
    mine = tmp / "data" / "mine"
    provenance = {"local_folder": str(mine), "sources": {"img3.png": str(mine / "img3.png")}}
    (tmp / "download" / "mine_train" / "provenance.json").write_text(json.dumps(provenance))
    write_pngs(tmp / "download" / "good_test" / "HR", {"t": (32, 32)})
    return make_lr(
        tmp,
        make_lr_params(["good_train", "mine_train"], ["good_test"]),
        "ConfigError",
        [f"{mine / 'img3.png'} (60x80 after mod-crop)", f"remove them from {mine} or lower make_lr.min_size"],
        not_mentioned=[str(hr)],
    )


def case_params_make_lr_unknown_key_and_wrong_type(tmp: Path) -> Case:
    write_pngs(tmp / "download" / "good_test" / "HR", {"t": (32, 32)})
    params = make_lr_params([], ["good_test"], min_size="96", colour="rgb")
    return make_lr(tmp, params, None, ["colour", "make_lr.min_size", "expected integer"])


def case_params_download_wrong_type(tmp: Path) -> Case:
    params = json.loads(download_params(tmp, ["Set5"]))
    params["datasets"] = "Set5"
    return download(tmp, json.dumps(params), None, ["download_data.datasets", "expected array"])


def seg_maps(tmp: Path, params: str, exception: str | None, mentions: list[str]) -> Case:
    write_pngs(tmp / "make_lr" / "demo_test" / "HR", {"t": (32, 32)})
    out, work = tmp / "results" / "make_seg_maps", tmp / "work"
    args = [
        "--params",
        params,
        "--lr-root",
        str(tmp / "make_lr"),
        "--out",
        str(out),
        "--work",
        str(work),
        "--device",
        "cpu",
    ]
    return Case("make_seg_maps", args, out, exception, mentions, no_files_under=[work])


def case_params_seg_missing_key_and_bad_enum(tmp: Path) -> Case:
    params = json.loads(seg_params(str(tmp / "w.pth"), segmenter="deeplab"))
    del params["seed"]
    return seg_maps(tmp, json.dumps(params), None, ["missing key", "seed", "deeplab", "segmenter"])


def case_seg_weights_missing(tmp: Path) -> Case:
    weights = tmp / "downloads" / "segmentation_OST_bic.pth"
    return seg_maps(
        tmp,
        seg_params(str(weights)),
        "ConfigError",
        [
            f"weights not found: {weights}",
            "Download segmentation_OST_bic.pth",
            "https://drive.google.com/drive/folders/16owosaM_ADAm2FmVI9eKmuYzULVeBy7t",
        ],
    )


def case_seg_weights_random_bytes(tmp: Path) -> Case:
    weights = tmp / "downloads" / "segmentation_OST_bic.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(np.random.default_rng(0).bytes(4096))
    return seg_maps(
        tmp,
        seg_params(str(weights)),
        "ConfigError",
        [str(weights), "not a readable PyTorch weights file", "Download segmentation_OST_bic.pth"],
    )


def case_seg_weights_pinned_digest_differs(tmp: Path) -> Case:
    weights = tmp / "downloads" / "segmentation_OST_bic.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(np.random.default_rng(1).bytes(4096))
    return seg_maps(
        tmp,
        seg_params(str(weights), weights_sha256="0" * 64),
        "ConfigError",
        [str(weights), "params expect " + "0" * 64, "sha256"],
    )


CASES: dict[str, Callable[[Path], Case]] = {
    name[len("case_") :]: fn for name, fn in globals().items() if name.startswith("case_")
}


# --------------------------------------------------------------------------------------------------
# Running


def run_step(case: Case) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SPSAGAN_DEBUG"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, f"steps/{case.step}.py", *case.args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """name -> (case, future of its CompletedProcess); the selected cases' steps start at once."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.get_closest_marker("parametrize") and item.module.__name__ == __name__
    }
    cases = {name: build(tmp_path_factory.mktemp(name)) for name, build in CASES.items() if name in selected}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        yield {name: (case, pool.submit(run_step, case)) for name, case in cases.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_cleanly(runs, name):
    case, future = runs[name]
    proc = future.result()
    where = f"{case.step} ({name}) stderr:\n{proc.stderr}"

    # (a) an expected failure: exit 1, not a crash
    assert proc.returncode == 1, where
    assert "Traceback" not in proc.stderr, where
    # (b) exactly one error message (progress bars may precede it), naming the culprit
    errors = list(ERROR_LINE.finditer(proc.stderr))
    assert len(errors) == 1, where
    if case.exception is not None:
        assert errors[0].group(1) == case.exception, where
    message = proc.stderr[errors[0].start() :]
    for text in case.mentions:
        assert text in message, f"{text!r} missing from the message; {where}"
    for text in case.once:
        assert proc.stderr.count(text) == 1, f"{text!r} should occur once; {where}"
    for text in case.not_mentioned:
        assert text not in proc.stderr, f"{text!r} should not occur; {where}"
    # (c) nothing half-written
    assert not case.out.exists(), f"{case.out} exists after a failure; {where}"
    leftovers = sorted(p.name for p in case.out.parent.glob(f".{case.out.name}.*.tmp"))  # glob of a missing dir: []
    assert leftovers == [], f"temporary folders left beside {case.out}: {leftovers}"
    for folder in case.no_files_under:
        assert not [p for p in folder.rglob("*") if p.is_file()], f"files written under {folder}; {where}"
    for path in case.absent:
        assert not path.exists(), f"{path} exists after a failure; {where}"


def test_control_the_same_inputs_repaired_succeed(tmp_path):
    """The failures above come from the one defect: with the corrupt PNG replaced, make_lr writes everything."""
    case = case_make_lr_corrupt_png(tmp_path)
    write_pngs(tmp_path / "download" / "bad_test" / "HR", {"broken": (64, 64)})
    proc = run_step(case)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (case.out / "bad_test" / "LR_x4").iterdir()) == ["broken.png", "fine.png"]
    assert (case.out / "good_train" / "sub" / "index.csv").is_file()
    assert not list(case.out.parent.glob(f".{case.out.name}.*.tmp"))
