// SPDX-License-Identifier: Apache-2.0
// crmon's live page: one EventSource stream from the agent ("init" with
// the history, then a "tick" per sample), drawn on canvases by hand.
"use strict";

const $ = (id) => document.getElementById(id);
const css = getComputedStyle(document.documentElement);
const color = (n) => css.getPropertyValue("--" + n).trim();

// ---- units -----------------------------------------------------------
const PREFIX = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
function bytes(v) {
  if (v == null || isNaN(v)) return "n/a";
  let i = 0;
  while (Math.abs(v) >= 1024 && i < PREFIX.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + PREFIX[i];
}
const rate = (v) => v == null ? "n/a" : bytes(v) + "/s";
const pct = (v) => v == null ? "n/a" : v.toFixed(v < 10 ? 1 : 0) + " %";
function ms(sec) {
  if (sec == null) return "n/a";
  const m = sec * 1000;
  if (m >= 1000) return (m / 1000).toFixed(2) + " s";
  return (m < 1 ? m.toPrecision(2) : m < 10 ? m.toFixed(2) : m.toFixed(0)) + " ms";
}
function dur(sec) {
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60), s = sec % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

// ---- charts ----------------------------------------------------------
// draw plots series [{v: [...], color, label}] against times t (ms) over
// the last `win` seconds, y from 0 to a rounded maximum (at least floor).
function draw(canvas, t, series, fmt, floor) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const L = 64, R = 6, T = 6, B = 16;
  // The x axis spans the data, from 30 seconds up to the window, so
  // that a page just opened does not squeeze it against "now".
  const now = state.now || Date.now();
  const first = t.find((x) => x >= now - state.window * 1000) ?? now;
  const span = Math.min(state.window, Math.max(30, (now - first) / 1000));
  const from = now - span * 1000;
  let top = floor || 0, points = 0;
  for (const s of series) for (let i = 0; i < s.v.length; i++) if (s.v[i] != null && t[i] >= from) { top = Math.max(top, s.v[i]); points++; }
  top = (fmt === bytes || fmt === rate) ? niceBin(top || 1) : nice(top || 1);
  g.font = "10px system-ui, sans-serif";
  g.strokeStyle = "#e3e6ec"; g.fillStyle = "#6b7385"; g.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const y = T + (h - T - B) * (1 - k / 4);
    g.beginPath(); g.moveTo(L, y + .5); g.lineTo(w - R, y + .5); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle"; g.fillText(fmt(top * k / 4), L - 4, y);
  }
  g.textAlign = "center"; g.textBaseline = "bottom";
  for (let k = 0; k <= 3; k++) {
    const x = L + (w - L - R) * k / 3, ago = span * (3 - k) / 3;
    const label = k === 3 ? "now" : ago >= 90 ? "−" + Math.round(ago / 60) + " min" : "−" + Math.round(ago) + " s";
    g.fillText(label, Math.min(Math.max(x, L + 14), w - R - 12), h);
  }
  const X = (tm) => L + (w - L - R) * (tm - from) / (now - from);
  const Y = (v) => T + (h - T - B) * (1 - v / top);
  const gap = state.interval * 1000 * 3.5;
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
    let pen = false, last = 0;
    for (let i = 0; i < s.v.length; i++) {
      if (t[i] < from) continue;
      if (s.v[i] == null || (pen && t[i] - last > gap)) { pen = false; if (s.v[i] == null) continue; }
      const x = X(t[i]), y = Y(s.v[i]);
      pen ? g.lineTo(x, y) : g.moveTo(x, y); pen = true; last = t[i];
    }
    g.stroke();
  }
  canvas.dataset.points = points;
}
function nice(v) {
  const e = Math.pow(10, Math.floor(Math.log10(v))), m = v / e;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * e;
}
function niceBin(v) { // byte axes end on a round number of KiB, MiB, GiB
  let u = 1; while (v >= 1024 * u) u *= 1024;
  return nice(v / u) * u;
}
function spark(canvas, v) {
  const dpr = window.devicePixelRatio || 1, w = 90, h = 20;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  let top = 100;
  for (const x of v) if (x != null) top = Math.max(top, x);
  g.strokeStyle = color("cpu"); g.lineWidth = 1.2; g.beginPath();
  let pen = false;
  for (let i = 0; i < v.length; i++) {
    if (v[i] == null) { pen = false; continue; }
    const x = w - (v.length - 1 - i) * (w / 59), y = h - 1 - (h - 2) * v[i] / top;
    pen ? g.lineTo(x, y) : g.moveTo(x, y); pen = true;
  }
  g.stroke();
}

