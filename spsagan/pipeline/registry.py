"""The stage registry (`workflow/stages.yaml`): the pipeline DAG and all its paths, written once.

Snakemake executes it (`workflow/Snakefile` builds one rule per stage from it) and DVC versions it
(`dvc.yaml` is rendered from it by `python -m spsagan.pipeline write-dvc`). Each DVC stage's command
runs Snakemake for that stage's outputs, so both tools agree on what is stale: Snakemake records its
metadata for every output, and DVC hashes the same deps, params and outs.

An entry::

    pretrain_psnr:
      desc: one line for `dvc stage list` and the docs
      script: steps/pretrain_psnr.py
      deps: {data: "@make_lr.out"}            # named inputs: paths, or "@stage.name" references
      outs: {model: results/pretrain_psnr/{instance}/model.pt}   # named outputs (trailing / = folder)
      metrics: {metrics: metrics/pretrain_psnr/{instance}.json}  # the few numbers `dvc exp show` compares
      live: results/pretrain_psnr/{instance}/live                # a dvclive folder: metrics.json + plots/
      state: {ckpt_root: results/ckpt}        # side folders that survive failures (resume), not outputs
      args: {preset: "{preset}"}              # other flags, from the instance's values
      extra_code: [spsagan/metrics/x.npz]     # non-Python files the step reads
      user_data: [local]                      # params keys naming the user's files and folders it reads
      report: {path: {caption: ..., category: ...}}   # outputs that go into `snakemake --report`
      gpu: 1                                  # GPU token; threads, runtime (minutes), mem_mb for SLURM
      local: true                             # runs where Snakemake runs (needs the internet: login node)
      instances:                              # optional: one job per instance, `{instance}` in paths
        rrdb: {preset: esrgan}
        rrsb: {preset: spsagan, deps: {mask: "@prune.mask"}}
      per_seed: true                          # optional: each instance once per seed (params key `seeds`)

Every named dep, out, metric, state folder and arg reaches the step as `--<name>` (underscores
become dashes), so a step never builds a path itself. A reference "@stage.name" is that stage's
output `name`; for a stage with instances it means every instance's, passed as `stage/instance=path`
pairs, and "@stage.name[inst]" picks one (plain path; `inst` may be a placeholder like `{init}`).
Placeholders `{instance}` and any key of the instance's dict are filled in paths and args.

Seeds are a dimension of the DAG: a `per_seed` stage runs each instance once per seed of its params
key `seeds` (the active profile's; `load_registry(params=...)`). Seed 0 keeps the instance's name, seed s
is `<instance>_s<s>` (`seeded_name`), so adding a seed adds jobs and renames none. Each job's params hold
its own seed alone (`Stage.job_section`: `seeds: [s]`), so adding a seed changes nothing an existing job
hashes. "@stage.name[inst]" of a seeded stage is its first seed's run (the primary run); a placeholder
such as `{init}` that names an instance of a seeded stage follows the job's seed where that stage has it,
else the primary run; "@stage.name" is every seed's run.

Code dependencies are not listed: each stage depends on its script's import closure inside the
package (`spsagan.pipeline.imports`), plus `extra_code`. The files and folders named by its
`user_data` params keys are inputs too (`spsagan.pipeline.userdata`).

A folder output `x/` comes with `x.contents.json`, its files' sha256 (`spsagan.pipeline.contents`):
Snakemake compares that file by checksum where it cannot compare a folder, so a stage that rewrites
a folder with the same bytes makes nothing downstream stale.

In dvc.yaml, `metrics` become DVC metrics and a dvclive folder's `plots/` DVC plots (its
`metrics.json`, with every logged key, is a plain output). Metrics and plots under `metrics/` (see
`GIT_KEPT`) are small files git keeps (`cache: false`): each experiment's commit holds them, so
`dvc exp show` and `dvc metrics diff` read them for any experiment. Metrics and plots anywhere else
are under the git-ignored `results/` and are cached (`cache: true`): DVC reads an experiment's copy
from its cache (a `cache: false` file there exists only in the workspace, and every other revision
shows `!`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from spsagan.errors import ConfigError
from spsagan.pipeline.contents import contents_file
from spsagan.pipeline.imports import FactCache, closure
from spsagan.pipeline.params import load_yaml, stage_params
from spsagan.pipeline.userdata import named_paths

DVC_HEADER = """\
# GENERATED from workflow/stages.yaml by `python -m spsagan.pipeline write-dvc`: do not edit by hand.
# Each stage runs Snakemake for its own outputs (Snakemake executes, DVC versions).
# Switch profiles with `dvc exp run -S profile=paper` (or edit `profile:` in params.yaml).
# Your own files named in params.yaml (`user_data:` keys, e.g. download_data.<profile>.local) are deps of the
# active profile: run write-dvc again after changing them or the profile (snakemake warns until you do).
"""

_STAGE_KEYS = {
    "desc",
    "script",
    "deps",
    "outs",
    "metrics",
    "live",
    "state",
    "args",
    "extra_code",
    "user_data",
    "report",
    "gpu",
    "local",
    "threads",
    "runtime",
    "mem_mb",
    "instances",
    "per_seed",
}
_INSTANCE_RESERVED = {"deps"}
SEEDS_KEY = "seeds"  # the params key a `per_seed` stage's seeds come from
_REF = re.compile(r"^@(?P<stage>\w+)\.(?P<name>\w+)(\[(?P<inst>[^\]]+)\])?$")


@dataclasses.dataclass(frozen=True)
class Dep:
    """One value of a named input: the flag value passed to the step and the paths the rule waits for.

    Templates may hold `{instance}` and the instance's placeholders. label: "stage/instance" when the
    value is one of several instances of a referenced stage (passed as `label=path`), else None.
    """

    arg: str
    paths: tuple[str, ...]
    label: str | None = None


def _as_tuple(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


PLOT_TEMPLATE = "workflow/plots/training_curve.json"  # dvclive series: step on x, true values on y

# Metrics and plots under this folder are committed to git (dvc.yaml: `cache: false`); all others are
# in git-ignored folders and cached by DVC.
GIT_KEPT = "metrics/"


def _live_paths(live: str) -> tuple[str, str]:
    """The outputs of a dvclive folder: its summary (a plain output) and its plots folder (DVC plots)."""
    return f"{live}/metrics.json", f"{live}/plots/"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    desc: str
    script: str
    deps: dict = dataclasses.field(default_factory=dict)  # name -> tuple of Dep
    outs: dict = dataclasses.field(default_factory=dict)  # name -> tuple of path templates
    metrics: dict = dataclasses.field(default_factory=dict)  # name -> path template
    live: str | None = None
    state: dict = dataclasses.field(default_factory=dict)
    args: dict = dataclasses.field(default_factory=dict)
    extra_code: tuple = ()
    user_data: tuple = ()  # params keys whose values are the user's files and folders the step reads
    code: tuple = ()  # derived: the script's import closure
    report: dict = dataclasses.field(default_factory=dict)
    gpu: int = 0
    local: bool = False
    threads: int = 1
    runtime: int = 60
    mem_mb: int = 4000
    instances: dict = dataclasses.field(default_factory=dict)  # name -> {placeholder: value, deps: {...}}
    per_seed: bool = False  # instances expanded over the params' seeds; each has a `seed` value

    # -- declared paths (templates) ---------------------------------------------------------
    @property
    def out_paths(self) -> list[str]:
        return [p for paths in self.outs.values() for p in paths]

    @property
    def metric_paths(self) -> list[str]:
        return list(self.metrics.values())

    @property
    def live_summary_paths(self) -> list[str]:
        return [_live_paths(self.live)[0]] if self.live else []

    @property
    def plot_paths(self) -> list[str]:
        return [_live_paths(self.live)[1]] if self.live else []

    @property
    def folder_paths(self) -> list[str]:
        """The folder outputs (outs and plots): each has a contents file."""
        return [p for p in (*self.out_paths, *self.plot_paths) if p.endswith("/")]

    @property
    def contents_paths(self) -> list[str]:
        return [contents_file(p) for p in self.folder_paths]

    # -- instances -------------------------------------------------------------------------
    def instance_names(self) -> list[str | None]:
        return list(self.instances) or [None]

    def fill(self, template: str, instance: str | None) -> str:
        if instance is None:
            return template
        values = {k: v for k, v in self.instances[instance].items() if k not in _INSTANCE_RESERVED}
        return template.format(instance=instance, **values)

    def job_deps(self, instance: str | None) -> dict[str, tuple[Dep, ...]]:
        """The named inputs of one job: the stage's and the instance's own."""
        own = self.instances[instance].get("deps", {}) if instance else {}
        return {**self.deps, **own}

    def job_section(self, section: dict, instance: str | None) -> dict:
        """The params section one job computes from: a `per_seed` stage's job gets its own seed alone
        (`seeds: [s]`), so adding a seed changes nothing the other jobs hash."""
        if not self.per_seed or instance is None:
            return section
        return {**section, SEEDS_KEY: [self.instances[instance]["seed"]]}

    def output_templates(self) -> list[str]:
        """Every output path (outs, metrics, dvclive summary and plots, contents files of folders) with
        `{instance}` left as a wildcard."""
        return [*self.out_paths, *self.metric_paths, *self.live_summary_paths, *self.plot_paths, *self.contents_paths]

    def outputs(self, instance: str | None) -> list[str]:
        """Every output path of one job (outs, metrics, plots), `/`-terminated for folders."""
        return [self.fill(p, instance) for p in self.output_templates()]

    def inputs(self, instance: str | None) -> list[str]:
        """Every input of one job: the script, its code, upstream outputs (a folder, `/`-terminated, with
        its contents file). The user's files (`user_data`) come from params: `user_paths`."""
        upstream = [self.fill(p, instance) for deps in self.job_deps(instance).values() for d in deps for p in d.paths]
        upstream = [q for p in upstream for q in ((p, contents_file(p)) if p.endswith("/") else (p,))]
        return [self.script, *self.code, *self.extra_code, *dict.fromkeys(upstream)]

    def user_paths(self, section: dict, root: str | os.PathLike = ".") -> list[str]:
        """The existing files and folders the step reads from the user, named by its params `section`."""
        return named_paths(section, self.user_data, root)

    def argv(self, instance: str | None) -> str:
        """The step's flags for one job: every named dep, out, metric, live, state folder and arg."""
        flags: list[tuple[str, list[str]]] = []
        for name, deps in self.job_deps(instance).items():
            flags.append(
                (
                    name,
                    [
                        f"{d.label}={self.fill(d.arg, instance)}" if d.label else self.fill(d.arg, instance)
                        for d in deps
                    ],
                )
            )
        flags += [(name, [self.fill(p, instance).rstrip("/") for p in paths]) for name, paths in self.outs.items()]
        flags += [(name, [self.fill(p, instance)]) for name, p in self.metrics.items()]
        flags += [("live", [self.fill(self.live, instance)])] if self.live else []
        flags += [(name, [path]) for name, path in self.state.items()]
        flags += [(name, [self.fill(value, instance)]) for name, value in self.args.items()]
        return " ".join(f"--{name.replace('_', '-')} {' '.join(values)}" for name, values in flags)

    def log(self, instance: str | None) -> str:
        return f"logs/{self.name}/{instance}.log" if instance else f"logs/{self.name}.log"


