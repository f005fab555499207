"""The stage registry (`workflow/stages.yaml`): the pipeline DAG, written once.

Snakemake executes it (`workflow/Snakefile` builds one rule per stage from it) and DVC versions it
(`dvc.yaml` is rendered from it by `python -m spsagan.pipeline write-dvc`). Each DVC stage's command
runs Snakemake for that stage's outputs, so both tools agree on what is stale: Snakemake records its
metadata for every output, and DVC hashes the same deps, params and outs.

An entry::

    pretrain_psnr:
      desc: one line for `dvc stage list` and the docs
      script: steps/pretrain_psnr.py
      args: --data results/make_lr --preset {preset} --out results/pretrain_psnr/{instance}
      code: [spsagan/training/psnr.py]        # library modules whose edits must rerun the stage
      deps: [results/make_lr/]                # inputs produced by other stages (trailing / = folder)
      outs: [results/pretrain_psnr/{instance}/model.pt]
      metrics: [results/pretrain_psnr/{instance}/metrics.json]   # outputs DVC shows as metrics
      plots: [results/pretrain_psnr/{instance}/live/plots/]      # outputs DVC shows as plots
      report: {path: caption}                 # outputs that go into `snakemake --report`
      gpu: 1                                  # GPU token; threads and runtime (minutes) for SLURM
      instances:                              # optional: one job per instance, `{instance}` in paths
        rrdb: {preset: esrgan}
        rrsb: {preset: spsagan, deps: [results/prune/], args: --mask results/prune/mask.json}

Placeholders `{instance}` and any key of the instance's dict are filled in paths and args.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

import yaml

from spsagan.pipeline.params import load_yaml

DVC_HEADER = """\
# GENERATED from workflow/stages.yaml by `python -m spsagan.pipeline write-dvc`: do not edit by hand.
# Each stage runs Snakemake for its own outputs (Snakemake executes, DVC versions).
# Switch profiles with `dvc exp run -S profile=paper` (or edit `profile:` in params.yaml).
"""

_STAGE_KEYS = {"desc", "script", "args", "code", "deps", "outs", "metrics", "plots", "report", "gpu",
               "threads", "runtime", "mem_mb", "instances"}
_INSTANCE_KEYS_RESERVED = {"deps", "args"}


class RegistryError(ValueError):
    """workflow/stages.yaml is malformed."""


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    desc: str
    script: str
    args: str = ""
    code: tuple = ()
    deps: tuple = ()
    outs: tuple = ()
    metrics: tuple = ()
    plots: tuple = ()
    report: dict = dataclasses.field(default_factory=dict)
    gpu: int = 0
    threads: int = 1
    runtime: int = 60
    mem_mb: int = 4000
    instances: dict = dataclasses.field(default_factory=dict)

    # -- instances -------------------------------------------------------------------------
    def instance_names(self) -> list[str | None]:
        return list(self.instances) or [None]

    def _fill(self, template: str, instance: str | None) -> str:
        if instance is None:
            return template
        values = {k: v for k, v in self.instances[instance].items() if k not in _INSTANCE_KEYS_RESERVED}
        return template.format(instance=instance, **values)

    def outputs(self, instance: str | None) -> list[str]:
        """Every output path of one job (outs, metrics and plots), `/`-terminated for folders."""
        return [self._fill(p, instance) for p in (*self.outs, *self.metrics, *self.plots)]

    def inputs(self, instance: str | None) -> list[str]:
        """Every input of one job: the script, library code, upstream outputs."""
        extra = self.instances[instance].get("deps", []) if instance else []
        return [self.script, *self.code, *(self._fill(p, instance) for p in (*self.deps, *extra))]

    def argv(self, instance: str | None) -> str:
        extra = self.instances[instance].get("args", "") if instance else ""
        return " ".join(a for a in (self._fill(self.args, instance), extra) if a)

    def log(self, instance: str | None) -> str:
        return f"logs/{self.name}/{instance}.log" if instance else f"logs/{self.name}.log"


@dataclasses.dataclass(frozen=True)
class Registry:
    path: Path
    params_schema: Path
    stages: dict

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages.values())

    def jobs(self) -> Iterator[tuple[Stage, str | None]]:
        for stage in self:
            for instance in stage.instance_names():
                yield stage, instance


def load_registry(path: str | os.PathLike = "workflow/stages.yaml") -> Registry:
    path = Path(path)
    raw = load_yaml(path)
    if not isinstance(raw, dict) or "stages" not in raw or "params_schema" not in raw:
        raise RegistryError(f"{path}: expected top-level keys 'params_schema' and 'stages'")
    stages = {}
    for name, entry in raw["stages"].items():
        unknown = set(entry) - _STAGE_KEYS
        if unknown:
            raise RegistryError(f"{path}: stage {name}: unknown key(s) {sorted(unknown)}")
        for key in ("desc", "script", "outs"):
            if key not in entry:
                raise RegistryError(f"{path}: stage {name}: missing key {key!r}")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
        stages[name] = Stage(name=name, **fields)
    return Registry(path=path, params_schema=Path(raw["params_schema"]), stages=stages)


# -- dvc.yaml --------------------------------------------------------------------------------

def _dvc_path(p: str) -> str:
    return p.rstrip("/")


def snakemake_cmd(stage: Stage, targets: list[str]) -> str:
    """The command DVC runs for a stage: Snakemake builds exactly that stage's targets."""
    return (f"snakemake {' '.join(_dvc_path(t) for t in targets)} --cores all --resources gpu=1 "
            f"--allowed-rules {stage.name} --forcerun {stage.name}")


