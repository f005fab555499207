"""Preflight: one table of every file a paper run needs, one error naming all the missing ones, `make fetch`
against a local HTTP server and a mirror folder, VGG19 checked by its sha256 prefix, and the Snakefile
stopping before any job. No internet: every download comes from 127.0.0.1."""

import copy
import dataclasses
import functools
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from spsagan.data import assets as registry
from spsagan.data.assets import Checksum, DatasetSource
from spsagan.errors import ConfigError
from spsagan.models.vgg import verify_weights
from spsagan.pipeline import preflight
from spsagan.pipeline.params import load_params
from spsagan.pipeline.preflight import __main__ as preflight_cli
from spsagan.pipeline.preflight import needs as preflight_needs
from spsagan.pipeline.preflight import verify as preflight_verify

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
BIN = Path(sys.executable).parent
OST_DRIVE = "https://drive.google.com/drive/folders/1LIb631GU3bOyQVTeuALesD8_eoApNniB"
VGG_BYTES = b"not really VGG19, but its digest is registered for the test" * 100


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Only 127.0.0.1 resolves: a test that would reach a real host fails instead."""
    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test tried to reach {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


@pytest.fixture(scope="module")
def committed():
    return load_params(ROOT / "params.yaml", SCHEMA)


@pytest.fixture
def project(tmp_path, monkeypatch, committed):
    """The committed params with the paper profile's files under tmp_path (nothing there yet)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    params = copy.deepcopy(committed)
    downloads = tmp_path / "downloads"
    params["download_data"]["paper"]["downloads_dir"] = str(downloads)
    params["make_seg_maps"]["paper"]["weights"] = str(downloads / "manual" / "segmentation_OST_bic.pth")
    params["train_gan"]["paper"]["perceptual_weights"] = str(downloads / "vgg19-dcbb9e9d.pth")
    params["evaluate"]["paper"]["published"] = {"ESRGAN": str(downloads / "published" / "RRDB_ESRGAN_x4.pth")}
    return params


def run_check(params, tmp_path, **kwargs):
    out = io.StringIO()
    kwargs = {"root": tmp_path, "extracted": tmp_path / "results" / "download_data", "cache": None, **kwargs}
    try:
        report, error = preflight.check(params, "paper", file=out, **kwargs), None
    except ConfigError as exc:
        report, error = None, str(exc)
    return out.getvalue(), report, error


def row(table: str, name: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(name))


@pytest.fixture
def registered_vgg(monkeypatch):
    """The registry's VGG19 entry with the test file's sha256 prefix (a real prefix cannot be forged)."""
    prefix = hashlib.sha256(VGG_BYTES).hexdigest()[:8]
    asset = dataclasses.replace(registry.ASSETS["vgg19"], checksum=Checksum("sha256", prefix))
    monkeypatch.setitem(registry.ASSETS, "vgg19", asset)
    return asset


# --------------------------------------------------------------------------------------------------
# The table and the one error


def test_missing_manual_file_is_named_with_its_source_and_target_and_all_errors_come_at_once(project, tmp_path):
    table, report, error = run_check(project, tmp_path)
    assert report is None
    header = table.splitlines()[1]
    for column in ("asset", "needed by", "status", "where to get it", "where to put it"):
        assert column in header
    ost = row(table, "OST: OutdoorSceneTrain_v2.zip")
    assert "MISSING: by hand" in ost and OST_DRIVE in ost
    assert str(tmp_path / "downloads" / "OutdoorSceneTrain_v2.zip") in ost
    assert "download_data gets it" in row(table, "DIV2K: DIV2K_train_HR.zip")  # fetchable: not an error
    assert "MISSING: make fetch" in row(table, "VGG19: vgg19-dcbb9e9d.pth")
    assert "missing: PI not reported" in row(table, "NRQM: NRQM_model.mat")
    assert "missing: column skipped" in row(table, "ESRGAN: RRDB_ESRGAN_x4.pth")
    # one error, every missing required file in it, each with where to get it and where to put it
    assert "4 required file(s) missing" in error
    for name in (
        "OutdoorSceneTrain_v2.zip",
        "OutdoorSceneTest300.zip",
        "segmentation_OST_bic.pth",
        "vgg19-dcbb9e9d.pth",
        OST_DRIVE,
        str(tmp_path / "downloads" / "manual" / "segmentation_OST_bic.pth"),
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "make fetch",
        "snakemake -n --config profile=paper",  # how to see the plan before the files are in place
    ):
        assert name in error, name
    for optional in ("DIV2K", "NRQM", "RRDB_ESRGAN_x4"):
        assert optional not in error


