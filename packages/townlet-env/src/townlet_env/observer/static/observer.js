// Townlet observer page: draws the telemetry of /ws (schema: docs/telemetry.md). No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY = 300; // ticks of meter history kept per slot for the inspector
const state = {
  ws: null, hello: null, last: null, role: null, frozen: false, focus: null, selected: null,
  history: new Map(), actions: new Map(), survival: [], frames: [], dropped: 0, events: [],
};

function connect(token) {
  if (state.ws) state.ws.close();
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.ws = ws; state.hello = null;
  setStatus("connecting", "");
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
  // a refused login has already said why: keep that rather than a bare "disconnected"
  ws.onclose = () => { if (state.ws === ws && $("status").className !== "badge bad") setStatus("disconnected", "bad"); };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") onHello(msg);
    else if (msg.type === "tick") onTick(msg);
    else if (msg.type === "ack") log(`ok ${msg.command} ${JSON.stringify(msg.detail)}`);
    else if (msg.type === "error") { log(`refused: ${msg.reason}`); if (!state.hello) setStatus(msg.reason, "bad"); }
  };
}

function setStatus(text, kind) { const s = $("status"); s.textContent = text; s.className = `badge ${kind}`; }
function log(text) { const c = $("console-log"); c.textContent = `${text}\n${c.textContent}`.slice(0, 4000); }
function command(name, extra = {}) {
  if (state.ws && state.role === "admin") state.ws.send(JSON.stringify({ type: "command", command: name, ...extra }));
}

function onHello(msg) {
  state.hello = msg; state.role = msg.role; state.last = null; // a new server may count ticks anew
  setStatus(`${msg.source} source`, "ok");
  $("role").textContent = msg.role;
  $("level-name").textContent = msg.level.name;
  $("console").hidden = msg.role !== "admin";
  $("playback-note").textContent = msg.role === "admin" ? "" : "viewer: play/pause freeze this page only";
  $("step").disabled = msg.role !== "admin";
  $("speed").disabled = msg.role !== "admin" || !msg.commands.includes("speed");
  $("scrub-box").hidden = msg.ticks === undefined; // a replay: the scrubber seeks in the recording
  $("scrub").max = msg.ticks || 0; $("scrub-len").textContent = `of ${msg.ticks}`;
  $("scrub").disabled = msg.role !== "admin";
  state.events = []; $("events").innerHTML = ""; $("events").dataset.town = "";
  lifeHello(msg);
  const legend = $("legend"); legend.innerHTML = "";
  msg.level.affordances.forEach((name, a) => {
    legend.insertAdjacentHTML("beforeend", `<span><i style="background:${color(a)}"></i>${name}</span>`);
  });
}

function onTick(msg) {
  const now = performance.now();
  state.frames.push(now);
  while (state.frames.length && now - state.frames[0] > 1000) state.frames.shift();
  state.dropped = msg.dropped;
  for (const town of msg.towns) for (const agent of town.agents) remember(agent);
  // events repeat over recent ticks so that dropped ticks lose none: take only the new ones
  for (const event of msg.events) if (state.last === null || event.tick > state.last.tick) addEvent(event);
  if (msg.training) state.survival.push(msg.training.survival);
  if (state.survival.length > 1000) state.survival.splice(0, state.survival.length - 1000);
  state.last = msg;
  if (!state.frozen) draw();
}

function remember(agent) {
  let h = state.history.get(agent.slot);
  if (!h) { h = []; state.history.set(agent.slot, h); }
  if (agent.life === 0) h.length = 0; // a newcomer in this slot: a new life, a new history
  h.push(agent.meters);
  if (h.length > HISTORY) h.shift();
  if (agent.action !== null) {
    const a = state.actions.get(agent.slot) || [];
    a.push(agent.action);
    state.actions.set(agent.slot, a.slice(-10));
  }
}

// The log keeps every watched town's events and lists those of the town shown.
function addEvent(event) {
  if (!state.hello) return;
  state.events.push(event);
  if (state.events.length > 2000) state.events.splice(0, state.events.length - 2000);
  const town = focusedTown();
  if (town && event.town === town.town) {
    const li = document.createElement("li");
    li.textContent = describeEvent(event); li.dataset.kind = event.kind;
    const list = $("events"); list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  }
}

function listEvents(townIndex) {
  const list = $("events"); list.innerHTML = ""; list.dataset.town = townIndex;
  for (const event of state.events.filter((e) => e.town === townIndex).slice(-200)) {
    const li = document.createElement("li");
    li.textContent = describeEvent(event); li.dataset.kind = event.kind; list.prepend(li);
  }
}

function color(i) { return `hsl(${(i * 137.5) % 360}, 60%, 60%)`; }

function focusedTown() {
  const towns = state.last ? state.last.towns : [];
  const select = $("focus");
  const ids = towns.map((t) => String(t.town));
  if ([...select.options].map((o) => o.value).join() !== ids.join()) {
    select.innerHTML = ids.map((t) => `<option value="${t}">${t}</option>`).join("");
    if (ids.includes(String(state.focus))) select.value = String(state.focus);
  }
  return towns.find((t) => String(t.town) === select.value) || towns[0];
}