@dataclasses.dataclass(frozen=True)
class Registry:
    path: Path
    params_schema: Path
    package: Path
    stages: dict

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages.values())

    @property
    def root(self) -> Path:
        """The repository: workflow/stages.yaml -> its parent's parent."""
        return self.path.resolve().parent.parent

    def jobs(self) -> Iterator[tuple[Stage, str | None]]:
        for stage in self:
            for instance in stage.instance_names():
                yield stage, instance

    def hashed_keys(self, stage: str) -> list[str]:
        """The keys of a stage's params section that both tools hash: the schema's, less the runtime keys."""
        from spsagan.config import runtime_keys

        schema = self.path.resolve().parent.parent / self.params_schema
        keys = (load_yaml(schema)["stages"].get(stage) or {}).get("properties", {})
        return [key for key in keys if key not in runtime_keys(stage)]


# -- loading ---------------------------------------------------------------------------------


def _named(entry: dict, key: str) -> dict[str, tuple[str, ...]]:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must map names to paths (each name becomes the step's --<name>), got {value!r}")
    return {name: _as_tuple(v) for name, v in value.items()}


# -- seeds: a dimension of the DAG ----------------------------------------------------------------


def seeded_name(base: str, seed: int) -> str:
    """The instance of `base` for one seed: seed 0 keeps the base name (a one-seed run's results stay where
    they were), seed s is `<base>_s<s>`."""
    return base if seed == 0 else f"{base}_s{seed}"


def _seed_lists(stages: dict, params: dict | None) -> dict[str, list[int]]:
    """{stage: its seeds} for every `per_seed` stage: the active profile's `seeds` key ([0] when the params
    have no such section); the first seed is the stage's primary run."""
    out = {}
    for name, entry in stages.items():
        if not entry.get("per_seed"):
            continue
        if not entry.get("instances"):
            raise ConfigError(f"stage {name}: per_seed needs instances (each is run once per seed)")
        section = params[name][params["profile"]] if params and name in params else {}
        seeds = section.get(SEEDS_KEY, [0])
        where = f"{name}.{params['profile'] if params else '<profile>'}.{SEEDS_KEY}"
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(v, (int, float)) and v == int(v) and v >= 0 for v in seeds)
        ):
            raise ConfigError(f"{where}: expected a non-empty list of seeds (integers >= 0), got {seeds!r}")
        seeds = [int(v) for v in seeds]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{where}: {seeds} lists a seed more than once; each seed is one training run")
        out[name] = seeds
    return out


