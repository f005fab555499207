"""Votes of a study in SQLite: one transaction per vote, so a killed server loses no committed vote.

Tables: `participants(id, slot, rater, created)` (rater: '' for a person, the simulated rater's kind
otherwise) and `votes(trial, participant, answer, created)` (answer: JSON list of option keys, best
first for a ranking, one key for a choice). A participant owns the trials of its design slot.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from spsagan.errors import VoteError

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY, slot INTEGER NOT NULL UNIQUE, rater TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    trial TEXT PRIMARY KEY, participant TEXT NOT NULL REFERENCES participants(id),
    answer TEXT NOT NULL, created TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """The votes database of one study design (a dict from design.json)."""

    def __init__(self, path: Path, design: dict):
        self.path = Path(path)
        self.design = design
        self.trials = {t["id"]: (slot, t) for slot, trials in enumerate(design["slots"]) for t in trials}
        db = self._connect()
        try:
            db.executescript(SCHEMA)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE serialises writers);
        # synchronous=FULL: a committed vote survives a crash of the process or the machine.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def new_participant(self, rater: str = "") -> str:
        """Give the next free design slot to a new anonymous participant; returns its id."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            used = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
            if used >= len(self.design["slots"]):
                db.execute("ROLLBACK")
                raise VoteError(409, f"the study is full: all {used} participant slots are taken")
            pid = secrets.token_urlsafe(12)
            db.execute("INSERT INTO participants VALUES (?, ?, ?, ?)", (pid, used, rater, _now()))
            db.execute("COMMIT")
            return pid
        finally:
            db.close()

    def _slot(self, db: sqlite3.Connection, participant) -> int:
        if not isinstance(participant, str) or not participant:
            raise VoteError(400, "participant: give the participant id as a non-empty string")
        row = db.execute("SELECT slot FROM participants WHERE id = ?", (participant,)).fetchone()
        if row is None:
            raise VoteError(404, f"unknown participant {participant!r}: open the study page to get an id")
        return row[0]

    def next_trial(self, participant: str) -> dict:
        """{trial (the first unanswered trial of the slot, or None), done, total} for `participant`."""
        db = self._connect()
        try:
            slot = self._slot(db, participant)
            answered = {r[0] for r in db.execute("SELECT trial FROM votes WHERE participant = ?", (participant,))}
        finally:
            db.close()
        trials = self.design["slots"][slot]
        todo = [t for t in trials if t["id"] not in answered]
        return {"trial": todo[0] if todo else None, "done": len(trials) - len(todo), "total": len(trials)}

    def vote(self, participant, trial, ranking=None, choice=None) -> None:
        """Record one answer in one transaction, or raise VoteError and change nothing.

        ranking: every shown option key once, best first (task 1); choice: one shown key (task 2).
        """
        if not isinstance(trial, str) or trial not in self.trials:
            raise VoteError(404, f"unknown trial {trial!r}")
        slot, t = self.trials[trial]
        keys = [o["key"] for o in t["options"]]
        answer = _answer(t["task"], keys, ranking, choice)
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._slot(db, participant) != slot:
                    raise VoteError(403, f"trial {trial!r} belongs to another participant")
                if db.execute("SELECT 1 FROM votes WHERE trial = ?", (trial,)).fetchone():
                    raise VoteError(409, f"trial {trial!r} is already answered; answers cannot be changed")
                db.execute("INSERT INTO votes VALUES (?, ?, ?, ?)", (trial, participant, json.dumps(answer), _now()))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def rows(self) -> list[dict]:
        """Every vote joined with its participant: {trial, participant, slot, rater, answer, created}."""
        db = self._connect()
        try:
            cur = db.execute(
                "SELECT v.trial, v.participant, p.slot, p.rater, v.answer, v.created "
                "FROM votes v JOIN participants p ON p.id = v.participant ORDER BY p.slot, v.trial"
            )
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r), answer=json.loads(r[4])) for r in cur]
        finally:
            db.close()


def _answer(task: int, keys: list[str], ranking, choice) -> list[str]:
    """Check an answer against the options shown; returns it as a list of keys."""
    if task == 1:
        if choice is not None or not isinstance(ranking, list) or not all(isinstance(k, str) for k in ranking):
            raise VoteError(400, f"a task-1 trial takes 'ranking': a list of the option keys {keys}, best first")
        if unknown := [k for k in ranking if k not in keys]:
            raise VoteError(400, f"ranking names options not shown in this trial: {unknown} (shown: {keys})")
        if sorted(ranking) != sorted(keys):
            raise VoteError(400, f"ranking must name each shown option exactly once: {keys}, got {ranking}")
        return list(ranking)
    if ranking is not None or not isinstance(choice, str):
        raise VoteError(400, f"a task-2 trial takes 'choice': one of the option keys {keys}")
    if choice not in keys:
        raise VoteError(400, f"choice {choice!r} is not an option shown in this trial (shown: {keys})")
    return [choice]