function draw() {
  const msg = state.last, h = state.hello; if (!msg || !h) return;
  $("tick").textContent = msg.tick;
  $("fps").textContent = state.frames.length;
  $("drops").textContent = state.dropped;
  if (document.activeElement !== $("speed")) $("speed").value = msg.speed;
  if (document.activeElement !== $("scrub")) $("scrub").value = msg.tick;
  $("play").disabled = state.role === "admin" ? !msg.paused : !state.frozen;
  const town = focusedTown(); if (!town) return;
  $("clock").textContent = h.level.day_cycle ? `${String(town.hour).padStart(2, "0")}:00 (tick ${town.clock})` : `tick ${town.clock} (no day cycle)`;
  if ($("events").dataset.town !== String(town.town)) listEvents(town.town);
  drawMap(town); drawAgents(town); drawInspector(town); drawSurvival(msg.training); drawLife(town, msg);
}

function drawMap(town) {
  const lv = state.hello.level, canvas = $("map"), g = canvas.getContext("2d");
  const cell = Math.floor(Math.min(canvas.width / lv.width, canvas.height / lv.height));
  g.fillStyle = h24(town.hour, lv.day_cycle); g.fillRect(0, 0, canvas.width, canvas.height);
  g.strokeStyle = "#ccc";
  for (let x = 0; x <= lv.width; x++) { g.beginPath(); g.moveTo(x * cell, 0); g.lineTo(x * cell, lv.height * cell); g.stroke(); }
  for (let y = 0; y <= lv.height; y++) { g.beginPath(); g.moveTo(0, y * cell); g.lineTo(lv.width * cell, y * cell); g.stroke(); }
  g.fillStyle = "#444";
  for (const [x, y] of lv.walls) g.fillRect(x * cell, y * cell, cell, cell);
  g.font = `${Math.floor(cell / 3)}px sans-serif`; g.textAlign = "center"; g.textBaseline = "middle";
  town.affordances.forEach(([x, y], a) => {
    if (x < 0 || y < 0) return;
    g.fillStyle = color(a); g.fillRect(x * cell + 2, y * cell + 2, cell - 4, cell - 4);
    g.fillStyle = "#111"; g.fillText(lv.affordances[a].slice(0, 4), (x + 0.5) * cell, (y + 0.25) * cell);
    if (town.occupancy[a]) g.fillText(`x${town.occupancy[a]}`, (x + 0.8) * cell, (y + 0.85) * cell);
  });
  drawTieLines(g, town, cell);
  for (const agent of town.agents) {
    const cx = (agent.x + 0.5) * cell, cy = (agent.y + 0.6) * cell;
    g.beginPath(); g.arc(cx, cy, cell / 4, 0, 2 * Math.PI);
    g.fillStyle = agent.alive ? "#1d3557" : "#999"; g.fill();
    if (agent.slot === state.selected || agent.slot === state.last.controlled) {
      g.lineWidth = 3; g.strokeStyle = agent.slot === state.last.controlled ? "#e63946" : "#f4a261"; g.stroke(); g.lineWidth = 1;
    }
    g.fillStyle = "#fff"; g.fillText(String(agent.slot), cx, cy);
  }
  canvas.dataset.cell = cell;
}

function h24(hour, dayCycle) {
  if (!dayCycle) return "#fbfbf7";
  const light = 96 - 22 * Math.max(0, Math.cos(((hour - 0) / 24) * 2 * Math.PI));
  return `hsl(220, 30%, ${light}%)`;
}

function meterRows(agent) {
  return state.hello.level.meters.map((name) =>
    `<div class="meter" data-slot="${agent.slot}" data-meter="${name}"><span>${name}</span>` +
    '<div class="bar"><div></div></div><span class="value"></span></div>').join("");
}

function updateMeter(row, value, m) {
  const lv = state.hello.level, t = lv.thresholds[m];
  row.classList.toggle("low", (t !== null && value < t) || (lv.terminal[m] && value < 0.1));
  row.dataset.value = value;
  row.querySelector(".bar > div").style.width = `${(100 * value).toFixed(1)}%`;
  row.querySelector(".value").textContent = value.toFixed(2);
}

// The cards are built once per set of agents and then updated in place: rebuilding them every
// tick would replace the element under the pointer between mousedown and mouseup, losing clicks.
function drawAgents(town) {
  const box = $("agents"), key = town.agents.map((a) => a.slot).join();
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.innerHTML = town.agents.map((a) =>
      `<div class="agent" data-slot="${a.slot}"><b>agent ${a.slot}</b> <span class="life"></span>` +
      `<div class="job" hidden></div>${meterRows(a)}</div>`).join("");
  }
  for (const a of town.agents) {
    const card = box.querySelector(`.agent[data-slot="${a.slot}"]`);
    card.classList.toggle("selected", a.slot === state.selected);
    card.querySelector(".life").textContent = `${a.alive ? "" : "(dead) "}life ${a.life}` +
      (a.queue >= 0 ? `, queued (${a.queue} ahead)` : "");
    const job = card.querySelector(".job");
    job.hidden = !a.job; job.textContent = jobText(a);
    job.className = `job ${a.job ? a.job.shift : ""}`; job.dataset.shift = a.job ? a.job.shift : "";
    card.querySelectorAll(".meter").forEach((row, m) => updateMeter(row, a.meters[m], m));
  }
}

