"""Training seeds are a dimension of the DAG (`per_seed` stages, params key `seeds`).

The registry expands each instance per seed (seed 0 keeps its name, seed s is `<instance>_s<s>`), each job
hashes its own seed only, a GAN-like stage starts seed s from the upstream run of seed s where there is one
(else the first seed's), and "@stage.out[inst]" is the first seed's run. On a finished toy run, adding a
seed makes Snakemake and DVC plan exactly the new jobs and what reads every run.
"""

import json
import subprocess

import pytest
import yaml
from toy_pipeline import BIN, build_toy, dvc_stale, run, toy_env
from toy_pipeline import planned_jobs as planned

from spsagan.errors import ConfigError
from spsagan.pipeline.registry import load_registry, seeded_name

SNAKEMAKE, DVC, PYTHON = str(BIN / "snakemake"), str(BIN / "dvc"), str(BIN / "python")

# pre: a PSNR-like stage (two instances); gan: starts each instance from a `pre` run (`{init}`); pick reads
# the primary `pre` run of `a` (as prune reads the RRDB); score reads every gan run (as evaluate).
STAGES = {
    "package": "toypkg",
    "params_schema": "workflow/schemas/params.schema.yaml",
    "stages": {
        "pre": {
            "desc": "toy pretraining",
            "script": "steps/pre.py",
            "outs": {"out": "results/pre/{instance}/model.txt"},
            "per_seed": True,
            "instances": {"a": {}, "b": {}},
        },
        "pick": {
            "desc": "reads the primary run",
            "script": "steps/pick.py",
            "deps": {"model": "@pre.out[a]"},
            "outs": {"out": "results/pick.txt"},
        },
        "gan": {
            "desc": "toy GAN",
            "script": "steps/gan.py",
            "deps": {"init": "@pre.out[{init}]"},
            "outs": {"out": "results/gan/{instance}/model.txt"},
            "per_seed": True,
            "instances": {"x": {"init": "a"}, "y": {"init": "b", "deps": {"pick": "@pick.out"}}},
        },
        "score": {
            "desc": "reads every run",
            "script": "steps/score.py",
            "deps": {"models": "@gan.out"},
            "outs": {"out": "results/score.txt"},
        },
    },
}
SEEDS_SCHEMA = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
# Each toy step writes its params and its flags, so a test can read what each job was given.
STEP = """
import json, os, sys
args = sys.argv[1:]
out = args[args.index("--out") + 1]
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as fh:
    json.dump({"params": json.loads(args[args.index("--params") + 1]), "argv": args}, fh)
with open("ran.log", "a") as fh:  # what ran, in order (not an output: neither tool looks at it)
    fh.write(out + "\\n")
"""


def toy_params(pre=(0,), gan=(0,)) -> dict:
    params = {"profile": "demo", **{s: {"demo": {"v": 1.0}, "paper": {"v": 2.0}} for s in STAGES["stages"]}}
    for stage, seeds in (("pre", pre), ("gan", gan)):
        for profile in ("demo", "paper"):
            params[stage][profile]["seeds"] = list(seeds)
    return params


def set_seeds(repo, stage: str, seeds: list[int]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[stage]["demo"]["seeds"] = seeds
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # dvc.yaml lists the active seeds' stages: regenerated after the change (the Snakefile warns until then).
    run([PYTHON, "-m", "spsagan.pipeline", "write-dvc"], repo)


def given(repo, path: str) -> dict:
    return json.loads((repo / path).read_text())


def ran(repo) -> list[str]:
    """The outputs the toy steps wrote since the last call."""
    log = repo / "ran.log"
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    schema = {
        "stages": {
            s: {"properties": {"v": {"type": "number"}, **({"seeds": SEEDS_SCHEMA} if s in ("pre", "gan") else {})}}
            for s in STAGES["stages"]
        }
    }
    steps = {s: "" for s in STAGES["stages"]}
    repo = build_toy(tmp_path_factory.mktemp("seeds"), STAGES, toy_params(), schema, steps, {"toypkg/__init__.py": ""})
    for stage in STAGES["stages"]:
        (repo / "steps" / f"{stage}.py").write_text(STEP)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "steps"], repo)
    run([DVC, "repro", "-q"], repo)
    return repo


def registry_at(root, params: dict):
    """The toy registry loaded with `params` (steps and package written, nothing run)."""
    for folder in ("workflow", "steps", "toypkg"):
        (root / folder).mkdir(exist_ok=True)
    (root / "workflow" / "stages.yaml").write_text(yaml.safe_dump(STAGES))
    for stage in STAGES["stages"]:
        (root / "steps" / f"{stage}.py").write_text(STEP)
    return load_registry(root / "workflow" / "stages.yaml", params=params)


