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


def test_typed_config_fields_are_exactly_the_schema_keys(schemas):
    import dataclasses

    from spsagan.config import CONFIGS

    assert set(CONFIGS) == set(schemas)
    for stage, cls in CONFIGS.items():
        assert {f.name for f in dataclasses.fields(cls)} == set(schemas[stage]["properties"]), stage


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
        ("train_gan", "seed", -1, "train_gan.demo.seed: -1 is less than the minimum of 0"),
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