def _pointers(entry: dict, spec: dict, targets) -> dict[str, str]:
    """{placeholder: stage} for each dep "@stage.name[{placeholder}]" of a job pointing into a stage of `targets`."""
    values = [v for deps in (entry.get("deps"), spec.get("deps")) for d in (deps or {}).values() for v in _as_tuple(d)]
    found = {}
    for value in values:
        match = _REF.match(value) if isinstance(value, str) else None
        inst = match["inst"] if match else None
        if inst and inst.startswith("{") and inst.endswith("}") and match["stage"] in targets:
            found[inst[1:-1]] = match["stage"]
    return found


def _expand_seeds(stages: dict, seeds: dict[str, list[int]]) -> tuple[dict, dict[str, dict[str, str]]]:
    """The raw stage entries with every `per_seed` stage's instances expanded over its seeds (each instance gets
    the value `seed`), and {seeded stage: {base instance: its primary (first seed's) instance}}.

    A placeholder naming an instance of a seeded stage (`init` in "@pretrain_psnr.model[{init}]") is re-pointed
    per job: to that stage's run with the same seed when it has one, else to its primary run.
    """
    primary = {name: {b: seeded_name(b, s[0]) for b in stages[name]["instances"]} for name, s in seeds.items()}
    out = dict(stages)
    for name, entry in stages.items():
        if not entry.get("instances"):
            continue
        expanded = {}
        for base, spec in entry["instances"].items():
            spec = spec or {}
            if name in seeds and "seed" in spec:
                raise ConfigError(f"stage {name}, instance {base}: `seed` is set per seed (per_seed)")
            pointers = _pointers(entry, spec, seeds)
            for ph, target in pointers.items():
                if spec.get(ph) not in stages[target]["instances"]:
                    raise ConfigError(
                        f"stage {name}, instance {base}: {ph}={spec.get(ph)!r} is no instance of {target}"
                    )
            for seed in seeds.get(name, [None]):
                values = dict(spec)
                for ph, target in pointers.items():
                    chosen = seed if seed in seeds[target] else seeds[target][0]
                    values[ph] = seeded_name(spec[ph], chosen)
                if seed is None:
                    expanded[base] = values
                else:
                    expanded[seeded_name(base, seed)] = {**values, "seed": seed}
        out[name] = {**entry, "instances": expanded}
    return out, primary