def test_instances_expand_per_seed_and_references_follow_the_seed(tmp_path):
    registry = registry_at(tmp_path, toy_params(pre=[3, 0], gan=[0, 1, 3]))
    pre, gan = registry.stages["pre"], registry.stages["gan"]
    assert list(pre.instances) == ["a_s3", "a", "b_s3", "b"]
    assert list(gan.instances) == ["x", "x_s1", "x_s3", "y", "y_s1", "y_s3"]
    # gan seeds 0 and 3 start from the pre run of the same seed; pre has no seed 1: its first seed's run.
    init = {inst: gan.argv(inst).split("--init ")[1].split()[0] for inst in gan.instances}
    assert init == {
        "x": "results/pre/a/model.txt",
        "x_s1": "results/pre/a_s3/model.txt",
        "x_s3": "results/pre/a_s3/model.txt",
        "y": "results/pre/b/model.txt",
        "y_s1": "results/pre/b_s3/model.txt",
        "y_s3": "results/pre/b_s3/model.txt",
    }
    # "@pre.out[a]" is the primary (first listed) seed's run; "@gan.out" every run, labelled.
    assert registry.stages["pick"].argv(None) == "--model results/pre/a_s3/model.txt --out results/pick.txt"
    labels = registry.stages["score"].argv(None).split("--models ")[1].split(" --out")[0].split()
    assert [label.split("=")[0] for label in labels] == [f"gan/{i}" for i in gan.instances]
    # Each job computes from its own seed alone.
    assert gan.job_section({"v": 1.0, "seeds": [0, 1, 3]}, "y_s1") == {"v": 1.0, "seeds": [1]}
    assert registry.stages["pick"].job_section({"v": 1.0}, None) == {"v": 1.0}
    assert seeded_name("rrdb", 0) == "rrdb" and seeded_name("rrdb", 2) == "rrdb_s2"


@pytest.mark.parametrize(
    "seeds, message",
    [([0, 0], "lists a seed more than once"), ([], "non-empty list"), ([-1], "non-empty list"), ("0", "list")],
)
def test_bad_seeds_name_the_key(tmp_path, seeds, message):
    params = toy_params()
    params["gan"]["demo"]["seeds"] = seeds
    with pytest.raises(ConfigError, match=rf"gan\.demo\.seeds: .*{message}"):
        registry_at(tmp_path, params)


@pytest.mark.slow
def test_adding_a_seed_runs_only_the_new_jobs_in_both_tools(toy):
    assert planned(toy) == {} and dvc_stale(toy) == set()
    ran(toy)

    # A second GAN seed: its two jobs (from pre seed 0: pre has no seed 1) and the stage reading every run.
    set_seeds(toy, "gan", [0, 1])
    assert planned(toy) == {"gan": 2, "score": 1}
    assert dvc_stale(toy) == {"gan@x_s1", "gan@y_s1", "score"}
    run([DVC, "repro", "-q"], toy)
    assert ran(toy) == ["results/gan/x_s1/model.txt", "results/gan/y_s1/model.txt", "results/score.txt"]
    assert planned(toy) == {} and dvc_stale(toy) == set()
    assert given(toy, "results/gan/x_s1/model.txt")["params"]["seeds"] == [1]
    assert "results/pre/a/model.txt" in given(toy, "results/gan/x_s1/model.txt")["argv"]
    assert "gan/y_s1=results/gan/y_s1/model.txt" in given(toy, "results/score.txt")["argv"]

    # A second PSNR seed: its two jobs, and the GAN seed 1 runs now start from it; seed 0 reruns nothing.
    set_seeds(toy, "pre", [0, 1])
    assert planned(toy) == {"pre": 2, "gan": 2, "score": 1}
    # DVC names the stages whose own deps changed; score follows once the gan runs have new outputs.
    assert dvc_stale(toy) == {"pre@a_s1", "pre@b_s1", "gan@x_s1", "gan@y_s1"}
    run([SNAKEMAKE, "--cores", "1"], toy)  # Snakemake alone: its onsuccess records the runs in dvc.lock
    assert ran(toy) == [
        "results/gan/x_s1/model.txt",
        "results/gan/y_s1/model.txt",
        "results/pre/a_s1/model.txt",
        "results/pre/b_s1/model.txt",
        "results/score.txt",
    ]
    assert planned(toy) == {} and dvc_stale(toy) == set()
    assert "results/pre/a_s1/model.txt" in given(toy, "results/gan/x_s1/model.txt")["argv"]
    assert given(toy, "results/pre/b_s1/model.txt")["params"] == {"v": 1.0, "seeds": [1]}

    # Dropping a seed again: nothing to train; the reader of every run reruns.
    set_seeds(toy, "gan", [0])
    assert planned(toy) == {"score": 1}


@pytest.mark.slow
def test_dvc_refuses_seeds_its_dvc_yaml_does_not_list(toy):
    """`dvc repro` after a seed was added to params.yaml but dvc.yaml was not rewritten: one clear error."""
    run([DVC, "repro", "-q"], toy)
    assert dvc_stale(toy) == set()
    # As `dvc exp run -S 'gan.demo.seeds=[0,7]'` would: the reader of every run is stale and says what to do.
    params = yaml.safe_load((toy / "params.yaml").read_text())
    params["gan"]["demo"]["seeds"] = [*params["gan"]["demo"]["seeds"], 7]
    (toy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dvc_stale(toy) == {"score"}
    proc = subprocess.run([DVC, "repro", "-q"], cwd=toy, env=toy_env(toy), capture_output=True, text=True)
    assert proc.returncode != 0
    assert "dvc.yaml does not plan the jobs of params.yaml's seeds: it lacks gan@x_s7, gan@y_s7;" in proc.stderr
    assert "write-dvc" in proc.stdout + proc.stderr
    run([PYTHON, "-m", "spsagan.pipeline", "write-dvc"], toy)
    assert dvc_stale(toy) >= {"gan@x_s7", "gan@y_s7"}