// ---- state -----------------------------------------------------------
const state = {
  window: 900, interval: 1, now: 0, hist: null, rows: [], spark: {},
  sort: "cpu", asc: false, filter: "", paused: false, pending: null,
  selected: null, detail: null,
};
// What the tests (and the curious) read: renders, their cost, payloads.
window.crmonStats = { ticks: 0, renderMs: [], lastBytes: 0, initBytes: 0 };

function push(arr, v, max) { arr.push(v); if (arr.length > max) arr.splice(0, arr.length - max); }

function onInit(data) {
  const e = JSON.parse(data);
  window.crmonStats.initBytes = data.length;
  state.window = e.window; state.interval = e.interval || 1;
  state.hist = e.history; state.spark = e.spark || {};
  $("version").textContent = e.version || "";
  $("hostname").textContent = e.hostname || location.hostname;
  document.title = "crmon · " + (e.hostname || location.hostname);
  $("window").textContent = "up to the last " + Math.round(e.window / 60) + " minutes";
  apply(e, false);
}

function onTick(data) {
  const e = JSON.parse(data);
  window.crmonStats.lastBytes = data.length;
  const h = state.hist, p = e.host, t = Date.parse(p.t);
  if (!h.t.length || t > h.t[h.t.length - 1]) {
    const max = Math.ceil(state.window / state.interval) + 2;
    push(h.t, t, max); push(h.cpu, p.cpu, max); push(h.mem, p.mem_used, max);
    push(h.disk_r, p.disk_read, max); push(h.disk_w, p.disk_write, max);
    push(h.net_rx, p.net_rx, max); push(h.net_tx, p.net_tx, max);
    for (const r of e.rows) {
      if (r.gone) continue;
      const s = state.spark[r.key] || (state.spark[r.key] = []);
      push(s, r.cpu, 60);
    }
    const d = state.detail;
    if (d) {
      const r = e.rows.find((x) => x.key === d.key && !x.gone);
      if (r) {
        const max = Math.ceil(state.window / state.interval) + 2;
        push(d.t, t, max);
        for (const k of Object.keys(d.series)) push(d.series[k], k === "mem" ? r.mem : r[k], max);
      }
    }
  }
  if (state.paused) { state.pending = e; return; }
  apply(e, true);
}

function apply(e, tick) {
  const t0 = performance.now();
  state.now = Date.parse(e.host.t);
  state.rows = e.rows;
  header(e);
  hostCharts();
  table();
  alerts(e.alerts || []);
  sessions(e.sessions || []);
  if (state.detail) detailCharts();
  const ms = performance.now() - t0;
  if (tick) { window.crmonStats.ticks++; push(window.crmonStats.renderMs, ms, 120); }
  document.body.dataset.updated = e.host.t;
}

function header(e) {
  const h = e.host;
  $("s-cpu").textContent = pct(h.cpu) + " of " + h.cores + " cores";
  $("s-load").textContent = h.load.map((x) => x.toFixed(2)).join(" ");
  $("s-mem").textContent = bytes(h.mem_used) + " of " + bytes(h.mem_total);
  $("s-disk").textContent = bytes(h.disk_used) + " of " + bytes(h.disk_total);
  $("s-uptime").textContent = dur(h.uptime);
  $("s-ctrs").textContent = h.running + " running of " + h.containers;
  const pr = $("s-probes"), probes = e.probe_status || [];
  pr.replaceChildren();
  if (!probes.length) pr.textContent = e.ebpf ? "on" : "off";
  for (const p of probes) {
    const s = document.createElement("span");
    s.className = "probe " + (p.up ? "up" : "down"); s.textContent = p.name;
    if (p.error) s.title = p.error;
    pr.append(s);
  }
  $("n-cpu").textContent = pct(h.cpu);
  $("n-mem").textContent = bytes(h.mem_used) + " of " + bytes(h.mem_total);
  $("n-disk").innerHTML = key("read") + "read " + rate(h.disk_read) + key("write") + "write " + rate(h.disk_write);
  $("n-net").innerHTML = key("rx") + "rx " + rate(h.net_rx) + key("tx") + "tx " + rate(h.net_tx);
}
const key = (c) => `<span class="key k-${c}"></span>`;

