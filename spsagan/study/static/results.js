// Results browser: bicubic, each method and HR side by side, with one zoom and pan shared by all panels.
"use strict";
const $ = (id) => document.getElementById(id);
const view = { x: 0, y: 0, scale: 1 }; // top-left image pixel shown, and screen pixels per image pixel
let size = { w: 1, h: 1 };
const SIDE = 300; // the viewport's side in CSS pixels (results.css)

function apply() {
  for (const img of document.querySelectorAll(".viewport img")) {
    img.style.transform = `translate(${-view.x * view.scale}px, ${-view.y * view.scale}px) scale(${view.scale})`;
  }
}

function fit() {
  view.scale = Math.min(SIDE / size.w, SIDE / size.h);
  view.x = 0;
  view.y = 0;
  apply();
}

function crop(x, y, side) {
  view.scale = SIDE / side;
  view.x = x;
  view.y = y;
  apply();
}

function viewport(panel) {
  const box = document.createElement("div");
  box.className = "viewport";
  const img = document.createElement("img");
  img.src = panel.url;
  img.alt = panel.label;
  img.addEventListener("load", () => {
    if (panel.first) {
      size = { w: img.naturalWidth, h: img.naturalHeight };
      fit();
    } else apply();
  });
  box.append(img);
  box.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = box.getBoundingClientRect();
    const px = view.x + (event.clientX - rect.left) / view.scale;
    const py = view.y + (event.clientY - rect.top) / view.scale;
    view.scale *= event.deltaY < 0 ? 1.25 : 0.8;
    view.x = px - (event.clientX - rect.left) / view.scale; // keep the pixel under the cursor in place
    view.y = py - (event.clientY - rect.top) / view.scale;
    apply();
  });
  box.addEventListener("pointerdown", (event) => {
    box.setPointerCapture(event.pointerId);
    let last = { x: event.clientX, y: event.clientY };
    const move = (e) => {
      view.x -= (e.clientX - last.x) / view.scale;
      view.y -= (e.clientY - last.y) / view.scale;
      last = { x: e.clientX, y: e.clientY };
      apply();
    };
    box.addEventListener("pointermove", move);
    box.addEventListener("pointerup", () => box.removeEventListener("pointermove", move), { once: true });
  });
  return box;
}

function showImage(entry) {
  const figures = entry.panels.map((panel, i) => {
    const figure = document.createElement("figure");
    figure.className = "panel";
    const caption = document.createElement("figcaption");
    caption.textContent = panel.label;
    figure.append(viewport({ ...panel, first: i === 0 }), caption);
    return figure;
  });
  $("panels").replaceChildren(...figures);
}

async function main() {
  const index = await (await fetch("/results/api/index")).json();
  if (index.table1) {
    $("table1").src = "/results/table1";
    $("table1").hidden = false;
  } else $("no-table1").hidden = false;
  const entries = index.datasets.flatMap((d) => d.images.map((image) => ({ ...image, label: `${d.name} / ${image.name}` })));
  $("image").replaceChildren(
    ...entries.map((entry, i) => Object.assign(document.createElement("option"), { value: i, textContent: entry.label })),
  );
  $("image").onchange = () => showImage(entries[$("image").value]);
  $("controls").onsubmit = (event) => {
    event.preventDefault();
    crop(Number($("crop-x").value), Number($("crop-y").value), Math.max(4, Number($("crop-size").value)));
  };
  $("fit").onclick = fit;
  if (entries.length) showImage(entries[0]);
}

main();
