"""Content decides what reruns, in Snakemake and in DVC, on a finished toy run.

A stage that reruns and writes the same bytes (a folder or a file) makes nothing downstream stale; a
module edit reruns exactly the stages that can import it (a report-only module: the report stage; a
metric no training step imports: no training stage); and the user's own folder named in params is an
input: a changed, added or removed file reruns the stage that imports it and what follows.
The real registry's closures are checked for the same two modules.
"""

import json
import shutil

import pytest
from toy_pipeline import BIN, GIT, ROOT, TOY_PACKAGE, TOY_STAGES, build_toy, dvc_stale, run, snakemake_jobs

from spsagan.pipeline.registry import load_registry

SNAKEMAKE, DVC = str(BIN / "snakemake"), str(BIN / "dvc")

# The toy's metrics package re-exports lazily, as spsagan.metrics should: training imports psnr only,
# so niqe (and the report's figures) are not training code.
PACKAGE = {
    **TOY_PACKAGE,
    "toypkg/metrics/__init__.py": (
        "from spsagan._lazy import lazy_exports\n"
        '_LAZY = {"psnr": "toypkg.metrics.psnr", "niqe": "toypkg.metrics.niqe"}\n'
        "__getattr__ = lazy_exports(__name__, _LAZY)\n"
    ),
    "toypkg/metrics/psnr.py": "def psnr():\n    return 0\n",
    "toypkg/metrics/niqe.py": "def niqe():\n    return 0\n",
    "toypkg/figures.py": "def draw():\n    return 0\n",
}
STEPS = {
    "fetch": "from toypkg.io import *\n",
    "side": "import toypkg\n",
    "train": "from toypkg.train import fit\nfrom toypkg.metrics import psnr\n",
    "report": "from toypkg import figures, report\nfrom toypkg.metrics import niqe\n",
}
DVC_NAMES = {"fetch": {"fetch"}, "side": {"side"}, "train": {"train@small", "train@big"}, "report": {"report"}}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("content"), steps=STEPS, package=PACKAGE)


def both_stale(repo) -> tuple[set, set]:
    """(Snakemake's jobs, DVC's stale stages), each as registry stage names."""
    dvc = {name.split("@")[0] for name in dvc_stale(repo)}
    return snakemake_jobs(repo), dvc


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, stale",
    [("figures.py", {"report"}), ("metrics/niqe.py", {"report"}), ("metrics/psnr.py", {"train", "report"})],
)
def test_a_module_edit_reruns_only_the_stages_that_import_it(toy, module, stale):
    path = toy / "toypkg" / module
    original = path.read_text()
    path.write_text(original + "# an edit\n")
    try:
        jobs, dvc = both_stale(toy)
        assert jobs == stale  # Snakemake: the importers and what follows them
        assert dvc == (stale if module != "metrics/psnr.py" else {"train"})  # DVC: the importers
    finally:
        path.write_text(original)
    assert both_stale(toy) == (set(), set())


@pytest.mark.slow
@pytest.mark.parametrize("stage, target", [("fetch", "results/fetch"), ("train", "results/train/big/model.txt")])
def test_a_forced_rerun_that_writes_the_same_bytes_reruns_nothing_downstream(toy, stage, target):
    """fetch writes a folder (judged by its contents file), train a 2 MB file (judged by checksum)."""
    run([SNAKEMAKE, "--cores", "1", "--forcerun", stage, "--allowed-rules", stage, target], toy)
    assert both_stale(toy) == (set(), set())
    run([DVC, "repro", "-f", "-s", f"{stage}@big" if stage == "train" else stage], toy)
    assert both_stale(toy) == (set(), set())


