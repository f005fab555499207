"""Reports: Table 1, the ablation, paired statistics and the paper's figures.

Modules: `paper` (reported numbers, as data), `table1`, `ablation`, `stats` (paired bootstrap),
`figures` (PNG figures). Every report names the profile it was made with and the stand-ins used,
so a demo-profile number is never mistaken for a paper-profile one.
"""

from __future__ import annotations


def provenance(profile: str, standins: list[str], settings: list[str] = ()) -> str:
    """One Markdown paragraph naming the profile, the stand-ins a report's numbers depend on, and the
    run settings a reader needs beside them (e.g. the training precision)."""
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (demo or paper), got {profile!r}")
    text = f"Profile: **{profile}**. "
    if standins:
        text += ("Stand-ins (offline substitutes; reproduced numbers that depend on them are not comparable "
                 "with the paper's): " + "; ".join(str(s) for s in standins) + ".")
    else:
        text += "Stand-ins: none."
    if settings:
        text += " Settings: " + "; ".join(str(s) for s in settings) + "."
    return text


def output_paths(out, stem: str, suffixes: tuple[str, ...]) -> dict:
    """{suffix: path} of a report: `out` is a folder (files `<stem>.<suffix>` in it) or a list of
    paths (the stage registry's), one per suffix."""
    from pathlib import Path

    if isinstance(out, (list, tuple)):
        paths = {Path(p).suffix.lstrip("."): Path(p) for p in out}
        if sorted(paths) != sorted(suffixes):
            raise ValueError(f"{stem}: expected one path for each of {', '.join(suffixes)}, got {list(map(str, out))}")
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