function hostCharts() {
  const h = state.hist;
  if (!h) return;
  draw($("c-cpu"), h.t, [{ v: h.cpu, color: color("cpu") }], (v) => v.toFixed(0) + " %", 100);
  draw($("c-mem"), h.t, [{ v: h.mem, color: color("mem") }], bytes, 1024 * 1024 * 1024);
  draw($("c-disk"), h.t, [{ v: h.disk_r, color: color("read") }, { v: h.disk_w, color: color("write") }], rate, 1024);
  draw($("c-net"), h.t, [{ v: h.net_rx, color: color("rx") }, { v: h.net_tx, color: color("tx") }], rate, 1024);
}

// ---- the table -------------------------------------------------------
const COLS = ["name", "image", "cpu", "spark", "runq", "mem", "blk_r", "blk_w", "lat_p99", "net_rx", "net_tx", "age"];
const trs = new Map(); // key -> tr

function cellText(r, c) {
  switch (c) {
    case "name": return r.name;
    case "image": return r.image || "";
    case "cpu": return pct(r.cpu);
    case "runq": return pct(r.runq);
    case "mem": return r.mem == null ? "n/a" : bytes(r.mem);
    case "blk_r": case "blk_w": case "net_rx": case "net_tx": return rate(r[c]);
    case "lat_p99": return r.lat_p99 == null ? (r.blk_r == null ? "n/a" : "–") : ms(r.lat_p99);
    case "age": return r.started ? dur((state.now - Date.parse(r.started)) / 1000) : "";
  }
  return "";
}
function sortValue(r, k) {
  if (k === "name" || k === "image") return (r[k] || "").toLowerCase();
  if (k === "age") return r.started ? state.now - Date.parse(r.started) : null;
  return r[k];
}

function row(r) {
  let tr = trs.get(r.key);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.key = r.key;
    for (const c of COLS) {
      const td = document.createElement("td");
      td.className = c + (["name", "image", "spark"].includes(c) ? "" : " num");
      if (c === "spark") td.append(document.createElement("canvas"));
      tr.append(td);
    }
    tr.addEventListener("click", () => openDetail(r.key));
    trs.set(r.key, tr);
  }
  tr.classList.toggle("gone", !!r.gone);
  tr.classList.toggle("stopped", !r.gone && r.state && r.state !== "running");
  tr.classList.toggle("selected", state.selected === r.key);
  tr.title = r.key;
  for (let i = 0; i < COLS.length; i++) {
    const c = COLS[i], td = tr.children[i];
    if (c === "spark") { spark(td.firstChild, state.spark[r.key] || []); continue; }
    const s = cellText(r, c);
    if (td.textContent !== s) td.textContent = s;
    td.classList.toggle("na", s === "n/a");
  }
  const cpuTd = tr.children[2];
  cpuTd.style.backgroundSize = Math.min(100, r.cpu || 0) + "% 100%";
  // Waiting for a CPU half the time or more: starved, worth a look.
  tr.children[4].classList.toggle("warn", r.runq != null && r.runq >= 50);
  return tr;
}

function table() {
  const f = state.filter.toLowerCase();
  let rows = state.rows.filter((r) => !f || r.name.toLowerCase().includes(f) || (r.image || "").toLowerCase().includes(f) || r.key.includes(f));
  const k = state.sort;
  const textual = k === "name" || k === "image";
  rows.sort((a, b) => {
    const x = sortValue(a, k), y = sortValue(b, k);
    let c = 0;
    if (x == null && y == null) c = 0;
    else if (x == null) return 1;
    else if (y == null) return -1;
    else c = x < y ? -1 : x > y ? 1 : 0;
    if (!textual) c = -c; // figures: largest first by default
    c = state.asc ? -c : c;
    return c || a.name.localeCompare(b.name);
  });
  const live = new Set(state.rows.map((r) => r.key));
  for (const [key, tr] of trs) if (!live.has(key)) { tr.remove(); trs.delete(key); delete state.spark[key]; }
  const body = $("rows").tBodies[0];
  const busiest = Math.max(...state.rows.map((r) => r.cpu || 0));
  rows.forEach((r, i) => {
    const tr = row(r);
    tr.classList.toggle("hot", !r.gone && r.cpu != null && r.cpu >= 50 && r.cpu === busiest);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  while (body.children.length > rows.length) body.lastChild.remove();
  const running = state.rows.filter((r) => !r.gone && r.state === "running").length;
  $("c-count").textContent = f ? `${rows.length} shown of ${state.rows.length}` : `${running} running, ${state.rows.length} listed`;
  $("empty").hidden = state.rows.length > 0;
  for (const th of document.querySelectorAll("#rows th[data-key]")) {
    th.classList.toggle("sorted", th.dataset.key === k);
    th.classList.toggle("asc", th.dataset.key === k && state.asc);
  }
}

for (const th of document.querySelectorAll("#rows th[data-key]")) {
  th.addEventListener("click", () => {
    const k = th.dataset.key;
    if (state.sort === k) state.asc = !state.asc; else { state.sort = k; state.asc = false; }
    table();
  });
}
$("filter").addEventListener("input", (ev) => { state.filter = ev.target.value; table(); });

// ---- alerts and sessions ---------------------------------------------
function fill(section, items, cells) {
  const sec = $(section), body = sec.querySelector("tbody");
  sec.hidden = items.length === 0;
  body.replaceChildren(...items.map((it) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(it)) {
      const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.append(td);
    }
    return tr;
  }));
}
function alerts(list) {
  fill("alerts", list, (a) => [
    [a.state, a.state], [a.severity], [a.name + (a.labels && a.labels.name ? " (" + a.labels.name + ")" : "")],
    [a.message], [String(+a.value.toFixed(2)), "num"], [String(a.threshold), "num"],
    [dur((state.now - Date.parse(a.active_at)) / 1000)],
  ]);
}
function sessions(list) {
  fill("sessions", list, (s) => [
    [s.name], [new Date(s.started_at).toLocaleTimeString()], [dur((state.now - Date.parse(s.started_at)) / 1000)],
    [String(s.containers), "num"], [String(s.owner_uid), "num"],
  ]);
}