# -- references ------------------------------------------------------------------------------


def _resolve(value: str, raw: dict, where: str, primary: dict | None = None) -> tuple[Dep, ...]:
    """A dep value: a path template, or "@stage.name[inst]" resolved against the referenced stage.

    primary: {seeded stage: {base: instance}}: "@stage.name[base]" of a `per_seed` stage is its primary run."""
    match = _REF.match(value)
    if not match:
        return (Dep(value, (value,)),)
    stage, name, inst = match["stage"], match["name"], match["inst"]
    inst = (primary or {}).get(stage, {}).get(inst, inst)
    target = raw.get(stage)
    if target is None:
        raise ConfigError(f"{where}: {value}: no stage {stage!r}")
    if name == "live" and target.get("live"):
        templates = [(target["live"], _live_paths(target["live"]))]
    elif name in (target.get("outs") or {}) or name in (target.get("metrics") or {}):
        paths = _as_tuple({**(target.get("outs") or {}), **(target.get("metrics") or {})}[name])
        templates = [(p.rstrip("/"), (p,)) for p in paths]
    else:
        raise ConfigError(f"{where}: {value}: stage {stage} has no output {name!r}")
    instances = list(target.get("instances") or {})
    if inst is not None:  # one instance (maybe a placeholder of the referring stage, filled per job)
        if not instances or ("{" not in inst and inst not in instances):
            raise ConfigError(f"{where}: {value}: stage {stage} has no instance {inst!r}")
        return tuple(
            Dep(a.replace("{instance}", inst), tuple(p.replace("{instance}", inst) for p in ps)) for a, ps in templates
        )
    if instances:
        return tuple(
            Dep(a.replace("{instance}", i), tuple(p.replace("{instance}", i) for p in ps), f"{stage}/{i}")
            for i in instances
            for a, ps in templates
        )
    return tuple(Dep(a, ps) for a, ps in templates)


