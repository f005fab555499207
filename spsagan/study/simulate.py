"""`spsagan-study simulate`: scripted raters that take the study through its real HTTP API.

Two kinds, alternating (rater 0 random, rater 1 niqe, ...):
- `random`: a uniformly random ranking or choice;
- `niqe`: ranks by the NIQE (`spsagan.metrics.niqe`, lower is better) of the images it is shown,
  plus Gaussian noise of `noise` NIQE units so raters disagree a little.
They see what a person sees (opaque keys and image URLs), never the method names. Their participants
are recorded with rater "simulated-<kind>", so every export and report labels them simulated.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image
from werkzeug.serving import make_server

from spsagan.errors import VoteError
from spsagan.metrics import niqe

KINDS = ("random", "niqe")


class Client:
    """The study's JSON API over HTTP (urllib), with the token header when the study has one."""

    def __init__(self, url: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", **({"X-Study-Token": token} if token else {})}

    def _open(self, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=self.headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as err:  # the server's own one-line reason
            message = json.loads(err.read() or b"{}").get("error", err.reason)
            raise VoteError(err.code, f"{path}: {message}") from None

    def participant(self, rater: str) -> str:
        return json.loads(self._open("/api/participant", {"rater": rater}))["participant"]

    def trial(self, participant: str) -> dict:
        return json.loads(self._open(f"/api/trial?participant={participant}"))

    def vote(self, participant: str, trial: str, **answer) -> dict:
        return json.loads(self._open("/api/vote", {"participant": participant, "trial": trial, **answer}))

    def image(self, url: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self._open(url))).convert("RGB"))


def _niqe_or_nan(img: np.ndarray) -> float:
    try:
        return float(niqe(img))
    except ValueError:  # too small for NIQE's blocks: this rater then has no opinion on it
        return float("nan")


def simulate(url: str, raters: int, seed: int = 0, token: str | None = None, noise: float = 0.5) -> list[dict]:
    """Run `raters` scripted raters against the server at `url`; returns [{participant, kind, votes}]."""
    client = Client(url, token)
    scores: dict[str, float] = {}  # image URL -> NIQE (the same image is shown to many raters)
    done = []
    for i in range(raters):
        kind = KINDS[i % len(KINDS)]
        rng = np.random.default_rng([seed, i])
        pid = client.participant(f"simulated-{kind}")
        votes = 0
        while not (state := client.trial(pid))["done"]:
            t = state["trial"]
            keys = [o["key"] for o in t["options"]]
            if kind == "niqe":
                for o in t["options"]:
                    if o["url"] not in scores:
                        scores[o["url"]] = _niqe_or_nan(client.image(o["url"]))
                value = np.array([scores[o["url"]] for o in t["options"]]) + noise * rng.standard_normal(len(keys))
                value = np.where(np.isnan(value), rng.uniform(0, 100, len(keys)), value)
                order = [keys[j] for j in np.argsort(value, kind="stable")]
            else:
                order = [keys[j] for j in rng.permutation(len(keys))]
            answer = {"ranking": order} if t["task"] == 1 else {"choice": order[0]}
            client.vote(pid, t["id"], **answer)
            votes += 1
        done.append({"participant": pid, "kind": kind, "votes": votes})
    return done


@contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a background thread (port 0: a free one); yields its base URL."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
