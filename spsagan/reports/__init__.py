"""Reports: Table 1, the ablation, paired statistics and the paper's figures.

Modules: `paper` (reported numbers, as data), `table1`, `ablation`, `stats` (bootstrap intervals and
reproduction verdicts), `figures` (PNG figures). Every report names the profile it was made with, the
stand-ins used and the run's reductions from the paper's setting, so a demo-profile number is never
mistaken for a paper-profile one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def provenance(profile: str, standins: list[str], settings: list[str] = ()) -> str:
    """One Markdown paragraph naming the profile, the stand-ins a report's numbers depend on, and the
    run settings a reader needs beside them (e.g. the training precision, the `reductions`)."""
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (demo or paper), got {profile!r}")
    text = f"Profile: **{profile}**. "
    if standins:
        text += (
            "Stand-ins (offline substitutes; reproduced numbers that depend on them are not comparable "
            "with the paper's): " + "; ".join(str(s) for s in standins) + "."
        )
    else:
        text += "Stand-ins: none."
    if settings:
        text += " Settings: " + "; ".join(str(s) for s in settings) + "."
    return text


def _format_value(value) -> str:
    """2 -> '2', 1500 -> '1,500', 2e-4 -> '0.0002', (64, 96) -> '64/96', 'bf16' -> 'bf16'."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 1 else f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "/".join(_format_value(v) for v in value)
    return str(value)


def _same(used, paper) -> bool:
    if isinstance(used, (int, float)) and isinstance(paper, (int, float)) and not isinstance(used, bool):
        return math.isclose(used, paper, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(used, (list, tuple)) and isinstance(paper, (list, tuple)):
        return len(used) == len(paper) and all(_same(u, p) for u, p in zip(used, paper))
    return used == paper


def reductions(values: Mapping[str, tuple]) -> list[str]:
    """The run's departures from the paper's setting, one phrase each, for a report header's `settings`.

    values: {label: (used, paper)}, the label a noun phrase read after the number ("blocks",
        "PSNR iterations", "px HR crops (PSNR/GAN)"); used and paper are numbers, strings or sequences
        (shown joined by "/").
    Returns, in the given order, "<used> <label> (paper: <paper>)" for each key whose used value
    differs from the paper's, e.g. ["2 blocks (paper: 23)", "1,500 PSNR iterations (paper: 1,000,000)"];
    [] when the run uses the paper's setting throughout.
    """
    out = []
    for label, pair in values.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"reductions: {label!r} needs a (used, paper) pair, got {pair!r}")
        used, paper = pair
        if not _same(used, paper):
            out.append(f"{_format_value(used)} {label} (paper: {_format_value(paper)})")
    return out


def output_paths(out, stem: str, suffixes: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """{suffix: path} of a report: `out` is a folder (files `<stem>.<suffix>` in it, required suffixes
    only) or a list of paths (the stage registry's), one per required suffix plus any of `optional`."""
    from pathlib import Path

    if isinstance(out, (list, tuple)):
        paths = {Path(p).suffix.lstrip("."): Path(p) for p in out}
        extra = [s for s in paths if s not in suffixes and s not in optional]
        if len(paths) != len(out) or sorted(s for s in paths if s in suffixes) != sorted(suffixes) or extra:
            allowed = f" (optional: {', '.join(optional)})" if optional else ""
            raise ValueError(
                f"{stem}: expected one path for each of {', '.join(suffixes)}{allowed}, got {list(map(str, out))}"
            )
        return paths
    return {s: Path(out) / f"{stem}.{s}" for s in suffixes}


def data_standins(make_lr_root, datasets) -> list[str]:
    """The data stand-in note when any dataset came from the offline demo source (its provenance.json)."""
    import json
    from pathlib import Path

    for name in datasets:
        path = Path(make_lr_root) / name / "provenance.json"
        if path.exists() and json.loads(path.read_text()).get("stand_in"):
            return ["data: scikit-image's bundled photos instead of DIV2K/Flickr2K/OST and the benchmark sets"]
    return []
