// swinir serve page: plain JavaScript, no build step, no CDN. Talks to the API on the same origin.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const STORE = "swinir.jobs";
const FINISHED = ["done", "failed", "cancelled"];
const TASKS = {
  lightweight_sr: "Super-resolution (compact)", classical_sr: "Super-resolution (classical)",
  real_sr: "Real-world photos", compressed_sr: "Super-resolution of JPEG images", denoise: "Denoising",
  jpeg: "JPEG artifacts",
};
let picked = [];
let models = [];

function stored() { try { return JSON.parse(localStorage.getItem(STORE)) || []; } catch (e) { return []; } }
function store(entries) { localStorage.setItem(STORE, JSON.stringify(entries.slice(-60))); }
function say(text, bad) { const m = $("#message"); m.textContent = text; m.className = bad ? "bad" : ""; }

async function loadModels() {
  const resp = await fetch("/api/models");
  if (!resp.ok) { say((await resp.json()).error || "cannot list the models", true); return; }
  const body = await resp.json();
  models = body.models;
  for (const select of [$("#model"), $("#compare")]) {
    const groups = {};
    for (const m of models) {
      // one group per task and architecture family: "Super-resolution (classical) · Swin2SR"
      const task = `${TASKS[m.task] || m.task} · ${m.builtin ? "built-in" : m.family}`;
      if (!groups[task]) { groups[task] = document.createElement("optgroup"); groups[task].label = task; select.append(groups[task]); }
      const note = m.cached ? "" : m.downloadable ? ", downloads on first use" : ", file not in the server's cache";
      const opt = new Option(`${m.name} (${m.level}${note})`, m.name);
      opt.title = about(m);
      groups[task].append(opt);
    }
  }
  $("#model").value = body.default;
  describe();
}

// a file without a direct download (HAT's) that is not cached: where to get it, and where it goes
function about(m) {
  if (m.cached || m.downloadable) return m.description;
  return `${m.description}; put ${m.filename} (from ${m.page}) into the server's model cache`;
}

function describe() {
  const m = models.find((x) => x.name === $("#model").value);
  $("#model-desc").textContent = m ? about(m) : "";
  ready();
}

function ready() { $("#run").disabled = !picked.length || !$("#model").value; }

function pick(files) {
  picked = Array.from(files).filter((f) => f.size > 0);
  say(picked.length ? `${picked.length} image(s): ${picked.map((f) => f.name).join(", ")}` : "");
  ready();
}

function options() {
  const o = { tile: $("#tile").value || "512", overlap: $("#overlap").value || "32", precision: $("#precision").value,
    format: $("#format").value, ensemble: $("#ensemble").checked ? "true" : "false" };
  if ($("#outscale").value) o.outscale = $("#outscale").value;
  return o;
}

async function submit() {
  const chosen = [$("#model").value, ...Array.from($("#compare").selectedOptions).map((o) => o.value)];
  const runModels = [...new Set(chosen)].slice(0, 3);
  const t0 = Date.now();
  const groups = picked.map((f, i) => ({ key: `${t0}-${i}`, title: f.name }));
  $("#run").disabled = true;
  const entries = stored();
  for (const model of runModels) {
    const form = new FormData();
    picked.forEach((f) => form.append("files", f, f.name));
    form.append("model", model);
    for (const [k, v] of Object.entries(options())) form.append(k, v);
    const resp = await fetch("/api/jobs", { method: "POST", body: form });
    const body = await resp.json();
    const refused = body.refused || [];  // files the server would not take, each with its reason
    for (const r of refused) showRefused({ group: groups[r.index].key, title: groups[r.index].title, model }, r);
    if (!resp.ok) {
      const wait = resp.headers.get("Retry-After");
      say(`${model}: ${body.error}${wait ? ` (retry in ${wait} s)` : ""}`, true);
      continue;
    }
    const taken = picked.map((f, i) => i).filter((i) => !refused.some((r) => r.index === i));
    body.jobs.forEach((job, k) => {
      const g = groups[taken[k]];
      const entry = { id: job.id, group: g.key, title: g.title, model, t0 };
      entries.push(entry);
      show(entry, job);
    });
    if (refused.length) {
      say(`${model}: ${body.jobs.length} of ${picked.length} submitted; refused ${refused.map((r) => r.error).join("; ")}`, true);
    } else {
      say(`submitted to ${model}`);
    }
  }
  store(entries);
  ready();
}

