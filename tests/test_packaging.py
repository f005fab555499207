"""Packaging stays coherent: conda's environment.yml lists what pyproject.toml installs."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = {r for r in pip_section if not r.startswith("-")}
    assert conda_reqs == set(project["dependencies"]), "environment.yml and pyproject.toml differ"


def test_heavy_gpu_packages_stay_optional():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert not core & {"torchvision", "pyiqa", "lpips", "timm", "piq"}


def test_dvc_analytics_off_and_snakemake_marker_ignored():
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"analytics\s*=\s*false", config)
    assert ".snakemake_timestamp" in (ROOT / ".dvcignore").read_text()
