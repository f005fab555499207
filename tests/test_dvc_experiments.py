"""DVC experiments compare: each experiment's metrics and plots are read back for any revision.

A toy copy of the repository (the project's own Snakefile, registry code and dvc.yaml generator;
tiny stages shaped like the real ones: a dvclive folder and a small metrics file per training
instance, an evaluation that writes a big summary under results/ and the demo's metric names under
metrics/) runs two experiments: `dvc exp show`, `dvc metrics diff` and `dvc plots diff` read both, and
plain `dvc exp show --only-changed` shows every changed number in 200 columns.
Also: params.yaml is in the style DVC writes back (a `-S` changes one line), the dry run answers
what an experiment would rerun, and the offline plots template leaves no CDN in the page.
"""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TOY_STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "prep": {"desc": "toy data", "script": "steps/toy.py", "outs": {"out": "results/prep/"}},
        "train": {
            "desc": "toy GAN training",
            "script": "steps/toy.py",
            "deps": {"data": "@prep.out"},
            "outs": {"model": "results/train/{instance}/model.txt"},
            "metrics": {"metrics": "metrics/train/{instance}.json"},
            "live": "results/train/{instance}/live",
            "instances": {"esrgan": {}, "fa": {}, "spsa": {}, "spsagan": {}},  # the demo's four GAN runs
        },
        # not "evaluate": a toy section named like a real stage would be checked as the real one
        "score": {
            "desc": "toy evaluation",
            "script": "steps/toy.py",
            "deps": {"models": "@train.model"},
            "outs": {"summary": "results/score/summary.json"},
            "metrics": {"metrics": "metrics/score.json"},
        },
    },
}
TRAINED = list(TOY_STAGES["stages"]["train"]["instances"])
TOY_SCHEMA = {"stages": {name: {"properties": {"lr": {"type": "number"}}} for name in TOY_STAGES["stages"]}}
# One script for every toy stage. Training writes a model, a dvclive folder (metrics.json,
# plots/metrics/train/l1.tsv) and {method: {params}}, as the real steps do; scoring writes a big
# summary under results/ and {method: {psnr, niqe}} (steps/evaluate.py's `compared_metrics`) under
# the demo's names: bicubic and the PSNR models stay, the four GAN methods follow the training rate.
TOY_STEP = """
import argparse, json, os
parser = argparse.ArgumentParser()
for flag in ("--params", "--profile", "--out", "--data", "--model", "--live", "--metrics", "--summary"):
    parser.add_argument(flag)
parser.add_argument("--models", nargs="+")
args = parser.parse_args()
lr = json.loads(args.params)["lr"]
def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
if args.out:
    write(os.path.join(args.out, "data.txt"), "data")
if args.model:
    method = {"fa": "+fa", "spsa": "+spsa"}.get(os.path.basename(os.path.dirname(args.model)),
                                                  os.path.basename(os.path.dirname(args.model)))
    write(args.model, json.dumps({"method": method, "lr": lr}))
    loss = [round(1.0 / (1 + step * lr), 4) for step in range(4)]
    write(os.path.join(args.live, "metrics.json"), json.dumps({"train": {"l1": loss[-1]}, "step": 3}))
    write(os.path.join(args.live, "plots", "metrics", "train", "l1.tsv"),
          "step\\tl1\\n" + "".join(f"{s}\\t{v}\\n" for s, v in enumerate(loss)))
    write(args.metrics, json.dumps({method: {"params": 16697}}))
if args.models:
    lr = {m["method"]: m["lr"] for m in (json.load(open(i.split("=", 1)[1])) for i in args.models)}
    psnr = {"bicubic": 24.1234, "rrdb_psnr": 25.4321, "rrsb_psnr": 25.3456, "esrgan": 21.0123 + lr["esrgan"],
            "+fa": 21.5123 + lr["+fa"], "+spsa": 21.7123 + lr["+spsa"], "spsagan": 21.0123 + lr["spsagan"]}
    write(args.summary, json.dumps({"methods": psnr, "costs": {"many": list(range(100))}}))
    write(args.metrics, json.dumps({m: {"psnr": round(v, 4), "niqe": round(30.1234 - v, 4)} for m, v in psnr.items()}))
"""