function groupFor(entry) {
  let g = document.querySelector(`.group[data-group="${CSS.escape(entry.group)}"]`);
  if (!g) {
    g = $("#group-tpl").content.firstElementChild.cloneNode(true);
    g.dataset.group = entry.group;
    $(".group-title", g).textContent = entry.title;
    $("#list").prepend(g);
  }
  $("#empty").hidden = true;
  return g;
}

function newPanel(entry) {
  const panel = $("#panel-tpl").content.firstElementChild.cloneNode(true);
  $(".model-name", panel).textContent = entry.model;
  $(".panels", groupFor(entry)).append(panel);
  return panel;
}

function show(entry, job) {
  const panel = newPanel(entry);
  panel.dataset.job = entry.id;
  $(".cancel", panel).onclick = () => fetch(`/api/jobs/${entry.id}`, { method: "DELETE" });
  update(panel, entry, job);
  if (!FINISHED.includes(job.state)) follow(panel, entry);
}

function showRefused(entry, refusal) {
  const panel = newPanel(entry);
  panel.dataset.state = "refused";
  const state = $(".state", panel);
  state.textContent = `refused (${refusal.status})`;
  state.dataset.state = "refused";
  $("progress", panel).hidden = true;
  $(".cancel", panel).hidden = true;
  const detail = $(".detail", panel);
  detail.textContent = refusal.error;
  detail.className = "detail bad";
}

function follow(panel, entry) {
  const events = new EventSource(`/api/jobs/${entry.id}/events`);
  events.onmessage = (ev) => {
    const job = JSON.parse(ev.data);
    update(panel, entry, job);
    if (FINISHED.includes(job.state)) events.close();
  };
  events.onerror = () => { if (events.readyState === EventSource.CLOSED) $(".detail", panel).textContent = "lost the server"; };
}

function update(panel, entry, job) {
  const state = $(".state", panel);
  state.textContent = job.state;
  state.dataset.state = job.state;
  panel.dataset.state = job.state;
  const bar = $("progress", panel);
  const detail = $(".detail", panel);
  detail.className = "detail";
  const p = job.progress;
  $(".cancel", panel).hidden = FINISHED.includes(job.state);
  if (job.phase === "downloading model") {
    const d = job.download;
    bar.value = d.bytes_total ? d.bytes_done / d.bytes_total : 0;
    detail.textContent = `downloading the model: ${(d.bytes_done / 1048576).toFixed(1)}` +
      (d.bytes_total ? ` of ${(d.bytes_total / 1048576).toFixed(1)} MB` : " MB");
  } else if (job.state === "running") {
    bar.value = p.fraction;
    detail.textContent = p.tiles_total ? `${p.tiles_done} of ${p.tiles_total} tiles` +
      (p.eta_s != null ? `, about ${Math.ceil(p.eta_s)} s left` : "") : job.phase;
  } else if (job.state === "queued") {
    bar.removeAttribute("value");
    detail.textContent = "waiting in the queue";
  } else {
    bar.value = job.state === "done" ? 1 : bar.value || 0;
  }
  if (job.state === "failed" || job.state === "cancelled") {
    detail.textContent = job.error || job.state;
    detail.className = "detail bad";
  }
  if (job.state === "done" && panel.dataset.shown !== "1") finished(panel, entry, job);
}

function finished(panel, entry, job) {
  panel.dataset.shown = "1";
  const elapsed = Date.now() - entry.t0;
  if (!entry.restored) panel.dataset.elapsedMs = String(elapsed);
  const timing = entry.restored ? `restored in ${job.seconds.toFixed(1)} s` :
    `upload to result ${(elapsed / 1000).toFixed(1)} s (restore ${job.seconds.toFixed(1)} s)`;
  $(".detail", panel).textContent = `${job.input.width}x${job.input.height} → ${job.output.width}x${job.output.height}, ${timing}` +
    (job.precision ? `, ${job.precision}` : "");
  const link = $(".download", panel);
  link.href = `/api/jobs/${job.id}/result`;
  link.download = job.output.name;
  viewer(panel, job);
}

