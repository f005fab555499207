"""Asset registry consistency, safe archive extraction, and the offline demo dataset."""

import io
import json
import os
import socket
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from spsagan.data.assets import ASSETS, DATASETS, Checksum, get_asset, get_dataset
from spsagan.data.demo import DEMO_IMAGES, demo_image, write_demo_dataset
from spsagan.data.download import manual_message
from spsagan.data.extract import flatten_images, safe_extract
from spsagan.errors import ArchiveError, ConfigError

# --------------------------------------------------------------------------------------------------
# Registry


def test_every_dataset_points_to_an_asset():
    for name, spec in DATASETS.items():
        assert spec.asset in ASSETS, name
        assert spec.member and not spec.member.startswith("/") and ".." not in spec.member


def test_dataset_image_counts_match_the_published_sets():
    counts = {name: spec.count for name, spec in DATASETS.items()}
    assert counts == {
        "DIV2K": 800,
        "DIV2K_valid": 100,
        "Flickr2K": 2650,
        "Set5": 5,
        "Set14": 14,
        "BSD100": 100,
        "Urban100": 100,
        "OST": 10_324,
        "OST300": 300,
    }


def test_registry_matches_spec_section_5():
    div2k = ASSETS["DIV2K_train_HR"]
    assert div2k.size == 3_530_603_713 and div2k.checksum == Checksum(
        "sha256", "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"
    )
    assert ASSETS["DIV2K_valid_HR"].size == 448_993_893
    assert ASSETS["benchmark"].checksum == Checksum("md5", "4ace41d33c2384b97e6b320cd0afd6ba")
    assert ASSETS["Flickr2K"].checksum == Checksum("md5", "5d3f39443d5e9489bff8963f8f26cb03")
    vgg = ASSETS["vgg19"]
    assert vgg.checksum.is_prefix and vgg.filename == f"vgg19-{vgg.checksum.hexdigest}.pth"


def test_assets_are_complete():
    for key, asset in ASSETS.items():
        assert asset.key == key and asset.license and asset.page.startswith("https://")
        if asset.manual:
            assert asset.url is None and asset.instructions, key
        else:
            assert asset.url.startswith("https://") and asset.url.endswith(asset.filename), key


def test_manual_messages_say_what_where_and_how(tmp_path):
    for asset in ASSETS.values():
        if asset.manual:
            msg = manual_message(asset, tmp_path / asset.filename)
            assert asset.page in msg and str(tmp_path / asset.filename) in msg and "check:" in msg


def test_checksum_rules():
    assert Checksum("md5", "ab" * 16).matches("AB" * 16)
    assert Checksum("sha256", "dcbb9e9d").matches("dcbb9e9d" + "0" * 56)
    assert not Checksum("sha256", "dcbb9e9d").matches("dcbb9e9e" + "0" * 56)
    for bad in [("sha1", "ab" * 20), ("md5", "xyz12345"), ("md5", "ab" * 17), ("sha256", "abc")]:
        with pytest.raises(ValueError):
            Checksum(*bad)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="DIV2K_train_HR"):
        get_asset("DIV2k")
    with pytest.raises(ConfigError, match="BSD100"):
        get_dataset("B100")


# --------------------------------------------------------------------------------------------------
# Extraction


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _tar(path, entries, mode="w"):
    """entries: name -> bytes, or name -> (type, linkname) for links/devices."""
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type, info.linkname = data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


GOOD = {
    "pack/Set5/HR/a.png": b"a" * 700,
    "pack/Set5/HR/b.png": b"b" * 900,
    "pack/Set5/LR/a.png": b"l" * 10,
    "pack/Set14/HR/c.png": b"c" * 10,
}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_extract_member_only(tmp_path, kind):
    archive = tmp_path / f"x.{kind}"
    if kind == "zip":
        _zip(archive, GOOD)
    else:
        _tar(archive, GOOD, "w:gz" if kind == "tar.gz" else "w")
    folder = safe_extract(archive, tmp_path / "out", member="pack/Set5/HR")
    assert folder == tmp_path / "out" / "pack" / "Set5" / "HR"
    assert _tree(tmp_path / "out") == ["pack", "pack/Set5", "pack/Set5/HR", "pack/Set5/HR/a.png", "pack/Set5/HR/b.png"]
    assert (folder / "b.png").read_bytes() == b"b" * 900


def test_member_found_under_a_wrapper_folder(tmp_path):
    archive = _zip(tmp_path / "x.zip", {"Download-001/" + k: v for k, v in GOOD.items()})
    folder = safe_extract(archive, tmp_path / "out", member="pack/Set5/HR")
    assert folder == tmp_path / "out" / "Download-001" / "pack" / "Set5" / "HR"