def test_present_files_are_ok(project, tmp_path, registered_vgg):
    downloads = tmp_path / "downloads"
    (downloads / "manual").mkdir(parents=True)
    (downloads / "manual" / "segmentation_OST_bic.pth").write_bytes(b"weights")
    (downloads / "vgg19-dcbb9e9d.pth").write_bytes(VGG_BYTES)
    (tmp_path / "mine" / "OST").mkdir(parents=True)  # an extracted folder of your own
    project["download_data"]["paper"]["local"] = {"OST": str(tmp_path / "mine" / "OST")}
    (tmp_path / "results" / "download_data" / "OST300" / "HR").mkdir(parents=True)  # already extracted
    table, report, error = run_check(project, tmp_path)
    assert error is None and report.ok
    states = {r.need.name.split(":")[0]: r.state for r in report.rows}
    assert states["OST"] == states["OST300"] == states["OutdoorSceneSeg"] == states["VGG19"] == "ok"
    assert states["DIV2K"] == "later" and states["NRQM"] == "missing" and states["ESRGAN"] == "missing"
    assert "(extracted)" in row(table, "OST300") and "download_data.local" in row(table, "OST:")


def test_local_path_that_does_not_exist_is_an_error(project, tmp_path):
    project["download_data"]["paper"]["local"] = {"DIV2K": str(tmp_path / "nowhere")}
    _, _, error = run_check(project, tmp_path)
    assert f"download_data.local names {tmp_path / 'nowhere'}, which does not exist" in error


def test_demo_profile_needs_no_file(committed):
    needs = preflight.needed_assets(committed, "demo")
    assert {n.severity for n in needs} == {preflight_needs.WARNING}  # only PI's NRQM model and pyiqa