function drawInspector(town) {
  const agent = town.agents.find((a) => a.slot === state.selected);
  const box = $("inspector");
  if (!agent) { box.innerHTML = '<p class="note">click an agent on the map or in the list</p>'; return; }
  const lv = state.hello.level;
  const use = agent.affordance >= 0 ? `${lv.affordances[agent.affordance]}${agent.progress ? ` (tick ${agent.progress} of the use)` : ""}` : "nothing";
  const acts = (state.actions.get(agent.slot) || []).map((a) => lv.actions[a]).join(", ") || "-";
  box.innerHTML = `<b>agent ${agent.slot}</b> at (${agent.x}, ${agent.y}), standing on ${use}<br>last actions: ${acts}` +
    `<canvas id="history" width="360" height="120"></canvas>`;
  const canvas = $("history"), g = canvas.getContext("2d"), hist = state.history.get(agent.slot) || [];
  lv.meters.forEach((_, m) => {
    g.strokeStyle = color(m + 3); g.beginPath();
    hist.forEach((meters, i) => {
      const x = (i / Math.max(1, hist.length - 1)) * canvas.width, y = (1 - meters[m]) * (canvas.height - 2) + 1;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  });
}

function drawSurvival(training) {
  const canvas = $("survival");
  canvas.hidden = $("survival-title").hidden = !training;
  if (!training) return;
  $("training").textContent = `agent-steps ${training.agent_steps}, episodes ${training.episodes}, stage ${training.stage.toFixed(2)}, ` +
    `epsilon ${training.epsilon.toFixed(3)}, loss ${training.loss === null ? "-" : training.loss.toFixed(4)}`;
  const g = canvas.getContext("2d"), values = state.survival.filter((v) => v !== null);
  g.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1, ...values);
  g.strokeStyle = "#1d3557"; g.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(1, values.length - 1)) * canvas.width, y = canvas.height - (v / top) * (canvas.height - 10);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke(); g.fillStyle = "#222"; g.fillText(`max ${top.toFixed(0)}`, 4, 10);
}

function select(slot) { state.selected = slot; draw(); }

$("map").addEventListener("click", (event) => {
  const town = focusedTown(), cell = Number($("map").dataset.cell || 1); if (!town) return;
  const rect = $("map").getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / cell), y = Math.floor((event.clientY - rect.top) / cell);
  const hit = town.agents.find((a) => a.x === x && a.y === y);
  if (hit) select(hit.slot);
});
$("agents").addEventListener("click", (event) => {
  const el = event.target.closest(".agent"); if (el) select(Number(el.dataset.slot));
});
$("focus").addEventListener("change", () => { state.focus = $("focus").value; draw(); });
$("login").addEventListener("submit", (e) => { e.preventDefault(); connect($("token").value); });
$("play").addEventListener("click", () => { state.frozen = false; command("resume"); draw(); });
$("pause").addEventListener("click", () => { if (state.role === "admin") command("pause"); else state.frozen = true; draw(); });
$("step").addEventListener("click", () => command("step", { n: 1 }));
$("scrub").addEventListener("change", () => command("seek", { tick: Number($("scrub").value) }));
$("speed").addEventListener("change", () => command("speed", { value: Number($("speed").value) }));
const onSubmit = (id, fn) => $(id).addEventListener("submit", (e) => { e.preventDefault(); fn(); });
onSubmit("cmd-step", () => command("step", { n: Number($("step-n").value) }));
onSubmit("cmd-speed", () => command("speed", { value: Number($("speed-value").value) }));
onSubmit("cmd-difficulty", () => command("difficulty", { value: Number($("difficulty").value) }));
onSubmit("cmd-watch", () => command("watch", { towns: $("watch").value.split(",").filter((s) => s.trim()).map(Number) }));
onSubmit("cmd-control", () => command("control", { slot: Number($("control-slot").value) }));
$("release").addEventListener("click", () => command("release"));

const KEYS = { ArrowUp: "UP", w: "UP", ArrowDown: "DOWN", s: "DOWN", ArrowLeft: "LEFT", a: "LEFT",
  ArrowRight: "RIGHT", d: "RIGHT", " ": "INTERACT", e: "INTERACT", r: "REST", ".": "WAIT" };
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || !state.last || state.last.controlled === null) return;
  const name = KEYS[event.key];
  if (name && state.hello.level.actions.includes(name)) { event.preventDefault(); command("action", { action: name }); }
});

lifeListeners();
connect(new URLSearchParams(location.hash.slice(1)).get("token") || "");