def _deps(value, raw: dict, where: str, primary: dict | None = None) -> dict[str, tuple[Dep, ...]]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: deps must map names to paths or @references, got {value!r}")
    return {
        name: tuple(d for v in _as_tuple(v) for d in _resolve(v, raw, f"{where}.{name}", primary))
        for name, v in value.items()
    }


def load_registry(
    path: str | os.PathLike = "workflow/stages.yaml", import_cache: str | None = None, params: dict | None = None
) -> Registry:
    """Read the registry; code dependencies are derived relative to the registry's repository root.

    import_cache: a JSON file that keeps each module's parsed imports between runs (the Snakefile
    uses one under .snakemake/); the derived dependencies are the same with or without it.
    params: the params (params.yaml's contents, with `profile`) whose `seeds` expand the `per_seed` stages;
    default: the repository's params.yaml, or one seed (0) where there is none.
    """
    path = Path(path)
    cache = FactCache(import_cache)
    raw = load_yaml(path)
    if not isinstance(raw, dict) or not {"stages", "params_schema", "package"} <= set(raw):
        raise ConfigError(f"{path}: expected top-level keys 'package', 'params_schema' and 'stages'")
    root = path.resolve().parent.parent  # workflow/stages.yaml -> the repository
    package = Path(raw["package"])
    for name, entry in raw["stages"].items():
        unknown = set(entry) - _STAGE_KEYS
        if unknown:
            raise ConfigError(f"{path}: stage {name}: unknown key(s) {sorted(unknown)}")
        for key in ("desc", "script", "outs"):
            if key not in entry:
                raise ConfigError(f"{path}: stage {name}: missing key {key!r}")
    if params is None and (root / "params.yaml").is_file():
        params = load_yaml(root / "params.yaml")
    try:
        entries, primary = _expand_seeds(raw["stages"], _seed_lists(raw["stages"], params))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    stages = {}
    for name, entry in entries.items():
        where = f"{path}: stage {name}"
        try:
            instances = {
                inst: {**spec, "deps": _deps(spec.get("deps"), entries, f"{where}.{inst}", primary)}
                for inst, spec in (entry.get("instances") or {}).items()
            }
            special = ("deps", "outs", "instances", "extra_code", "user_data")
            fields = {k: v for k, v in entry.items() if k not in special}
            stage = Stage(
                name=name,
                **fields,
                deps=_deps(entry.get("deps"), entries, where, primary),
                outs=_named(entry, "outs"),
                instances=instances,
                extra_code=tuple(entry.get("extra_code") or ()),
                user_data=tuple(entry.get("user_data") or ()),
                code=code_dependencies(root, entry["script"], package, cache),
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        stages[name] = stage
    cache.save()
    return Registry(path=path, params_schema=Path(raw["params_schema"]), package=package, stages=stages)


def code_dependencies(root: Path, script: str, package: Path, cache: FactCache | None = None) -> tuple[str, ...]:
    """The package files `script` can import, as paths relative to the repository root."""
    files = closure(root / script, root / package, cache)
    return tuple(f.relative_to(root).as_posix() for f in files)


# -- dvc.yaml --------------------------------------------------------------------------------


def _dvc_path(p: str) -> str:
    return p.rstrip("/")


# DVC runs its commands with the caller's PATH: without the environment activated, Snakemake is not
# found. Say so (exit 127) before anything runs; outputs are `persist`, so DVC has deleted nothing.
_NEED_SNAKEMAKE = (
    "command -v snakemake >/dev/null || { echo 'snakemake is not on PATH: activate the "
    "environment (source .venv/bin/activate) or run make dvc-demo' >&2; exit 127; }; "
)


def snakemake_cmd(stage: Stage, targets: list[str]) -> str:
    """The command DVC runs for a stage: Snakemake builds exactly that stage's targets, each job started by
    the same launcher as in any Snakemake run (`spsagan.pipeline.launch`). No `--resources`: the workflow
    profile's GPU token (`gpu_jobs`) applies, and a limit on `gpu` would cap a multi-GPU job at it."""
    return (
        f"{_NEED_SNAKEMAKE}snakemake {' '.join(_dvc_path(t) for t in targets)} --cores all "
        f"--allowed-rules {stage.name} --forcerun {stage.name}"
    )


def _dvc_template(stage: Stage, template: str) -> str:
    """A path template in DVC's foreach syntax: {instance} -> ${key}, {placeholder} -> ${item.placeholder}."""
    if not stage.instances:
        return template
    return re.sub(r"\{(\w+)\}", lambda m: "${key}" if m[1] == "instance" else f"${{item.{m[1]}}}", template)


def _dvc_stage(stage: Stage, user: list[str], hashed: list[str], seeded: set[str] = frozenset()) -> dict:
    """One dvc.yaml stage body (inside `do:` for a stage with instances).

    user: the user's files and folders the stage reads (`user_data`, resolved for the active profile).
    Folder deps need no contents file here: DVC hashes a folder's files itself. hashed: its computing keys.
    seeded: the `per_seed` stages.
    """
    fill = lambda p: _dvc_template(stage, p)  # noqa: E731
    outs, metrics, plots = (
        [fill(p) for p in paths]
        for paths in (
            [*stage.out_paths, *stage.live_summary_paths, *stage.contents_paths],
            stage.metric_paths,
            stage.plot_paths,
        )
    )
    body: dict = {"desc": stage.desc, "cmd": snakemake_cmd(stage, [*outs, *metrics, *plots])}
    shared = [fill(p) for deps in stage.deps.values() for d in deps for p in d.paths]
    body["deps"] = list(
        dict.fromkeys(_dvc_path(d) for d in (stage.script, *stage.code, *stage.extra_code, *shared, *user))
    )
    # The computing keys one by one: a runtime key (`spsagan.config.runtime_keys`) changes nothing DVC hashes.
    # A `per_seed` stage's seed is in each instance's name (`seeded_name`), so the list of seeds is left out:
    # adding one adds stages and changes none.
    hashed = [key for key in hashed if not (stage.per_seed and key == SEEDS_KEY)]
    body["params"] = ["profile", *(f"{stage.name}.${{profile}}.{key}" for key in hashed)]
    # A stage reading every run of a seeded stage depends on its seeds: a seed added by `dvc exp run -S` makes
    # it stale, and its Snakemake then says to rewrite dvc.yaml (which lists one stage per seed).
    readers = dict.fromkeys(d.label.split("/")[0] for deps in stage.deps.values() for d in deps if d.label)
    body["params"] += [f"{name}.${{profile}}.{SEEDS_KEY}" for name in readers if name in seeded]
    # persist: DVC leaves outputs in place before running the command, so a `dvc repro` started while
    # Snakemake works stops at Snakemake's lock with every file untouched, and Snakemake (which
    # removes a job's outputs itself) stays the only tool that deletes results.
    if outs:
        body["outs"] = [{_dvc_path(o): {"persist": True}} for o in outs]
    # Metrics and plots are cached like every output: results/ is not in git, so the cache and its remote are
    # the only way they reach a clone (`dvc pull`).
    if metrics:
        body["metrics"] = [{_dvc_path(m): _dvc_kept(m)} for m in metrics]
    if plots:
        # x: the logged step (DVC would plot against the row number), and a template whose y axis shows
        # small rates such as 1e-4 as they are (DVC's own label them 0).
        body["plots"] = [{_dvc_path(p): {**_dvc_kept(p), "x": "step", "template": PLOT_TEMPLATE}} for p in plots]
    return body


def _dvc_kept(path: str) -> dict:
    """A metrics or plots entry: committed to git under GIT_KEPT, else cached (see the module docstring)."""
    return {"cache": False, "persist": True} if path.startswith(GIT_KEPT) else {"persist": True}


def user_deps(registry: Registry, params: dict | None = None) -> dict[str, list[str]]:
    """Each stage's user files and folders for the active profile of `params` (default: the repository's
    params.yaml); DVC cannot pick them by profile itself, so dvc.yaml lists these."""
    if params is None:
        params = load_yaml(registry.root / "params.yaml")
    return {
        stage.name: stage.user_paths(stage_params(params, stage.name), registry.root) if stage.user_data else []
        for stage in registry
    }


def dvc_yaml(registry: Registry, params: dict | None = None) -> str:
    """Render dvc.yaml: one stage per registry stage, a `foreach` group where it has instances.

    DVC's foreach cannot vary the length of `deps`, so an instance's own deps enter as
    `${item.depN}` slots; instances with fewer own deps repeat the script there (a duplicate dep
    changes nothing in DVC's hashing). The user's files come from the active profile (`user_deps`).
    """
    stages: dict = {}
    user = user_deps(registry, params)
    for stage in registry:
        seeded = {s.name for s in registry if s.per_seed}
        body = _dvc_stage(stage, user[stage.name], registry.hashed_keys(stage.name), seeded)
        if not stage.instances:
            stages[stage.name] = body
            continue
        own = {
            inst: [_dvc_path(stage.fill(p, inst)) for deps in spec["deps"].values() for d in deps for p in d.paths]
            for inst, spec in stage.instances.items()
        }
        width = max(len(paths) for paths in own.values())
        items = {}
        for inst, spec in stage.instances.items():
            values = {k: v for k, v in spec.items() if k not in _INSTANCE_RESERVED}
            slots = own[inst] + [_dvc_path(stage.script)] * (width - len(own[inst]))
            items[inst] = {"instance": inst, **values, **{f"dep{i}": d for i, d in enumerate(slots)}}
        body["deps"] += [f"${{item.dep{i}}}" for i in range(width)]
        stages[stage.name] = {"foreach": items, "do": body}
    return DVC_HEADER + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


def write_dvc_yaml(registry: Registry, path: str | os.PathLike = "dvc.yaml", params: dict | None = None) -> None:
    from spsagan.atomic import write_text

    write_text(path, dvc_yaml(registry, params))


def _dvc_job_names(text: str) -> set[str]:
    stages = (yaml.safe_load(text) or {}).get("stages") or {}
    return {
        f"{name}@{inst}" if "foreach" in body else name
        for name, body in stages.items()
        for inst in body.get("foreach") or [None]
    }


def dvc_jobs_missing(registry: Registry, path: str | os.PathLike = "dvc.yaml", params: dict | None = None) -> str:
    """What dvc.yaml at `path` plans differently from the registry, in words ('' when the same jobs): the
    registry's jobs (stage or stage@instance, e.g. a newly added seed's) it lacks, and those it still lists."""
    path = Path(path)
    listed = _dvc_job_names(path.read_text(encoding="utf-8")) if path.exists() else set()
    wanted = _dvc_job_names(dvc_yaml(registry, params))
    parts = [f"lacks {', '.join(sorted(wanted - listed))}"] if wanted - listed else []
    parts += [f"still lists {', '.join(sorted(listed - wanted))}"] if listed - wanted else []
    return "; ".join(parts)


def dvc_yaml_is_current(registry: Registry, path: str | os.PathLike = "dvc.yaml", params: dict | None = None) -> bool:
    path = Path(path)
    return path.exists() and path.read_text(encoding="utf-8") == dvc_yaml(registry, params)