function viewer(panel, job) {
  const box = $(".viewer", panel);
  const after = $(".after", panel);
  const before = $(".before", panel);
  const clip = $(".before-clip", panel);
  const line = $(".divider", panel);
  const slider = $(".slider", panel);
  const zoom = $(".zoom", panel);
  const sideBefore = $(".side-before", panel);
  const sideAfter = $(".side-after", panel);
  const w = job.output.width;
  const h = job.output.height;
  const view = { x: 0, y: 0, z: 1 };
  box.hidden = false;
  $(".tools", panel).hidden = false;
  sideAfter.textContent = job.model;
  slider.setAttribute("aria-label", `input | ${job.model}`);
  after.src = `/api/jobs/${job.id}/result`;
  before.src = `/api/jobs/${job.id}/preview`;  // a PNG: browsers cannot show every input (TIFF)
  const clamp = () => {
    view.x = Math.min(0, Math.max(view.x, box.clientWidth - w * view.z));
    view.y = Math.min(0, Math.max(view.y, box.clientHeight - h * view.z));
    if (w * view.z < box.clientWidth) view.x = (box.clientWidth - w * view.z) / 2;
    if (h * view.z < box.clientHeight) view.y = (box.clientHeight - h * view.z) / 2;
  };
  const draw = () => {
    clamp();
    for (const img of [after, before]) { img.style.width = `${w * view.z}px`; img.style.height = `${h * view.z}px`; }
    $(".stage", panel).style.transform = `translate(${view.x}px, ${view.y}px)`;
    // the slider spans the image as far as it is in view: its ends put the divider on the image's edges
    const left = Math.max(0, view.x);
    const right = Math.min(box.clientWidth, view.x + w * view.z);
    const at = left + (slider.value / slider.max) * Math.max(0, right - left);
    const cut = at - view.x;
    clip.style.width = `${cut}px`;
    line.style.left = `${cut}px`;
    panel.dataset.split = String(Math.round(cut));
    const top = `${Math.max(0, view.y) + 6}px`;
    sideBefore.style.top = sideAfter.style.top = top;
    sideBefore.style.left = `${left + 6}px`;
    sideAfter.style.right = `${box.clientWidth - right + 6}px`;
    // a side's label shows while that side has room for it
    sideBefore.style.visibility = at - left >= sideBefore.offsetWidth + 12 ? "visible" : "hidden";
    sideAfter.style.visibility = right - at >= sideAfter.offsetWidth + 12 ? "visible" : "hidden";
  };
  view.x = (box.clientWidth - w) / 2;
  view.y = (box.clientHeight - h) / 2;
  let drag = null;
  box.onpointerdown = (ev) => { drag = { x: ev.clientX - view.x, y: ev.clientY - view.y }; box.setPointerCapture(ev.pointerId); box.classList.add("dragging"); };
  box.onpointermove = (ev) => { if (drag) { view.x = ev.clientX - drag.x; view.y = ev.clientY - drag.y; draw(); } };
  box.onpointerup = () => { drag = null; box.classList.remove("dragging"); };
  slider.oninput = draw;
  zoom.onchange = () => {
    const cx = (box.clientWidth / 2 - view.x) / view.z;
    const cy = (box.clientHeight / 2 - view.y) / view.z;
    view.z = Number(zoom.value);
    view.x = box.clientWidth / 2 - cx * view.z;
    view.y = box.clientHeight / 2 - cy * view.z;
    draw();
  };
  window.addEventListener("resize", draw);
  draw();
}

async function restoreRecent() {
  const kept = [];
  for (const entry of stored()) {
    const resp = await fetch(`/api/jobs/${entry.id}`);
    if (!resp.ok) continue; // expired on the server
    entry.restored = true;
    kept.push(entry);
    show(entry, await resp.json());
  }
  store(kept.map(({ restored, ...e }) => e));
}

function forgetFinished() {
  const over = Array.from(document.querySelectorAll(".panel")).filter((p) => [...FINISHED, "refused"].includes(p.dataset.state));
  const done = new Set(over.map((p) => p.dataset.job));
  store(stored().filter((e) => !done.has(e.id)));
  over.forEach((p) => p.remove());
  document.querySelectorAll(".group").forEach((g) => { if (!$(".panel", g)) g.remove(); });
  $("#empty").hidden = !!$(".group");
}

function wire() {
  const drop = $("#drop");
  $("#files").onchange = (ev) => pick(ev.target.files);
  drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (ev) => { ev.preventDefault(); drop.classList.remove("over"); pick(ev.dataTransfer.files); };
  $("#model").onchange = describe;
  $("#run").onclick = () => submit().catch((e) => { say(String(e), true); ready(); });
  $("#clear").onclick = forgetFinished;
}

wire();
loadModels().then(restoreRecent).catch((e) => say(`cannot reach the server: ${e}`, true));