def _dvc_stage(stage: Stage, instance: str | None, key: str) -> dict:
    """One dvc.yaml stage body; `key` is `${key}` inside a foreach group, else the instance."""
    fill = (lambda p: p.replace("{instance}", "${key}")) if instance is not None else (lambda p: p)
    body: dict = {"desc": stage.desc}
    outs = [fill(o) for o in stage.outs]
    metrics = [fill(m) for m in stage.metrics]
    plots = [fill(p) for p in stage.plots]
    body["cmd"] = snakemake_cmd(stage, [*outs, *metrics, *plots])
    deps = [stage.script, *stage.code, *(fill(d) for d in stage.deps)]
    body["deps"] = [_dvc_path(d) for d in deps]
    body["params"] = ["profile", f"{stage.name}.${{profile}}"]
    if outs:
        body["outs"] = [_dvc_path(o) for o in outs]
    if metrics:
        body["metrics"] = [{_dvc_path(m): {"cache": False}} for m in metrics]
    if plots:
        body["plots"] = [{_dvc_path(p): {"cache": False}} for p in plots]
    return body


def dvc_yaml(registry: Registry) -> str:
    """Render dvc.yaml: one stage per registry stage, a `foreach` group where it has instances.

    DVC's foreach cannot vary the length of `deps`, so an instance's own deps enter as
    `${item.depN}` slots; instances with fewer own deps repeat their first shared input there
    (a duplicate dep changes nothing in DVC's hashing).
    """
    stages: dict = {}
    for stage in registry:
        if not stage.instances:
            stages[stage.name] = _dvc_stage(stage, None, "")
            continue
        width = max(len(spec.get("deps", [])) for spec in stage.instances.values())
        body = _dvc_stage(stage, "", "${key}")
        items = {}
        for inst, spec in stage.instances.items():
            own = [_dvc_path(d.format(instance=inst)) for d in spec.get("deps", [])]
            own += [_dvc_path(stage.script)] * (width - len(own))
            items[inst] = {"instance": inst, **{f"dep{i}": d for i, d in enumerate(own)}}
        body["deps"] += [f"${{item.dep{i}}}" for i in range(width)]
        stages[stage.name] = {"foreach": items, "do": body}
    return DVC_HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


def write_dvc_yaml(registry: Registry, path: str | os.PathLike = "dvc.yaml") -> None:
    from spsagan.atomic import write_text

    write_text(path, dvc_yaml(registry))


def dvc_yaml_is_current(registry: Registry, path: str | os.PathLike = "dvc.yaml") -> bool:
    path = Path(path)
    return path.exists() and path.read_text(encoding="utf-8") == dvc_yaml(registry)
