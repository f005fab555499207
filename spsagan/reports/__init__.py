"""Reports: Table 1, the ablation, paired statistics and the paper's figures.

Modules: `paper` (reported numbers, as data), `table1`, `ablation`, `stats` (paired bootstrap),
`figures` (PNG figures). Every report names the profile it was made with and the stand-ins used,
so a demo-profile number is never mistaken for a paper-profile one.
"""

from __future__ import annotations


def provenance(profile: str, standins: list[str]) -> str:
    """One Markdown paragraph naming the profile and the stand-ins a report's numbers depend on."""
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (demo or paper), got {profile!r}")
    text = f"Profile: **{profile}**. "
    if standins:
        text += ("Stand-ins (offline substitutes; reproduced numbers that depend on them are not comparable "
                 "with the paper's): " + "; ".join(str(s) for s in standins) + ".")
    else:
        text += "Stand-ins: none."
    return text