def env() -> dict:
    # PYTHONPATH: the toy's Snakefile imports the project's registry code from this checkout.
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }


def run(cmd, cwd) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def dvc(*args, cwd) -> str:
    return run([str(BIN / "dvc"), *args], cwd)


def git(*args, cwd) -> str:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy repository with its baseline results committed (dvc.lock and metrics/)."""
    repo = tmp_path_factory.mktemp("toy")
    (repo / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "Snakefile", repo / "workflow" / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "profiles", repo / "workflow" / "profiles")
    shutil.copytree(ROOT / "workflow" / "plots", repo / "workflow" / "plots")  # training-curve template
    for name in (".dvcignore", ".gitignore"):  # results/ is git-ignored, metrics/ is not
        shutil.copy(ROOT / name, repo / name)
    (repo / "workflow" / "stages.yaml").write_text(yaml.safe_dump(TOY_STAGES))
    (repo / "workflow" / "schemas" / "params.schema.yaml").write_text(yaml.safe_dump(TOY_SCHEMA))
    params = {"profile": "demo", **{s: {"demo": {"lr": 1.0}, "paper": {"lr": 2.0}} for s in TOY_STAGES["stages"]}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "steps").mkdir()
    (repo / "steps" / "toy.py").write_text(TOY_STEP)
    (repo / "toypkg").mkdir()
    (repo / "toypkg" / "__init__.py").write_text("")
    run([sys.executable, "-m", "spsagan.pipeline", "write-dvc"], repo)
    git("init", "-q", cwd=repo)
    dvc("init", "-q", cwd=repo)
    dvc("config", "core.analytics", "false", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "toy", cwd=repo)
    # The baseline as a researcher makes it: one Snakemake run, recorded by DVC without rerunning.
    run([str(BIN / "snakemake"), "--cores", "1", "--quiet"], repo)
    dvc("commit", "-f", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "baseline results", cwd=repo)
    assert git("status", "--porcelain", cwd=repo) == ""
    return repo


@pytest.fixture(scope="module")
def experiments(toy):
    """Two experiments from the committed baseline: the training rate changed twice."""
    for name, lr in (("lr2", "2.0"), ("lr3", "3.0")):
        dvc("exp", "run", "-q", "-n", name, "-S", f"train.demo.lr={lr}", cwd=toy)
    return toy


def exp_rows(shown: list) -> dict:
    """{experiment name: {metrics file: its data}} from `dvc exp show --json`."""
    rows = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                rows[rev["name"]] = {path: m.get("data") for path, m in rev["data"]["metrics"].items()}
    return rows


@pytest.mark.slow
def test_exp_show_has_both_experiments_metrics(experiments):
    rows = exp_rows(json.loads(dvc("exp", "show", "--json", cwd=experiments)))
    assert set(rows) == {"lr2", "lr3"}
    for name, lr in (("lr2", 2.0), ("lr3", 3.0)):
        # Each experiment's own numbers, read from its commit: `exp run` commits the metrics/ files.
        assert rows[name]["metrics/score.json"]["spsagan"]["psnr"] == round(21.0123 + lr, 4)
        assert rows[name]["metrics/train/esrgan.json"] == {"esrgan": {"params": 16697}}
        assert set(rows[name]) == {"metrics/score.json", *(f"metrics/train/{i}.json" for i in TRAINED)}


@pytest.mark.slow
def test_metrics_and_plots_diff_between_experiments(experiments):
    diff = json.loads(dvc("metrics", "diff", "lr2", "lr3", "--json", cwd=experiments))
    assert diff["metrics/score.json"]["spsagan.psnr"]["old"] == 23.0123
    assert diff["metrics/score.json"]["spsagan.psnr"]["new"] == 24.0123
    assert "bicubic.psnr" not in diff["metrics/score.json"]  # unchanged: not listed
    # dvclive's plots are under the git-ignored results/: DVC reads each experiment's copy from its cache.
    plots = json.loads(dvc("plots", "diff", "lr2", "lr3", "--json", cwd=experiments))
    assert not plots.get("errors"), plots.get("errors")
    curve = plots["data"]["results/train/spsagan/live/plots/metrics/train/l1.tsv"][0]["content"]["data"]["values"]
    at_step_1 = {(row["rev"], float(row["l1"])) for row in curve if int(row["step"]) == 1}  # x: the logged step
    assert at_step_1 == {("lr2", 0.3333), ("lr3", 0.25)}


@pytest.mark.slow
def test_plain_exp_show_only_changed_fits_200_columns(experiments):
    """After two GAN-rate experiments, plain `dvc exp show --only-changed` on a 200-column screen shows
    every number that changed (each GAN method's PSNR and NIQE) and the changed param; only the data
    dependencies' hashes (results/..., DVC's last columns) are folded into '…'."""
    view = dvc("exp", "show", "--only-changed", "--no-pager", cwd=experiments)
    lines = [line.rstrip() for line in view.splitlines()]
    assert max(map(len, lines)) <= 200, view
    header = next(line for line in lines if "Experiment" in line).split()
    changed = [f"{m}.{k}" for m in ("esrgan", "+fa", "+spsa", "spsagan") for k in ("psnr", "niqe")]
    shown = [*changed, "train.demo.lr"]
    assert header[:2] == ["Experiment", "Created"] and header[2 : 2 + len(shown)] == shown, view
    folded = header[2 + len(shown) :]  # what does not fit: dependency hashes, then '…'
    assert folded[-1] == "…" and all(h.startswith("results/") for h in folded[:-1]), view
    assert "bicubic" not in view and "params" not in view  # unchanged: left out
    assert "lr2" in view and "lr3" in view
    assert width(dvc("metrics", "diff", "lr2", "lr3", cwd=experiments)) <= 100


def width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


# --------------------------------------------------------------------------------------------------
# What an experiment would rerun (DVC's own `dvc exp run --dry` fails: see spsagan/pipeline/dryrun.py)


@pytest.mark.slow
def test_dry_run_names_the_changed_stage_and_its_downstream_only(toy):
    params = (toy / "params.yaml").read_text()
    # 5.0e-5 is written `5e-05`, text to PyYAML: the Snakefile reads it as the number DVC sees.
    out = run([sys.executable, "-m", "spsagan.pipeline", "dry-run", "-S", "train.demo.lr=5.0e-5"], toy)
    jobs = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    assert jobs == {"train": len(TRAINED), "score": 1, "all": 1, "total": len(TRAINED) + 2}, out
    assert "params have changed since last execution:\n        train" in out  # the reason, under its header
    assert (toy / "params.yaml").read_text() == params  # nothing written


def test_dry_run_refuses_an_unknown_key_as_dvc_does(tmp_path):
    from spsagan.pipeline.dryrun import overridden_params

    with pytest.raises(Exception, match="set-param") as err:
        overridden_params(["train_gan.demo.lr_gg=2.0e-4"], ROOT / "params.yaml", tmp_path / "p.yaml")
    assert "train_gan.demo.lr_gg" in str(err.value.__cause__)


# --------------------------------------------------------------------------------------------------
# params.yaml in the style DVC writes back


def test_params_yaml_is_kept_by_dvc_and_a_set_param_changes_one_line(tmp_path):
    """`dvc exp run -S` rewrites params.yaml with ruamel: every list, string and number it touches
    comes out in its own style (block lists, '' for empty strings). A no-op override rewrites every
    value, so an unchanged file means params.yaml is already in that style; a real one changes one line."""
    from spsagan.pipeline.dryrun import overridden_params

    original = (ROOT / "params.yaml").read_text()
    assert overridden_params(["profile=demo"], ROOT / "params.yaml", tmp_path / "same.yaml").read_text() == original
    for override, line in (
        ("train_gan.demo.lr_g=2.0e-4", "    lr_g: 0.0002"),
        ("make_lr.paper.min_size=64", "    min_size: 64"),
        ("render_reports.paper.attention_query=[0.25,0.5]", "    - 0.25"),
    ):
        changed = overridden_params([override], ROOT / "params.yaml", tmp_path / "p.yaml").read_text().splitlines()
        before = original.splitlines()
        assert len(changed) == len(before)
        differ = [(a, b) for a, b in zip(before, changed) if a != b]
        assert len(differ) == 1 and differ[0][1] == line, (override, differ)


def test_dvc_writes_a_small_value_in_a_form_pyyaml_reads_as_text(tmp_path):
    """Why the Snakefile's `read_numbers` exists: `-S train_gan.demo.lr_g=5.0e-5` is written `5e-05`,
    which PyYAML (Snakemake's config loader) reads as a string. The dry-run test runs it end to end."""
    from spsagan.pipeline.dryrun import overridden_params

    written = overridden_params(["train_gan.demo.lr_g=5.0e-5"], ROOT / "params.yaml", tmp_path / "p.yaml")
    assert "    lr_g: 5e-05" in written.read_text().splitlines()
    assert yaml.safe_load(written.read_text())["train_gan"]["demo"]["lr_g"] == "5e-05"


# --------------------------------------------------------------------------------------------------
# Offline plots: `make plots` writes a template with DVC's plotting libraries inlined


def fake_registry(root: Path, libraries, corrupt: str | None = None) -> str:
    """An npm registry on disk (file:// URLs): metadata and tarballs for each (name, version)."""
    root.mkdir(parents=True)
    for name, version in libraries:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            code = f"window.fake_{name.replace('-', '_')} = '</script>';"  # a `</script>` inside, to be escaped
            for path, text in (
                ("package/package.json", json.dumps({"jsdelivr": f"build/{name}.min.js"})),
                (f"package/build/{name}.min.js", code),
            ):
                data = text.encode()
                info = tarfile.TarInfo(path)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        tarball = root / f"{name}-{version}.tgz"
        tarball.write_bytes(buf.getvalue())
        digest = base64.b64encode(hashlib.sha512(buf.getvalue() + (b"x" if name == corrupt else b"")).digest())
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / version).write_text(
            json.dumps({"dist": {"tarball": tarball.as_uri(), "integrity": "sha512-" + digest.decode()}})
        )
    return root.as_uri()