@pytest.mark.slow
def test_a_folder_that_changed_still_reruns_what_reads_it(toy):
    """The folder itself is ancient() to Snakemake: only its contents file says it changed."""
    step = toy / "steps" / "fetch.py"
    original = step.read_text()
    step.write_text(original + "\nopen(os.path.join(args.out, 'extra.txt'), 'w').write('new')\n")
    try:
        run([SNAKEMAKE, "--cores", "1", "--allowed-rules", "fetch", "results/fetch"], toy)
        assert snakemake_jobs(toy) == {"train", "report"}
    finally:
        step.write_text(original)
        run([SNAKEMAKE, "--cores", "1"], toy)
        run([DVC, "commit", "-f", "-q"], toy)
    assert both_stale(toy) == (set(), set())


# --------------------------------------------------------------------------------------------------
# The user's own folder (`user_data` in the registry) is an input of the stage that reads it

# fetch copies each folder of params `local` into its output, as download_data imports a `local:` folder.
IMPORT_STEP = """
import json, os, shutil, sys
_params = json.loads(sys.argv[sys.argv.index("--params") + 1])
for _name, _folder in _params.get("local", {}).items():
    shutil.copytree(_folder, os.path.join(sys.argv[sys.argv.index("--out") + 1], _name))
"""


@pytest.fixture(scope="module")
def user_toy(tmp_path_factory):
    base = tmp_path_factory.mktemp("user")
    mine = base / "mine"
    (mine / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        (mine / name).write_bytes(name.encode())
    stages = json.loads(json.dumps(TOY_STAGES))
    stages["stages"]["fetch"]["user_data"] = ["local"]
    params = {"profile": "demo", **{s: {"demo": {"v": 1.0}, "paper": {"v": 2.0}} for s in stages["stages"]}}
    params["fetch"] = {"demo": {"v": 1.0, "local": {"mine": str(mine)}}, "paper": {"v": 2.0, "local": {}}}
    schema = {"stages": {s: {"properties": {"v": {"type": "number"}}} for s in stages["stages"]}}
    schema["stages"]["fetch"]["properties"]["local"] = {"type": "object"}
    repo = build_toy(base / "repo", stages=stages, params=params, schema=schema, steps={"fetch": IMPORT_STEP})
    return repo, mine


@pytest.mark.slow
@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_a_changed_user_file_reruns_its_importer_and_what_follows(user_toy, change):
    repo, mine = user_toy
    assert str(mine) in (repo / "dvc.yaml").read_text()  # write-dvc listed the folder of the active profile
    path = mine / {"changed": "a.png", "added": "sub/d.png", "removed": "b.png"}[change]
    if change == "removed":
        path.unlink()
    else:
        path.write_bytes(b"new pixels")
    assert both_stale(repo) == ({"fetch", "train", "report"}, {"fetch"})
    run([DVC, "repro", "-q"], repo)
    copy = repo / "results" / "fetch" / "mine"
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == sorted(
        p.relative_to(mine).as_posix() for p in mine.rglob("*")
    )
    assert both_stale(repo) == (set(), set())


@pytest.mark.slow
def test_a_new_user_folder_asks_for_write_dvc(user_toy, tmp_path):
    repo, mine = user_toy
    other = tmp_path / "other"
    shutil.copytree(mine, other)
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace(str(mine), str(other)))
    try:
        out = run([SNAKEMAKE, "-n"], repo)
        assert "python -m spsagan.pipeline write-dvc" in out
        assert "fetch" in snakemake_jobs(repo)  # another folder: a changed set of inputs
    finally:
        (repo / "params.yaml").write_text(params)
    assert "write-dvc" not in run([SNAKEMAKE, "-n"], repo)


# --------------------------------------------------------------------------------------------------
# The real registry


def real_code() -> dict[str, set[str]]:
    return {s.name: set(s.code) for s in load_registry(ROOT / "workflow" / "stages.yaml")}


TRAINING = ("pretrain_psnr", "train_gan")
NIQE = "spsagan/metrics/no_reference.py"  # niqe() (spsagan.metrics re-exports it lazily)


