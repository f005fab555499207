"""A study server killed mid-study (SIGKILL) loses no committed vote, and a restarted one resumes."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from study_fixtures import make_study

from spsagan.errors import VoteError
from spsagan.study.export import export_votes
from spsagan.study.simulate import Client
from spsagan.study.store import Store

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999), so that no server another test starts on
    port 0 can be given it between this check and our server's bind."""
    rng = random.Random(os.getpid())
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 20000-32000")


def start(study: Path, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "spsagan.study.cli", "serve", "--study", str(study), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the study server did not start within 30 s")


def answer(trial: dict) -> dict:
    keys = [o["key"] for o in trial["options"]]
    return {"ranking": keys} if trial["task"] == 1 else {"choice": keys[-1]}


def test_sigkill_loses_no_committed_vote_and_the_study_resumes(tmp_path):
    study, design = make_study(tmp_path)
    port = free_port()
    server = start(study, port)
    try:
        client = Client(f"http://127.0.0.1:{port}")
        pid = client.participant("")
        voted = []
        for _ in range(2):
            trial = client.trial(pid)["trial"]
            client.vote(pid, trial["id"], **answer(trial))
            voted.append(trial["id"])
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    assert server.returncode == -signal.SIGKILL

    server = start(study, port)
    try:
        state = client.trial(pid)
        assert state["progress"] == {"done": 2, "total": 12}
        assert state["trial"]["id"] == design["slots"][0][2]["id"]
        try:
            client.vote(pid, voted[0], **answer(design["slots"][0][0]))
            raise AssertionError("a second answer to the same trial was accepted")
        except VoteError as err:
            assert err.status == 409
        client.vote(pid, state["trial"]["id"], **answer(state["trial"]))
    finally:
        server.terminate()
        server.wait(timeout=10)
    rows = Store(study / "votes.sqlite", design).rows()
    assert [r["trial"] for r in rows] == [t["id"] for t in design["slots"][0][:3]]
    assert export_votes(Store(study / "votes.sqlite", design), tmp_path / "votes.csv") == 3


def test_beyond_loopback_every_link_needs_the_token(tmp_path):
    study, _ = make_study(tmp_path)
    port = free_port()
    # 0.0.0.0 without --token: the server makes one and prints the participant link
    server = start(study, port, "--host", "0.0.0.0")
    try:
        try:
            Client(f"http://127.0.0.1:{port}").participant("")
            raise AssertionError("a request without the token was accepted")
        except VoteError as err:
            assert err.status == 403 and "token" in str(err)
    finally:
        server.terminate()
        out = server.communicate(timeout=10)[0]
    link = next(line for line in out.splitlines() if line.startswith("participants:"))
    token = link.split("?token=")[1].split()[0]
    assert len(token) >= 16 and "results page" not in out  # the names page is off beyond loopback
    server = start(study, port, "--host", "0.0.0.0", "--token", token)
    try:
        client = Client(f"http://127.0.0.1:{port}", token=token)
        assert client.trial(client.participant(""))["progress"]["done"] == 0
    finally:
        server.terminate()
        server.wait(timeout=10)