def test_missing_or_ambiguous_member(tmp_path):
    archive = _zip(tmp_path / "x.zip", GOOD)
    with pytest.raises(ArchiveError, match=r"no folder 'Set99' .*\['pack'\]"):
        safe_extract(archive, tmp_path / "out", member="Set99")
    with pytest.raises(ArchiveError, match="ambiguous"):
        safe_extract(archive, tmp_path / "out", member="HR")
    assert _tree(tmp_path) == ["x.zip"]


UNSAFE_TARS = {
    "dotdot": {"ok.png": b"1", "../evil.png": b"2"},
    "absolute": {"ok.png": b"1", "/tmp/evil.png": b"2"},
    "symlink_abs": {"ok.png": b"1", "link": (tarfile.SYMTYPE, "/etc/passwd")},
    "symlink_up": {"ok.png": b"1", "d/link": (tarfile.SYMTYPE, "../../outside")},
    "hardlink_up": {"ok.png": b"1", "hard": (tarfile.LNKTYPE, "../outside")},
    "device": {"ok.png": b"1", "dev": (tarfile.CHRTYPE, "")},
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_rejected_and_nothing_written(tmp_path, case):
    archive = _tar(tmp_path / "bad.tar", UNSAFE_TARS[case])
    with pytest.raises(ArchiveError, match="bad.tar: unsafe|bad.tar: unsupported"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["bad.tar"]


def test_in_tree_symlink_allowed(tmp_path):
    archive = _tar(tmp_path / "ok.tar", {"d/a.png": b"1", "d/link.png": (tarfile.SYMTYPE, "a.png")})
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "link.png").read_bytes() == b"1"


def test_unsafe_zip_rejected(tmp_path):
    archive = _zip(tmp_path / "bad.zip", {"ok.png": b"1", "../evil.png": b"2"})
    with pytest.raises(ArchiveError, match=r"bad.zip: unsafe entry '../evil.png'"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["bad.zip"]


def _cut(path, length):
    data = path.read_bytes()
    path.write_bytes(data[:length])


def test_truncated_zip(tmp_path):
    archive = _zip(tmp_path / "t.zip", GOOD)
    _cut(archive, archive.stat().st_size // 2)
    with pytest.raises(ArchiveError, match="t.zip"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["t.zip"]


def test_corrupt_zip_data(tmp_path):
    archive = _zip(tmp_path / "c.zip", {"a.png": b"a" * 5000})
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF  # inside the stored file data: CRC check fails
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="c.zip: extraction failed"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["c.zip"]


@pytest.mark.parametrize("where", ["entry_boundary", "inside_data", "inside_header"])
def test_truncated_tar(tmp_path, where):
    archive = _tar(tmp_path / "t.tar", GOOD)
    # entry 1: header 512 + data 700 padded to 1024 -> entry 2 starts at 1536
    cut = {"entry_boundary": 1536, "inside_data": 1536 + 512 + 100, "inside_header": 1536 + 200}[where]
    _cut(archive, cut)
    with pytest.raises(ArchiveError, match="t.tar"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["t.tar"]


def test_not_an_archive_and_missing(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"hello" * 100)
    with pytest.raises(ArchiveError, match="not a readable zip or tar archive"):
        safe_extract(tmp_path / "x.zip", tmp_path / "out")
    with pytest.raises(ArchiveError, match="no such archive"):
        safe_extract(tmp_path / "y.zip", tmp_path / "out")


def test_failed_extraction_keeps_previous_output(tmp_path):
    good = _zip(tmp_path / "good.zip", GOOD)
    safe_extract(good, tmp_path / "out")
    before = _tree(tmp_path / "out")
    bad = _zip(tmp_path / "bad.zip", {"../x": b"1"})
    with pytest.raises(ArchiveError):
        safe_extract(bad, tmp_path / "out")
    assert _tree(tmp_path / "out") == before


def _refuse_extraction(monkeypatch):
    """Make every zip/tar extraction call fail: the test proves the archive was rejected before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("extraction started before the archive was rejected")

    for name in ("extract", "extractall", "_extract_member"):
        monkeypatch.setattr(zipfile.ZipFile, name, refuse)
    for name in ("extract", "extractall", "_extract_member", "_extract_one"):
        monkeypatch.setattr(tarfile.TarFile, name, refuse, raising=False)


def test_default_limits_fit_real_datasets():
    from spsagan.data import extract

    assert extract.MAX_MEMBERS >= 20_000  # OST: 10,324 images in 7 folders
    assert extract.MAX_TOTAL_BYTES >= 32 * 2**30  # Flickr2K.tar: about 20 GB
    assert extract.MAX_COMPRESSION_RATIO >= 10  # PNG/JPEG archives compress about 1:1


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_many_members_rejected_before_extraction(tmp_path, monkeypatch, kind):
    entries = {f"many/{i:03d}.png": b"x" for i in range(30)}
    archive = _zip(tmp_path / "many.zip", entries) if kind == "zip" else _tar(tmp_path / "many.tar", entries)
    _refuse_extraction(monkeypatch)
    count = "30 entries" if kind == "zip" else "at least 11 entries"
    with pytest.raises(ArchiveError, match=rf"many.{kind}: {count}, over the limit of 10 "):
        safe_extract(archive, tmp_path / "out", max_members=10)
    assert _tree(tmp_path) == [archive.name]  # no destination, no temporary folder


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_large_rejected_before_extraction(tmp_path, monkeypatch, kind):
    entries = {"big/a.png": b"a" * 3000, "big/b.png": b"b" * 3000}
    archive = _zip(tmp_path / "big.zip", entries) if kind == "zip" else _tar(tmp_path / "big.tar", entries)
    _refuse_extraction(monkeypatch)
    with pytest.raises(
        ArchiveError,
        match=rf"big.{kind}: (at least )?6,000 bytes uncompressed, over the limit of "
        r"5,000 bytes",
    ):
        safe_extract(archive, tmp_path / "out", max_total_bytes=5000)
    assert _tree(tmp_path) == [archive.name]


def test_zip_bomb_ratio_rejected_before_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.png", "w") as f:
        for _ in range(65):
            f.write(bytes(2**20))  # 65 MiB of zeros deflate to about 65 KB
    _refuse_extraction(monkeypatch)
    with pytest.raises(ArchiveError, match=r"bomb.zip: 68,157,440 bytes uncompressed from .* compression ratio"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["bomb.zip"]


LINK_CHAINS = {
    # d/b resolves to the root; d/b/../.. is "." on paper but two levels above d on disk
    "through_parent_link": ({"d/b": (tarfile.SYMTYPE, ".."), "d/a": (tarfile.SYMTYPE, "b/../..")}, "d/a"),
    # b is the root itself; b/b/.. is "b" on paper but the root's parent on disk
    "through_self_link": ({"b": (tarfile.SYMTYPE, "."), "c": (tarfile.SYMTYPE, "b/b/..")}, "c"),
    # an entry written inside a link: d/l is the root, so d/l/m -> .. is the root's parent
    "entry_inside_link": ({"d/l": (tarfile.SYMTYPE, ".."), "d/l/m": (tarfile.SYMTYPE, "..")}, "d/l/m"),
    # a hard link whose target path goes through a symlink
    "hardlink_through_link": ({"d/b": (tarfile.SYMTYPE, ".."), "h": (tarfile.LNKTYPE, "d/b/../../secret")}, "h"),
}


@pytest.mark.parametrize("case", sorted(LINK_CHAINS))
def test_symlink_chains_rejected_by_our_check(tmp_path, monkeypatch, case):
    entries, culprit = LINK_CHAINS[case]
    archive = _tar(tmp_path / "chain.tar", {"ok.png": b"1", **entries})
    _refuse_extraction(monkeypatch)  # Python's own data filter never gets a chance
    with pytest.raises(ArchiveError, match=rf"chain.tar: unsafe (link|entry) '{culprit}'.*(through|inside) link"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == ["chain.tar"]


def test_flatten_converts_and_names(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "__MACOSX").mkdir()
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    Image.fromarray(rgb).save(src / "a" / "one.bmp")
    Image.fromarray(rgb[:, :, 0]).save(src / "two.png")
    (src / "__MACOSX" / "one.png").write_bytes(b"junk")
    (src / ".hidden.png").write_bytes(b"junk")
    (src / "notes.txt").write_text("x")
    assert flatten_images(src, tmp_path / "HR") == ["one", "two"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "HR" / "one.png")), rgb)  # lossless
    assert Image.open(tmp_path / "HR" / "two.png").mode == "L"
    Image.fromarray(rgb).save(src / "a" / "two.png")  # stem clash: names get their folders
    assert flatten_images(src, tmp_path / "HR2") == ["a_one", "a_two", "two"]


# --------------------------------------------------------------------------------------------------
# Demo data


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the demo data must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_all_demo_images_are_bundled(no_network):
    import skimage.data

    for name in DEMO_IMAGES:
        img = demo_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 300, name
    left, right, _ = skimage.data.stereo_motorcycle()
    np.testing.assert_array_equal(demo_image("motorcycle_right"), right)
    assert not np.array_equal(demo_image("motorcycle_left"), demo_image("motorcycle_right"))


def test_write_demo_dataset(tmp_path, no_network):
    import skimage.data

    out = write_demo_dataset(tmp_path, "demo_test", ["chelsea", "coffee"])
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["chelsea.png", "coffee.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "HR" / "coffee.png")), skimage.data.coffee())
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["stand_in"] is True and prov["source"] == "demo" and prov["sizes_hw"]["chelsea"] == [300, 451]


def test_demo_names_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown image names \\['lena'\\]"):
        write_demo_dataset(tmp_path, "d", ["chelsea", "lena"])
    with pytest.raises(ValueError, match="without repeats"):
        write_demo_dataset(tmp_path, "d", ["chelsea", "chelsea"])
    assert os.listdir(tmp_path) == []
