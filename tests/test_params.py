"""params.yaml is validated: unknown, missing or mistyped keys stop the run and name the key."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spsagan.pipeline.params import ParamsError, load_params, load_yaml, section_from_arg, stage_params, validate

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


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["make_lr"]["demo"].update(crop=3), "unknown key make_lr.demo.crop"),
    (lambda p: p["pretrain_psnr"]["paper"].pop("iters"), "missing key pretrain_psnr.paper.iters"),
    (lambda p: p["train_gan"]["demo"].update(lr_g="1e-4"), "train_gan.demo.lr_g: expected number"),
    (lambda p: p.update(profile="fast"), "profile"),
    (lambda p: p.update(evaluat={}), "unknown key evaluat"),
])
def test_bad_params_name_the_key(params, schemas, mutate, expected):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ParamsError) as err:
        validate(bad, schemas)
    assert expected in str(err.value)


def test_yaml_scientific_notation_pitfall_is_explained(schemas, params):
    bad = copy.deepcopy(params)
    bad["pretrain_psnr"]["demo"]["lr"] = yaml.safe_load("x: 1e-3")["x"]  # PyYAML: the string '1e-3'
    with pytest.raises(ParamsError, match=r"1\.0e-4"):
        validate(bad, schemas)


def test_step_section_from_inline_json_and_from_file(params):
    section = stage_params(params, "make_lr")
    assert section_from_arg(json.dumps(section), "make_lr", SCHEMA) == section
    assert section_from_arg(str(ROOT / "params.yaml"), "make_lr", SCHEMA) == section
    with pytest.raises(ParamsError, match="make_lr.subimage_size"):
        section_from_arg(json.dumps({**section, "subimage_size": "big"}), "make_lr", SCHEMA)


def test_snakemake_refuses_an_unknown_key_before_running_anything(tmp_path):
    (tmp_path / "extra.yaml").write_text("make_lr:\n  demo:\n    sub_size: 3\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--configfile", str(tmp_path / "extra.yaml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown key make_lr.demo.sub_size" in proc.stdout + proc.stderr