def test_real_figures_module_is_report_code_not_training_code():
    code = real_code()
    assert "spsagan/reports/figures.py" in code["render_reports"]
    assert not any("spsagan/reports/figures.py" in code[s] for s in TRAINING)


def test_real_niqe_is_no_training_stage_code():
    code = real_code()
    assert NIQE in code["evaluate"]
    assert [s for s in TRAINING if NIQE in code[s]] == []


def test_real_figures_module_is_only_report_code():
    code = real_code()
    assert [s for s, files in code.items() if "spsagan/reports/figures.py" in files] == ["render_reports"]


def test_contents_file_lists_every_file_and_is_stable(tmp_path):
    from spsagan.pipeline.contents import contents_file, write_contents

    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "out" / "sub" / "b.txt").write_text("b")
    (tmp_path / "out" / ".snakemake_timestamp").write_text("")
    first = write_contents(tmp_path / "out").read_bytes()
    assert set(json.loads(first)["files"]) == {"a.txt", "sub/b.txt"}
    assert write_contents(tmp_path / "out").read_bytes() == first
    (tmp_path / "out" / "a.txt").write_text("A")
    assert write_contents(tmp_path / "out").read_bytes() != first
    assert contents_file("results/x/") == "results/x.contents.json"


# --------------------------------------------------------------------------------------------------
# The real download_data step importing a `local:` folder (Set5: five images) in a toy project


@pytest.fixture(scope="module")
def set5_toy(tmp_path_factory):
    import numpy as np
    import yaml
    from PIL import Image

    base = tmp_path_factory.mktemp("set5")
    mine = base / "mine"
    mine.mkdir()
    for i in range(5):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(mine / f"img{i}.png")
    stages = {
        "package": "toypkg",
        "params_schema": "workflow/schemas/params.schema.yaml",
        "stages": {
            "download_data": {
                "desc": "the real step",
                "script": "steps/download_data.py",
                "outs": {"out": "results/download_data/"},
                "user_data": ["local"],
            },
            "report": {
                "desc": "toy downstream",
                "script": "steps/report.py",
                "deps": {"data": "@download_data.out"},
                "outs": {"out": "results/report.txt"},
            },
        },
    }
    section = {
        "source": "download",
        "datasets": ["Set5"],
        "demo_split": {},
        "downloads_dir": "downloads",
        "mirror": "",
        "local": {"Set5": str(mine)},
    }
    real = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())["stages"]
    params = {"profile": "demo", "download_data": {"demo": section, "paper": section}}
    params["report"] = {"demo": {"v": 1.0}, "paper": {"v": 1.0}}
    schema = {"stages": {"download_data": real["download_data"], "report": {"properties": {"v": {"type": "number"}}}}}
    repo = build_toy(base / "repo", stages=stages, params=params, schema=schema, steps={}, package={}, repro=False)
    shutil.copy(ROOT / "steps" / "download_data.py", repo / "steps" / "download_data.py")
    run([*GIT, "commit", "-qam", "the real step"], repo)
    run([DVC, "repro", "-q"], repo)
    return repo, mine


@pytest.mark.slow
def test_changing_one_image_of_a_local_folder_reruns_download_data_and_what_follows(set5_toy):
    from PIL import Image

    repo, mine = set5_toy
    assert both_stale(repo) == (set(), set())
    provenance = repo / "results" / "download_data" / "Set5" / "provenance.json"
    assert json.loads(provenance.read_text())["sources"]["img3.png"] == str(mine / "img3.png")
    Image.new("RGB", (16, 16), (255, 0, 0)).save(mine / "img3.png")
    assert both_stale(repo) == ({"download_data", "report"}, {"download_data"})
    run([SNAKEMAKE, "--cores", "1"], repo)
    hr = repo / "results" / "download_data" / "Set5" / "HR" / "img3.png"
    assert hr.read_bytes() == (mine / "img3.png").read_bytes()
    run([DVC, "commit", "-f", "-q"], repo)
    assert both_stale(repo) == (set(), set())