@pytest.mark.slow
def test_offline_plots_page_loads_nothing_from_the_internet(experiments, tmp_path):
    from spsagan.pipeline.plots import dvc_libraries, write_offline_template

    libraries = dvc_libraries()
    assert [n for n, _ in libraries] == ["vega", "vega-lite", "vega-embed"]
    registry = fake_registry(tmp_path / "registry", libraries)
    template = write_offline_template(tmp_path / "template.html", tmp_path / "npm", registry)
    assert "{plot_divs}" in template.read_text() and "{scripts}" not in template.read_text()
    dvc("plots", "diff", "lr2", "lr3", "--html-template", str(template), "-o", str(tmp_path / "page"), cwd=experiments)
    page = (tmp_path / "page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and 'src="http' not in page
    for name, _ in libraries:  # inlined, with a `</script>` in the code escaped
        assert f"window.fake_{name.replace('-', '_')} = '<\\/script>';" in page
    assert page.count("vegaEmbed('#") == len(TRAINED)  # one l1 curve per training instance, both experiments in each

    with pytest.raises(ValueError, match="sha512"):
        write_offline_template(
            tmp_path / "t2.html", tmp_path / "npm2", fake_registry(tmp_path / "bad", libraries, corrupt="vega-lite")
        )


def test_dvc_yaml_commits_metrics_and_caches_what_git_ignores():
    from spsagan.pipeline.registry import dvc_yaml, load_registry

    stages = yaml.safe_load(dvc_yaml(load_registry(ROOT / "workflow" / "stages.yaml")))["stages"]
    evaluate, train = stages["evaluate"], stages["train_gan"]["do"]
    assert evaluate["metrics"] == [{"metrics/evaluate.json": {"cache": False, "persist": True}}]
    assert {"results/evaluate/summary.json": {"persist": True}} in evaluate["outs"]  # no longer a metric
    assert train["metrics"] == [{"metrics/train_gan/${key}.json": {"cache": False, "persist": True}}]
    assert {"results/train_gan/${key}/live/metrics.json": {"persist": True}} in train["outs"]  # dvclive's summary
    # cached (under results/); plotted against the logged step, through the template that shows small rates
    plot = {"persist": True, "x": "step", "template": "workflow/plots/training_curve.json"}
    assert train["plots"] == [{"results/train_gan/${key}/live/plots": plot}]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for entry in [*body.get("metrics", []), *body.get("plots", [])]:
            ((path, spec),) = entry.items()
            assert spec.get("cache", True) == (not path.startswith("metrics/")), (name, path)