def test_nrqm_path_is_where_pyiqa_reads_it(monkeypatch, tmp_path):
    import torch

    from spsagan.evaluation import default_nrqm_path

    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        monkeypatch.delenv("TORCH_HOME", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert preflight.torch_hub_dir() == Path(torch.hub.get_dir())
        assert preflight.nrqm_path() == default_nrqm_path()


# --------------------------------------------------------------------------------------------------
# VGG19 through the registry


def test_vgg19_with_the_wrong_hash_is_caught(project, tmp_path):
    target = tmp_path / "downloads" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a truncated download")
    table, _, error = run_check(project, tmp_path)
    assert "WRONG FILE" in row(table, "VGG19")
    assert "sha256 mismatch, expected sha256 prefix dcbb9e9d" in error and str(target) in error
    # train_gan checks the same before it builds anything
    with pytest.raises(ConfigError, match="sha256 prefix dcbb9e9d.*not torchvision's vgg19-dcbb9e9d.pth.*make fetch"):
        verify_weights(target)
    with pytest.raises(ConfigError, match=r"VGG19 weights not found: .*nope.pth.*make fetch"):
        verify_weights(tmp_path / "nope.pth")


def test_vgg19_verified_once_then_remembered(project, tmp_path, registered_vgg, monkeypatch):
    target = tmp_path / "downloads" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(VGG_BYTES)
    assert verify_weights(target) == hashlib.sha256(VGG_BYTES).hexdigest()
    calls = []
    real = preflight_verify.verify_file
    monkeypatch.setattr(preflight_verify, "verify_file", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    for _ in range(2):
        run_check(project, tmp_path, cache=".snakemake/preflight.json")
    assert calls == [target]  # the second run trusts the first (same size and mtime)
    target.write_bytes(VGG_BYTES[:-1])  # changed: checked again, and caught
    _, _, error = run_check(project, tmp_path, cache=".snakemake/preflight.json")
    assert calls == [target, target] and "VGG19" in error and "sha256 mismatch" in error


# --------------------------------------------------------------------------------------------------
# make fetch


@pytest.fixture
def http_folder(tmp_path):
    """A folder served at 127.0.0.1 (no Range support needed for whole files)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(
        type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(folder)
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_fetch_gets_every_fetchable_file_and_leaves_the_manual_ones(
    project, tmp_path, monkeypatch, http_folder, registered_vgg
):
    folder, url = http_folder
    files = {"tiny.zip": b"PK tiny archive", "vgg19-dcbb9e9d.pth": VGG_BYTES, "NRQM_model.mat": b"nrqm"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    tiny = registry.Asset(
        key="tiny",
        filename="tiny.zip",
        url=f"{url}/tiny.zip",
        page="https://example.org",
        size=len(files["tiny.zip"]),
        checksum=Checksum("sha256", hashlib.sha256(b"PK tiny archive").hexdigest()),
        license="test",
    )
    monkeypatch.setitem(registry.ASSETS, "tiny", tiny)
    monkeypatch.setitem(registry.DATASETS, "Tiny", DatasetSource("tiny", "Tiny_HR", 3, "tiny test set"))
    monkeypatch.setitem(registry.ASSETS, "vgg19", dataclasses.replace(registered_vgg, url=f"{url}/vgg19-dcbb9e9d.pth"))
    nrqm = registry.ASSETS["pyiqa_nrqm"]
    monkeypatch.setitem(registry.ASSETS, "pyiqa_nrqm", dataclasses.replace(nrqm, url=f"{url}/NRQM_model.mat"))
    project["download_data"]["paper"]["datasets"] = ["Tiny", "OST"]
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "vgg19-dcbb9e9d.pth").write_bytes(b"an old, truncated download")  # replaced
    report = preflight.fetch(
        project,
        "paper",
        root=tmp_path,
        progress=False,
        retries=0,
        file=io.StringIO(),
        extracted=tmp_path / "results" / "download_data",
    )
    downloads = tmp_path / "downloads"
    assert (downloads / "tiny.zip").read_bytes() == files["tiny.zip"]
    assert (downloads / "vgg19-dcbb9e9d.pth").read_bytes() == VGG_BYTES
    assert (tmp_path / "torch" / "hub" / "pyiqa" / "NRQM_model.mat").read_bytes() == b"nrqm"
    assert not report.failures
    assert sorted(r.need.name for r in report.errors) == [
        "OST: OutdoorSceneTrain_v2.zip",
        "OutdoorSceneSeg: segmentation_OST_bic.pth",
    ]
    assert "MISSING: by hand" in report.table() and "pyiqa" in report.table()


def test_fetch_from_a_mirror_folder_puts_the_file_where_its_setting_says(project, tmp_path, registered_vgg):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "vgg19-dcbb9e9d.pth").write_bytes(VGG_BYTES)
    project["download_data"]["paper"]["datasets"] = []
    project["make_seg_maps"]["paper"]["segmenter"] = "standin"
    project["evaluate"]["paper"]["pi"] = False  # NRQM is not in the mirror: it would be fetched from its host
    project["train_gan"]["paper"]["perceptual_weights"] = str(tmp_path / "weights" / "my_vgg19.pth")
    report = preflight.fetch(
        project, "paper", root=tmp_path, mirror=str(mirror), progress=False, retries=0, file=io.StringIO(), cache=None
    )
    assert (tmp_path / "weights" / "my_vgg19.pth").read_bytes() == VGG_BYTES
    assert (mirror / "vgg19-dcbb9e9d.pth").exists()  # the mirror is never moved
    assert report.ok and [r.state for r in report.rows if r.need.name.startswith("VGG19")] == ["ok"]


def test_cli_prints_the_table_and_fails_when_something_required_is_missing(project, tmp_path, capsys, monkeypatch):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    monkeypatch.chdir(tmp_path)  # relative paths (the verification cache, results/) resolve here
    assert preflight_cli.main(["--params", str(path), "--schema", str(SCHEMA), "--profile", "paper"]) == 1
    captured = capsys.readouterr()
    assert "where to put it" in captured.out and "segmentation_OST_bic.pth" in captured.err


# --------------------------------------------------------------------------------------------------
# The Snakefile


def test_snakemake_paper_dry_run_plans_offline_and_prints_the_table(tmp_path):
    """`snakemake -n` plans the paper profile before its files exist, printing the table as a warning
    (tests/test_launcher.py checks that a real run stops before any job)."""
    downloads = tmp_path / "downloads"
    extra = {
        "download_data": {"paper": {"downloads_dir": str(downloads)}},
        "make_seg_maps": {"paper": {"weights": str(downloads / "manual" / "segmentation_OST_bic.pth")}},
        "train_gan": {"paper": {"perceptual_weights": str(downloads / "vgg19-dcbb9e9d.pth")}},
    }
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump(extra))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TORCH_HOME": str(tmp_path / "torch")}
    command = [str(BIN / "snakemake"), "-n", "--configfile", str(tmp_path / "extra.yaml"), "--config", "profile=paper"]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "where to put it" in output and "MISSING: by hand" in output
    assert str(downloads / "manual" / "segmentation_OST_bic.pth") in output and "vgg19-dcbb9e9d.pth" in output
    assert "a dry run plans anyway" in output and "train_gan" in output  # the whole DAG is planned
