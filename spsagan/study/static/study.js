// The blind study page: it only ever sees opaque option keys and image URLs, never method names.
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const storageKey = "spsagan-study-participant";
const headers = { "Content-Type": "application/json" };
if (token) headers["X-Study-Token"] = token;
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw Object.assign(new Error(data.error || `HTTP ${response.status}`), { status: response.status });
  return data;
}

async function participant() {
  let id = localStorage.getItem(storageKey);
  if (!id) {
    id = (await api("POST", "/api/participant", { rater: "" })).participant;
    localStorage.setItem(storageKey, id);
  }
  return id;
}

async function next() {
  $("message").textContent = "";
  let id = await participant();
  let state;
  try {
    state = await api("GET", `/api/trial?participant=${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status !== 404) throw err;
    localStorage.removeItem(storageKey); // an id from another study: start afresh
    id = await participant();
    state = await api("GET", `/api/trial?participant=${encodeURIComponent(id)}`);
  }
  const { done, total } = state.progress;
  if (state.done) {
    $("progress").textContent = `${done} of ${total} answered`;
    $("prompt").textContent = "";
    $("options").replaceChildren();
    $("actions").hidden = true;
    $("done").hidden = false;
    return;
  }
  $("progress").textContent = `Trial ${done + 1} of ${total}`;
  show(id, state.trial);
}

function show(id, trial) {
  $("prompt").textContent = trial.prompt;
  const ranking = [];
  const buttons = trial.options.map((option) => {
    const button = document.createElement("button");
    button.className = "option";
    button.type = "button";
    button.dataset.key = option.key;
    const img = document.createElement("img");
    img.src = option.url;
    img.alt = `option ${option.key}`;
    button.append(img);
    button.addEventListener("click", () => pick(option.key, button));
    return button;
  });
  $("options").replaceChildren(...buttons);
  $("actions").hidden = trial.task !== 1;
  $("submit").disabled = true;

  async function send(answer) {
    buttons.forEach((b) => (b.disabled = true));
    try {
      await api("POST", "/api/vote", { participant: id, trial: trial.id, ...answer });
      await next();
    } catch (err) {
      $("message").textContent = err.message;
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function pick(key, button) {
    if (trial.task === 2) return send({ choice: key });
    if (ranking.includes(key)) return;
    ranking.push(key);
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(ranking.length);
    button.append(badge);
    button.classList.add("ranked");
    $("submit").disabled = ranking.length !== trial.options.length;
  }

  $("reset").onclick = () => show(id, trial);
  $("submit").onclick = () => send({ ranking: [...ranking] });
}

next().catch((err) => {
  $("message").textContent = err.message;
});
