"""Downloads against a local HTTP server with Range support: resume, checksum, dropped connections, mirrors,
manual assets, and the download_data dataset builder. No internet."""

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from spsagan.data import assets as registry
from spsagan.data.assets import Asset, Checksum, DatasetSource
from spsagan.data.download import _file_lock, download_url, fetch_asset, prepare_dataset, verify_file
from spsagan.errors import ArchiveError, ChecksumMismatch, ConfigError, DownloadError, ManualDownloadRequired

PAYLOAD = os.urandom(300_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _State:
    def __init__(self):
        self.files = {}
        self.requests = []  # (path, Range header or None)
        self.ignore_range = False
        self.drop_after = None  # send only this many body bytes once, then close
        self.bytes_sent = 0


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        state = self.state
        rng = self.headers.get("Range")
        state.requests.append((self.path, rng))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "not here")
            return
        start = 0
        if rng and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.drop_after is not None:
            body, state.drop_after = body[: state.drop_after], None
        for i in range(0, len(body), 65536):
            self.wfile.write(body[i : i + 65536])
        state.bytes_sent += len(body)


@pytest.fixture
def server():
    state = _State()
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    state.files["/data/file.bin"] = PAYLOAD
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _asset(url, checksum=Checksum("sha256", SHA256), size=len(PAYLOAD), manual=False, filename="file.bin"):
    return Asset(
        key="test",
        filename=filename,
        url=url,
        page="https://example.org/page",
        size=size,
        checksum=checksum,
        license="test",
        manual=manual,
        instructions="the test file",
    )


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())  # .lock files included: none may stay behind


def test_full_download_verified(server, tmp_path):
    dest = tmp_path / "file.bin"
    sha = download_url(
        server.url + "/data/file.bin", dest, size=len(PAYLOAD), checksum=Checksum("sha256", SHA256), progress=False
    )
    assert sha == SHA256 and dest.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["file.bin"]
    assert server.requests == [("/data/file.bin", None)]