// ---- a container's charts --------------------------------------------
async function openDetail(key) {
  state.selected = key;
  try {
    const res = await fetch("api/v1/live/container?key=" + encodeURIComponent(key), { cache: "no-store" });
    if (!res.ok) throw new Error(res.status + " " + (await res.text()));
    const d = await res.json();
    if (state.selected !== key) return;
    state.detail = d;
    $("detail").hidden = false;
    $("d-name").textContent = d.name;
    $("d-image").textContent = d.image || "";
    detailCharts();
    table();
    $("detail").scrollIntoView({ block: "nearest" });
  } catch (err) {
    console.error("crmon: loading the container's charts:", err);
  }
}
function detailCharts() {
  const d = state.detail, s = d.series;
  draw($("d-cpu"), d.t, [{ v: s.cpu, color: color("cpu") }], (v) => v.toFixed(0) + " %", 100);
  draw($("d-runq"), d.t, [{ v: s.runq, color: color("cpu") }], (v) => v.toFixed(v < 10 ? 1 : 0) + " %", 1);
  draw($("d-mem"), d.t, [{ v: s.mem, color: color("mem") }], bytes, 1024 * 1024);
  draw($("d-blk"), d.t, [{ v: s.blk_r, color: color("read") }, { v: s.blk_w, color: color("write") }], rate, 1024);
  draw($("d-lat"), d.t, [{ v: s.lat_p99, color: color("write") }], ms, 0.001);
  draw($("d-net"), d.t, [{ v: s.net_rx, color: color("rx") }, { v: s.net_tx, color: color("tx") }], rate, 1024);
}
function closeDetail() { state.selected = null; state.detail = null; $("detail").hidden = true; table(); }
$("d-close").addEventListener("click", closeDetail);

// ---- pause, keys, the stream -----------------------------------------
function setStatus(cls, text) { const s = $("status"); s.className = "status " + cls; s.textContent = text; }
function togglePause() {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "resume" : "pause";
  if (state.paused) setStatus("paused", "paused");
  else { setStatus("live", "live"); if (state.pending) { apply(state.pending, true); state.pending = null; } }
}
$("pause").addEventListener("click", togglePause);
document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT") { if (ev.key === "Escape") ev.target.blur(); return; }
  if (ev.key === " ") { ev.preventDefault(); togglePause(); }
  else if (ev.key === "/") { ev.preventDefault(); $("filter").focus(); }
  else if (ev.key === "Escape") closeDetail();
});

function connect() {
  const es = new EventSource("api/v1/live/events");
  es.addEventListener("init", (ev) => { onInit(ev.data); if (!state.paused) setStatus("live", "live"); });
  es.addEventListener("tick", (ev) => onTick(ev.data));
  es.onerror = () => { if (!state.paused) setStatus("lost", "reconnecting…"); };
}
window.addEventListener("resize", () => { hostCharts(); if (state.detail) detailCharts(); });
connect();
