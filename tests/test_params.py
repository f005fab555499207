"""params.yaml is validated: unknown, missing or mistyped keys stop the run and name the key."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spsagan.errors import ConfigError
from spsagan.pipeline.params import load_params, load_yaml, section_from_arg, stage_params, validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml", SCHEMA)


@pytest.fixture(scope="module")
def schemas():
    return load_yaml(SCHEMA)["stages"]


def test_committed_params_are_valid_and_profiles_have_the_same_keys(params):
    assert params["profile"] == "demo"
    for stage, section in params.items():
        if stage != "profile":
            assert section["demo"].keys() == section["paper"].keys(), stage


def test_every_registry_stage_has_a_params_section(params):
    from spsagan.pipeline.registry import load_registry

    assert set(load_registry(ROOT / "workflow" / "stages.yaml").stages) == set(params) - {"profile"}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["make_lr"]["demo"].update(crop=3), "unknown key make_lr.demo.crop"),
        (lambda p: p["pretrain_psnr"]["paper"].pop("iters"), "missing key pretrain_psnr.paper.iters"),
        (lambda p: p["train_gan"]["demo"].update(lr_g="1e-4"), "train_gan.demo.lr_g: expected number"),
        (lambda p: p.update(profile="fast"), "profile"),
        (lambda p: p.update(evaluat={}), "unknown key evaluat"),
    ],
)
def test_bad_params_name_the_key(params, schemas, mutate, expected):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate(bad, schemas)
    assert expected in str(err.value)


def test_yaml_scientific_notation_pitfall_is_explained(schemas, params):
    bad = copy.deepcopy(params)
    bad["pretrain_psnr"]["demo"]["lr"] = yaml.safe_load("x: 1e-3")["x"]  # PyYAML: the string '1e-3'
    with pytest.raises(ConfigError, match=r"1\.0e-4"):
        validate(bad, schemas)


def test_step_section_from_inline_json_and_from_file(params):
    section = stage_params(params, "make_lr")
    assert section_from_arg(json.dumps(section), "make_lr", SCHEMA) == section
    assert section_from_arg(str(ROOT / "params.yaml"), "make_lr", SCHEMA) == section
    with pytest.raises(ConfigError, match="make_lr.subimage_size"):
        section_from_arg(json.dumps({**section, "subimage_size": "big"}), "make_lr", SCHEMA)


def test_snakemake_refuses_an_unknown_key_before_running_anything(tmp_path):
    (tmp_path / "extra.yaml").write_text("make_lr:\n  demo:\n    sub_size: 3\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", str(tmp_path / "extra.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown key make_lr.demo.sub_size" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------------
# Typed configs: one name per parameter, every constraint checked before the first stage runs


def test_every_profile_section_becomes_its_typed_config(params):
    from spsagan.config import CONFIGS
    from spsagan.pipeline.params import typed_configs

    for profile in ("demo", "paper"):
        configs = typed_configs(params, profile)
        assert {s: type(c) for s, c in configs.items()} == CONFIGS


@pytest.mark.parametrize(
    "stage, key, value, expected",
    [
        ("pretrain_psnr", "crop_size", 66, "pretrain_psnr.crop_size: 66 is not a multiple of 4"),
        ("make_lr", "subimage_size", 190, "make_lr.subimage_size: 190 is not a multiple of the scale 4"),
        (
            "train_gan",
            "crop_size",
            64,
            "train_gan.crop_size: 64 is not an input size of the discriminator; allowed: 96, 128",
        ),
        ("train_gan", "seeds", [0, -1], "train_gan.demo.seeds.1: -1 is less than the minimum of 0"),
        ("train_gan", "seeds", [], "train_gan.demo.seeds: [] should be non-empty"),
        ("pretrain_psnr", "seeds", [0, 2, 0], "pretrain_psnr.seeds: [0] listed more than once"),
        ("make_seg_maps", "select_set", "nope", "make_seg_maps.select_set: 'nope' is not in make_seg_maps.sets"),
        ("prune", "crop_size", 256, "prune.crop_size: 256 is larger than the training sub-images"),
        ("evaluate", "test_sets", ["Set5"], "evaluate.test_sets: ['Set5'] not in make_lr.test_sets"),
    ],
)
def test_constraints_between_keys_and_stages_stop_before_any_stage(params, schemas, stage, key, value, expected):
    from spsagan.pipeline.params import check_configs

    bad = copy.deepcopy(params)
    bad[stage]["demo"][key] = value
    with pytest.raises(ConfigError) as err:
        validate(bad, schemas)
        check_configs(bad)
    assert expected in str(err.value)


def test_integral_floats_from_dvc_become_integers(params):
    from spsagan.config import from_section

    section = {**stage_params(params, "pretrain_psnr"), "iters": 1500.0, "batch_size": 16.0}
    cfg = from_section("pretrain_psnr", section)
    assert cfg.iters == 1500 and type(cfg.iters) is int and type(cfg.batch_size) is int
    assert type(cfg.lr) is float  # a float stays a float
    with pytest.raises(TypeError):  # and a fractional value is not rounded (the schema refuses it first)
        range(from_section("pretrain_psnr", {**section, "iters": 1500.5}).iters)


def test_duplicate_keys_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: demo\nprofile: paper\n")
    with pytest.raises(ConfigError, match="duplicate key 'profile'"):
        load_yaml(path)


def test_snakemake_refuses_a_cross_stage_problem_before_running_anything(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    (tmp_path / "extra.yaml").write_text("train_gan:\n  demo:\n    crop_size: 64\n")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--configfile", str(tmp_path / "extra.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "train_gan.crop_size: 64 is not an input size of the discriminator" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------------
# One declaration per key (spsagan.config); the schema file and docs/params.md are generated views


def _reference_tables(text: str) -> dict[str, dict[str, str]]:
    """docs/params.md read back: stage -> key -> its runtime cell."""
    tables, stage = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            stage = line[3:].strip()
            tables[stage] = {}
        elif stage and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            tables[stage][cells[0].strip("`")] = cells[2]
    return tables


def test_generated_views_are_current():
    from spsagan.pipeline.param_views import COMMAND, stale_views

    assert stale_views(ROOT) == [], f"run `{COMMAND}`"


def test_declarations_schema_reference_and_both_profiles_agree(params, schemas):
    """One source, generated views: every key is in all five places, or the test names where not."""
    from spsagan.config import CONFIGS, declared, runtime_keys

    reference = _reference_tables((ROOT / "docs" / "params.md").read_text(encoding="utf-8"))
    assert list(CONFIGS) == list(schemas) == list(reference) == [k for k in params if k != "profile"]
    for stage, cls in CONFIGS.items():
        keys = set(declared(cls))
        assert set(schemas[stage]["properties"]) == keys, stage
        assert set(reference[stage]) == keys, stage
        assert {k for k, cell in reference[stage].items() if cell} == set(runtime_keys(stage)), stage
        for profile in ("demo", "paper"):
            assert set(params[stage][profile]) == keys, (stage, profile)


def test_every_declaration_has_a_one_line_doc():
    from spsagan.config import CONFIGS, declared

    for stage, cls in CONFIGS.items():
        for name, f in declared(cls).items():
            doc = f.metadata.get("doc", "")
            assert doc and "\n" not in doc and len(doc) < 160, f"{stage}.{name}"


def test_runtime_keys_for_the_launcher():
    from spsagan.config import runtime_keys

    assert set(runtime_keys("pretrain_psnr")) == {"gpus", "workers", "log_every", "ckpt_every", "compile"}
    assert runtime_keys("train_gan") == runtime_keys("pretrain_psnr")
    assert set(runtime_keys("download_data")) == {"downloads_dir", "mirror"}
    assert runtime_keys("evaluate") == ("max_attention_mb",)
    assert runtime_keys("make_lr") == () and runtime_keys("no_such_stage") == ()


def test_a_changed_declaration_makes_the_views_stale(tmp_path, monkeypatch):
    import dataclasses

    from spsagan import config
    from spsagan.pipeline import param_views

    assert set(param_views.write_views(tmp_path)) == {param_views.SCHEMA_FILE, param_views.REFERENCE_FILE}
    assert param_views.stale_views(tmp_path) == []
    field = config.declared(config.PruneConfig)["batches"]
    monkeypatch.setitem(field.metadata["rules"]["bounds"], "ge", 2)  # metadata is read-only; its dicts are not
    assert param_views.stale_views(tmp_path) == [param_views.SCHEMA_FILE, param_views.REFERENCE_FILE]
    assert "integer ≥ 2" in param_views.reference_text()
    assert dataclasses.fields(config.PruneConfig)  # untouched otherwise


def test_schema_and_reference_are_rendered_from_the_declarations():
    from spsagan.pipeline.param_views import describe_type, stage_schemas

    props = stage_schemas()
    assert props["train_gan"]["properties"]["adam_betas"] == {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "minItems": 2,
        "maxItems": 2,
        "description": "Adam's beta1 and beta2",
    }
    assert props["train_gan"]["properties"]["channels_last"]["enum"] == ["auto", True, False]
    evaluate = props["evaluate"]["properties"]
    assert describe_type(evaluate["timing_images"]) == "`all` or integer ≥ 1"
    assert describe_type(props["train_gan"]["properties"]["mix"]) == "map of string → integer ≥ 1, ≥ 1 entry"
    assert describe_type(props["make_seg_maps"]["properties"]["min_fraction"]) == "number in [0, 1]"


def test_a_missing_key_message_says_what_the_key_is(params, schemas):
    bad = copy.deepcopy(params)
    bad["prune"]["paper"].pop("batches")
    with pytest.raises(ConfigError, match=r"missing key prune\.paper\.batches \(K: batches of training crops"):
        validate(bad, schemas)


def test_the_batch_split_rule_is_one_function():
    """config checks it for gpus, the sampler for its world size: the same rule and the same words."""
    from spsagan.config import batch_share

    assert batch_share(16, 4) == 4
    with pytest.raises(ConfigError, match=r"^train_gan\.batch_size: 6 is not divisible by train_gan\.gpus 4 "):
        batch_share(6, 4, "train_gan")
    with pytest.raises(ConfigError, match=r"^batch_size: 6 is not divisible by gpus 4 "):
        batch_share(6, 4)


@pytest.mark.parametrize(
    "size, by_torchrun, expected",
    [
        (1, False, "pretrain_psnr.gpus is 2, but this process was not started by torchrun"),
        (4, True, "pretrain_psnr.gpus is 2, but torchrun started 4 processes (WORLD_SIZE)"),
    ],
)
def test_the_world_is_checked_against_gpus_once(params, size, by_torchrun, expected):
    import dataclasses

    from spsagan.config import from_section

    cfg = dataclasses.replace(from_section("pretrain_psnr", stage_params(params, "pretrain_psnr")), gpus=2)
    cfg.check_world(2, True)
    with pytest.raises(ConfigError) as err:
        cfg.check_world(size, by_torchrun)
    assert expected in str(err.value) and "--nproc_per_node 2 steps/pretrain_psnr.py" in str(err.value)


def test_params_views_command(capsys):
    from spsagan.pipeline.__main__ import main

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["check-params-views"]) == 0
    finally:
        os.chdir(cwd)
    assert "current" in capsys.readouterr().out


def test_gpus_walks_through_at_most_six_files():
    """Issue 18's measure (`grep -rln gpus spsagan steps workflow params.yaml`): params.yaml, its
    declaration and checks (spsagan/config.py), the generated schema, the launcher and the GPU
    profiles name it; the training code takes its world from torchrun and passes the config whole."""
    roots = [ROOT / "spsagan", ROOT / "steps", ROOT / "workflow"]
    files = [ROOT / "params.yaml"] + [p for r in roots for p in r.rglob("*") if p.is_file() and p.suffix != ".pyc"]
    naming = sorted(str(p.relative_to(ROOT)) for p in files if "gpus" in p.read_text(encoding="utf-8", errors="ignore"))
    assert len(naming) <= 6, naming