def test_resume_from_part_uses_range(server, tmp_path):
    half = 123_457
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:half])
    download_url(
        server.url + "/data/file.bin",
        tmp_path / "file.bin",
        size=len(PAYLOAD),
        checksum=Checksum("md5", MD5),
        progress=False,
    )
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/data/file.bin", f"bytes={half}-")]
    assert server.bytes_sent == len(PAYLOAD) - half  # only the missing tail was transferred
    assert _leftovers(tmp_path) == ["file.bin"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    download_url(
        server.url + "/data/file.bin",
        tmp_path / "file.bin",
        size=len(PAYLOAD),
        checksum=Checksum("sha256", SHA256),
        progress=False,
    )
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_complete_part_is_not_refetched(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)  # size unknown: server answers 416
    download_url(
        server.url + "/data/file.bin", tmp_path / "file.bin", checksum=Checksum("sha256", SHA256), progress=False
    )
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.bytes_sent == 0


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as err:
        download_url(
            server.url + "/data/file.bin", tmp_path / "file.bin", checksum=Checksum("sha256", wrong), progress=False
        )
    message = str(err.value)
    assert "file.bin" in message and wrong in message and SHA256 in message
    assert _leftovers(tmp_path) == []


def test_wrong_size_rejected(server, tmp_path):
    with pytest.raises(ChecksumMismatch, match="expected 300,001 bytes"):
        download_url(server.url + "/data/file.bin", tmp_path / "file.bin", size=len(PAYLOAD) + 1, progress=False)
    assert _leftovers(tmp_path) == []


def test_dropped_connection_keeps_part_then_resumes(server, tmp_path):
    server.drop_after = 100_000
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download_url(
            server.url + "/data/file.bin",
            dest,
            size=len(PAYLOAD),
            checksum=Checksum("sha256", SHA256),
            progress=False,
            retries=0,
        )
    assert not dest.exists()  # never a file that looks complete
    assert (tmp_path / "file.bin.part").stat().st_size == 100_000
    download_url(
        server.url + "/data/file.bin",
        dest,
        size=len(PAYLOAD),
        checksum=Checksum("sha256", SHA256),
        progress=False,
        retries=0,
    )
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/data/file.bin", "bytes=100000-")


def test_dropped_connection_retried_within_one_call(server, tmp_path):
    server.drop_after = 50_000
    download_url(
        server.url + "/data/file.bin",
        tmp_path / "file.bin",
        checksum=Checksum("sha256", SHA256),
        progress=False,
        retries=2,
        retry_wait=0,
    )
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=50000-"]


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_fetch_says_nothing_was_downloaded_and_leaves_nothing(tmp_path):
    asset = _asset(f"http://127.0.0.1:{_closed_port()}/data/file.bin")
    with pytest.raises(DownloadError) as err:
        fetch_asset(asset, tmp_path, progress=False, retries=1, retry_wait=0)
    message = str(err.value)
    assert "nothing was downloaded" in message and "bytes kept" not in message and ".part" not in message
    assert _leftovers(tmp_path) == []  # no .part, no .lock


def test_connection_closed_before_any_byte_leaves_nothing(server, tmp_path):
    server.drop_after = 0
    with pytest.raises(DownloadError, match="nothing was downloaded") as err:
        fetch_asset(_asset(server.url + "/data/file.bin"), tmp_path, progress=False, retries=0)
    assert "bytes kept" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_partial_download_says_what_it_kept_and_leaves_no_lock(server, tmp_path):
    server.drop_after = 1000
    with pytest.raises(DownloadError, match=r"1,000 bytes kept in .*file\.bin\.part, run again to resume"):
        fetch_asset(_asset(server.url + "/data/file.bin"), tmp_path, progress=False, retries=0)
    assert _leftovers(tmp_path) == ["file.bin.part"]


def test_file_lock_is_exclusive_although_each_holder_removes_it(tmp_path):
    lock, inside, overlaps = tmp_path / "a.lock", [], []

    def worker():
        for _ in range(20):
            with _file_lock(lock):
                inside.append(1)
                overlaps.append(len(inside) > 1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(overlaps) == 80 and not any(overlaps)
    assert not lock.exists()


def test_http_404_names_alternatives(server, tmp_path):
    asset = _asset(server.url + "/missing/file.bin")
    with pytest.raises(DownloadError) as err:
        fetch_asset(asset, tmp_path, progress=False, retries=0)
    message = str(err.value)
    assert "HTTP 404" in message and str(tmp_path / "file.bin") in message and "mirror" in message
    assert "https://example.org/page" in message


def test_fetch_asset_downloads_then_reuses(server, tmp_path):
    asset = _asset(server.url + "/data/file.bin", checksum=Checksum("sha256", SHA256[:8]))  # prefix, as vgg19
    path, sha = fetch_asset(asset, tmp_path, progress=False)
    assert path == tmp_path / "file.bin" and sha == SHA256
    fetch_asset(asset, tmp_path, progress=False)
    assert len(server.requests) == 1  # verified copy reused


def test_existing_corrupt_copy_is_deleted(server, tmp_path):
    (tmp_path / "file.bin").write_bytes(b"x" * len(PAYLOAD))
    with pytest.raises(ChecksumMismatch, match="deleted"):
        fetch_asset(_asset(server.url + "/data/file.bin"), tmp_path, progress=False)
    assert not (tmp_path / "file.bin").exists()


def test_manual_asset_message(tmp_path):
    asset = registry.ASSETS["OutdoorSceneSeg"]
    with pytest.raises(ManualDownloadRequired) as err:
        fetch_asset(asset, tmp_path / "archives")
    message = str(err.value)
    assert "segmentation_OST_bic.pth" in message
    assert "https://drive.google.com/drive/folders/16owosaM_ADAm2FmVI9eKmuYzULVeBy7t" in message
    assert str(tmp_path / "archives" / "segmentation_OST_bic.pth") in message
    assert "check:" in message and "local" in message
    assert not (tmp_path / "archives" / "segmentation_OST_bic.pth").exists()


def test_manual_asset_placed_by_hand_is_used(tmp_path):
    (tmp_path / "segmentation_OST_bic.pth").write_bytes(PAYLOAD)
    path, sha = fetch_asset("OutdoorSceneSeg", tmp_path)
    assert path == tmp_path / "segmentation_OST_bic.pth" and sha == SHA256


def test_local_file_verified_and_never_deleted(tmp_path):
    good = tmp_path / "mine" / "file.bin"
    good.parent.mkdir()
    good.write_bytes(PAYLOAD)
    asset = _asset("http://127.0.0.1:9/unreachable")
    path, _ = fetch_asset(asset, tmp_path / "archives", local=good)
    assert path == good
    bad = tmp_path / "mine" / "bad.bin"
    bad.write_bytes(PAYLOAD[::-1])
    with pytest.raises(ChecksumMismatch, match="local copy"):
        fetch_asset(asset, tmp_path / "archives", local=bad)
    assert bad.exists()
    with pytest.raises(DownloadError, match="does not exist"):
        fetch_asset(asset, tmp_path / "archives", local=tmp_path / "nope.bin")


def test_mirror_folder_and_url(server, tmp_path):
    asset = _asset("http://127.0.0.1:9/unreachable")  # the asset's own URL is dead
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "file.bin").write_bytes(PAYLOAD)
    assert fetch_asset(asset, tmp_path / "a", mirror=mirror)[0] == mirror / "file.bin"
    assert fetch_asset(asset, tmp_path / "b", mirror=mirror.as_uri())[0] == mirror / "file.bin"
    (mirror / "file.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch, match="mirror copy"):
        fetch_asset(asset, tmp_path / "c", mirror=mirror)
    path, _ = fetch_asset(asset, tmp_path / "d", mirror=server.url + "/data/", progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == [("/data/file.bin", None)]


def test_verify_file_md5_and_size(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(PAYLOAD)
    assert verify_file(f, len(PAYLOAD), Checksum("md5", MD5)) == SHA256
    with pytest.raises(ChecksumMismatch, match=f"got {MD5}"):
        verify_file(f, None, Checksum("md5", "f" * 32))


# --------------------------------------------------------------------------------------------------
# prepare_dataset


def _png_bytes(h, w, mode="RGB", seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def tiny_registry(monkeypatch, server):
    """A 3-image 'Tiny' dataset inside a zip served over HTTP, registered like the real ones."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"Tiny_HR/{i:04d}.png", _png_bytes(8, 12, seed=i))
        zf.writestr("Tiny_HR/readme.txt", "not an image")
        zf.writestr("Tiny_LR/0000.png", _png_bytes(2, 3))
    data = buf.getvalue()
    server.files["/tiny.zip"] = data
    asset = Asset(
        key="tiny",
        filename="tiny.zip",
        url=server.url + "/tiny.zip",
        page="https://example.org",
        size=len(data),
        checksum=Checksum("sha256", hashlib.sha256(data).hexdigest()),
        license="test",
    )
    monkeypatch.setitem(registry.ASSETS, "tiny", asset)
    monkeypatch.setitem(registry.DATASETS, "Tiny", DatasetSource("tiny", "Tiny_HR", 3, "tiny test set"))
    monkeypatch.setitem(registry.DATASETS, "Tiny4", DatasetSource("tiny", "Tiny_HR", 4, "wrong count"))
    return asset


def test_prepare_dataset_from_archive(tiny_registry, tmp_path):
    root = tmp_path / "download_data"
    out = prepare_dataset("Tiny", root, progress=False)
    assert out == root / "Tiny"
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (out / "HR" / "0001.png").read_bytes() == _png_bytes(8, 12, seed=1)  # bytes as in the archive
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["images"] == 3 and prov["stand_in"] is False and prov["sha256"] == tiny_registry.checksum.hexdigest
    assert sorted(os.listdir(root)) == ["Tiny", "_archives"]  # no temporary folders left


def test_prepare_dataset_wrong_count_writes_nothing(tiny_registry, tmp_path):
    with pytest.raises(DownloadError, match="found 3 images .* expected 4"):
        prepare_dataset("Tiny4", tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["_archives"]


def test_prepare_dataset_from_local_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.DATASETS, "Tiny", DatasetSource("OST_train", "whatever", 3, "tiny"))
    folder = tmp_path / "extracted"
    for cat, i in [("animal", 0), ("sky", 0), ("sky", 1)]:  # the stem 0 repeats: names get the folder
        (folder / cat).mkdir(parents=True, exist_ok=True)
        (folder / cat / f"{i}.png").write_bytes(_png_bytes(4, 4, seed=i))
    out = prepare_dataset("Tiny", tmp_path / "dl", local=folder)
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["animal_0.png", "sky_0.png", "sky_1.png"]
    assert (folder / "sky" / "1.png").exists()  # the user's folder is copied, not moved


def test_local_folder_provenance_names_each_users_file_and_follows_the_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.DATASETS, "Mine", DatasetSource("OST_train", "whatever", None, "mine"))
    folder = tmp_path / "mine"
    (folder / "sky").mkdir(parents=True)
    for name in ("a.png", "sky/b.png"):
        (folder / name).write_bytes(_png_bytes(4, 4))
    out = prepare_dataset("Mine", tmp_path / "dl", local=folder)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["sources"] == {"a.png": str(folder / "a.png"), "b.png": str(folder / "sky" / "b.png")}
    assert prov["images"] == 2 and prov["local_folder"] == str(folder)
    (folder / "a.png").unlink()  # the user follows advice: the next import writes the new set
    prov = json.loads((prepare_dataset("Mine", tmp_path / "dl", local=folder) / "provenance.json").read_text())
    assert prov["images"] == 1 and list(prov["sources"]) == ["b.png"]


def test_prepare_dataset_manual_without_copy(tmp_path):
    with pytest.raises(ManualDownloadRequired, match="OutdoorSceneTest300.zip"):
        prepare_dataset("OST300", tmp_path)
    assert not (tmp_path / "OST300").exists()


def test_prepare_dataset_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="downloadable datasets: .*Set14"):
        prepare_dataset("Set15", tmp_path)


def _unchecked(monkeypatch, asset):
    """Register `asset` without checksum or size (as OST): only extraction can reject a bad copy."""
    plain = dataclasses.replace(asset, checksum=None, size=None)
    monkeypatch.setitem(registry.ASSETS, "tiny", plain)
    return plain


def test_cached_archive_rejected_by_content_is_quarantined_and_fetched_again(
    tiny_registry, tmp_path, monkeypatch, server
):
    _unchecked(monkeypatch, tiny_registry)
    archives = tmp_path / "archives"
    archives.mkdir()
    with zipfile.ZipFile(archives / "tiny.zip", "w") as zf:  # a cached copy with an unsafe entry
        zf.writestr("Tiny_HR/0000.png", _png_bytes(8, 12))
        zf.writestr("../evil.png", b"x")
    with pytest.raises(ArchiveError) as err:
        prepare_dataset("Tiny", tmp_path / "dl", archive_dir=archives, progress=False)
    rejected = archives / "tiny.zip.rejected"
    assert "unsafe entry '../evil.png'" in str(err.value) and str(rejected) in str(err.value)
    assert not (archives / "tiny.zip").exists() and rejected.exists()
    assert server.requests == []
    out = prepare_dataset("Tiny", tmp_path / "dl", archive_dir=archives, progress=False)  # downloads it afresh
    assert server.requests == [("/tiny.zip", None)] and len(list((out / "HR").iterdir())) == 3


def test_local_archive_rejected_by_content_is_left_in_place(tiny_registry, tmp_path, monkeypatch):
    _unchecked(monkeypatch, tiny_registry)
    mine = tmp_path / "mine.zip"
    with zipfile.ZipFile(mine, "w") as zf:
        zf.writestr("../evil.png", b"x")
    with pytest.raises(ArchiveError, match="unsafe entry"):
        prepare_dataset("Tiny", tmp_path / "dl", local=mine, archive_dir=tmp_path / "archives", progress=False)
    assert mine.exists()  # the user's own file is never moved


def test_truncated_png_in_local_folder_stops_the_import(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.DATASETS, "Tiny", DatasetSource("OST_train", "whatever", 3, "tiny"))
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(_png_bytes(64, 64, seed=i))
    broken = folder / "1.png"
    broken.write_bytes(broken.read_bytes()[:-300])  # header intact, pixel data cut off
    root = tmp_path / "dl"
    with pytest.raises(ValueError) as err:
        prepare_dataset("Tiny", root, local=folder)
    message = str(err.value)
    assert message.startswith(f"{broken}:") and str(root) not in message  # the original, not the copy
    assert not root.exists() or os.listdir(root) == []  # no dataset folder, no temporary folder


def test_truncated_png_in_unchecked_local_archive_names_the_entry(tiny_registry, tmp_path, monkeypatch):
    _unchecked(monkeypatch, tiny_registry)
    mine = tmp_path / "mine.zip"
    with zipfile.ZipFile(mine, "w") as zf:
        for i in range(3):
            data = _png_bytes(64, 64, seed=i)
            zf.writestr(f"Tiny_HR/{i:04d}.png", data[:-300] if i == 2 else data)
    root = tmp_path / "dl"
    with pytest.raises(ValueError, match=rf"0002.png in {re.escape(str(mine))}"):
        prepare_dataset("Tiny", root, local=mine, archive_dir=tmp_path / "archives", progress=False)
    assert not root.exists() or os.listdir(root) == []
