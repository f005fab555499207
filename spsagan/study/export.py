"""Votes to CSV: one row per vote, sorted, written atomically.

Columns: participant, slot, rater ('' for a person), simulated (1 for a scripted rater), trial,
task (1 ranking, 2 pair), group ('ost' or 'other'), dataset, image, shown (methods in the order they
were shown, ';'-separated), ranking (task 1: methods best first), target (the design's target, when
the trial shows it), other (task 2: the other method), choice (task 2: the method picked),
target_won (task 2: 1 or 0), created (UTC). Methods are named by their SR folders (`spsagan`,
`ESRGAN`, `HR`), as in per_image.csv.
"""

from __future__ import annotations

import csv
from pathlib import Path

from spsagan.atomic import atomic_path
from spsagan.study.store import Store

COLUMNS = [
    "participant",
    "slot",
    "rater",
    "simulated",
    "trial",
    "task",
    "group",
    "dataset",
    "image",
    "shown",
    "ranking",
    "target",
    "other",
    "choice",
    "target_won",
    "created",
]


def vote_rows(store: Store) -> list[dict]:
    """Every vote of `store`, resolved from option keys to method names, sorted by (slot, trial)."""
    target = store.design["target"]
    rows = []
    for v in store.rows():
        _, t = store.trials[v["trial"]]
        by_key = {o["key"]: o["method"] for o in t["options"]}
        shown = [o["method"] for o in t["options"]]
        row = {c: "" for c in COLUMNS}
        row.update(
            participant=v["participant"],
            slot=v["slot"],
            rater=v["rater"],
            simulated=int(bool(v["rater"])),
            trial=v["trial"],
            task=t["task"],
            group=t["group"],
            dataset=t["dataset"],
            image=t["image"],
            shown=";".join(shown),
            created=v["created"],
        )
        picked = [by_key[k] for k in v["answer"]]
        if t["task"] == 1:
            row.update(ranking=";".join(picked), target=target if target in shown else "")
        else:
            row.update(
                target=target,
                other=next(m for m in shown if m != target),
                choice=picked[0],
                target_won=int(picked[0] == target),
            )
        rows.append(row)
    return sorted(rows, key=lambda r: (r["slot"], r["trial"]))


def export_votes(store: Store, out: Path) -> int:
    """Write every vote of `store` to the CSV `out`; returns the number of rows."""
    rows = vote_rows(store)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
