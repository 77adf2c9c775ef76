// The town's life on social and economy levels (L4, L5): ties, queues, jobs, active events, and
// the timeline with its markers. Loaded before observer.js, whose `state`, `$` and `command`
// these functions use when they are called (schema: docs/telemetry.md).
"use strict";

const SHIFT_TEXT = {
  fired: "fired", off: "off shift", absent: "missed its last shift", due: "shift started, on its way",
  overdue: "overdue", on_time: "on time", late: "late",
};

function lifeHello(msg) {
  const economy = msg.level.economy;
  $("life").hidden = !economy && !msg.level.social;
  $("ties-box").hidden = !msg.level.social;
  $("events-box").hidden = !economy;
  $("cmd-event").hidden = !(msg.role === "admin" && msg.commands.includes("trigger_event"));
  $("event-name").innerHTML = (economy ? economy.events : []).map((e) =>
    `<option value="${e.name}">${e.name} (${e.kind})</option>`).join("");
  $("timeline").querySelectorAll(".marker").forEach((m) => m.remove());
  $("timeline").dataset.key = "";
}

function eventName(index) {
  const economy = state.hello.level.economy;
  return economy ? economy.events[index].name : `event ${index}`;
}

function describeEvent(event) {
  const h = state.hello;
  const who = event.slot !== undefined ? `agent ${event.slot}` : `town ${event.town}`;
  const what = {
    use: () => `uses ${h.level.affordances[event.affordance]}`,
    death: () => "died",
    exit: () => `left (${event.reason})`,
    newcomer: () => "arrives",
    event_start: () => `${eventName(event.event)} starts`,
    event_end: () => `${eventName(event.event)} ends`,
    regeneration: () => "is regenerated",
  }[event.kind];
  return `tick ${event.tick}: ${who} ${what ? what() : event.kind}`;
}

function jobText(agent) {
  const economy = state.hello.level.economy;
  if (!agent.job || !economy) return "";
  const job = agent.job, employer = economy.employers[job.employer];
  const place = state.hello.level.affordances[employer.place];
  const [start, end] = employer.shift;
  return `${place} ${start}-${end}h: ${SHIFT_TEXT[job.shift] || job.shift}${job.on_site ? ", on site" : ""}` +
    `, ${job.absences} absence${job.absences === 1 ? "" : "s"}${job.firings ? `, fired ${job.firings}x` : ""}`;
}

function drawLife(town, msg) {
  drawTimeline(msg.timeline, msg.tick, town.town);
  if (town.ties) drawTies(town);
  const lv = state.hello.level;
  const active = (town.events || []).map((e) => {
    const spec = lv.economy.events[e.event];
    const targets = spec.targets.map((a) => lv.affordances[a]).join(", ");
    const value = spec.kind === "outage" ? "" : `, x${e.value.toFixed(2)}`; // an outage has no multiplier
    return `<li data-event="${spec.name}">${spec.name}: ${spec.kind} of ${targets}${value}, ` +
      `${e.left} tick${e.left === 1 ? "" : "s"} left</li>`;
  });
  $("active-events").innerHTML = active.join("") || '<li class="note">none</li>';
  const queues = (town.queues || []).map((slots, a) =>
    slots.length ? `<li data-affordance="${a}">${lv.affordances[a]}: ${slots.map((s) => `agent ${s}`).join(", ")}</li>` : "");
  $("queues").innerHTML = queues.join("") || '<li class="note">nobody queues</li>';
}

function drawTies(town) {
  const table = $("ties"), slots = town.agents.map((a) => a.slot);
  const cell = (v) => `background:hsl(${v >= 0 ? 140 : 0}, 60%, ${95 - 40 * Math.min(1, Math.abs(v))}%)`;
  table.innerHTML = `<tr><th></th>${slots.map((s) => `<th>${s}</th>`).join("")}</tr>` +
    town.ties.trust.map((row, a) => `<tr><th>${slots[a]}</th>${row.map((v, b) => a === b ? "<td>-</td>" :
      `<td data-from="${slots[a]}" data-to="${slots[b]}" style="${cell(v)}">${v.toFixed(2)}</td>`).join("")}</tr>`).join("");
}

// On the map: a line between two living agents that know each other, green for mutual trust,
// red for distrust, thicker the more familiar they are.
function drawTieLines(g, town, cell) {
  if (!town.ties) return;
  const { trust, familiarity } = town.ties, agents = town.agents;
  for (let a = 0; a < agents.length; a++) {
    for (let b = a + 1; b < agents.length; b++) {
      if (!agents[a].alive || !agents[b].alive) continue;
      const t = (trust[a][b] + trust[b][a]) / 2, f = (familiarity[a][b] + familiarity[b][a]) / 2;
      if (Math.abs(t) < 0.01 && f < 0.01) continue;
      g.strokeStyle = t >= 0 ? `rgba(42, 157, 143, ${0.3 + 0.7 * Math.min(1, t * 4)})` : `rgba(192, 57, 43, ${0.3 + 0.7 * Math.min(1, -t * 4)})`;
      g.lineWidth = 1 + 4 * f;
      g.beginPath();
      g.moveTo((agents[a].x + 0.5) * cell, (agents[a].y + 0.6) * cell);
      g.lineTo((agents[b].x + 0.5) * cell, (agents[b].y + 0.6) * cell);
      g.stroke();
    }
  }
  g.lineWidth = 1;
}

// The markers of the town shown, placed by tick; in a replay an admin's click seeks there.
function drawTimeline(timeline, tick, townIndex) {
  const box = $("timeline"), end = Math.max(1, timeline.end);
  const markers = timeline.markers.filter((m) => m.town === townIndex);
  const key = `${end}|${townIndex}|` + markers.map((m) => `${m.kind}${m.tick}.${m.slot ?? m.event ?? ""}`).join();
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.querySelectorAll(".marker").forEach((m) => m.remove());
    for (const m of markers) {
      const b = document.createElement("button");
      b.className = `marker ${m.kind}`; b.dataset.tick = m.tick; b.dataset.kind = m.kind;
      b.style.left = `${(100 * m.tick) / end}%`; b.title = describeEvent(m);
      box.appendChild(b);
    }
  }
  $("timeline-cursor").style.left = `${(100 * Math.min(tick, end)) / end}%`;
  const scanning = timeline.known < timeline.end ? `, markers found up to tick ${timeline.known}` : "";
  $("timeline-note").textContent = `${markers.length} markers of town ${townIndex}${scanning}` +
    (state.hello.ticks !== undefined && state.role === "admin" ? " (click one to jump there)" : "");
}

// Called by observer.js once `$`, `state` and `command` exist.
function lifeListeners() {
  $("timeline").addEventListener("click", (event) => {
  const marker = event.target.closest(".marker");
  if (marker && state.hello && state.hello.ticks !== undefined) command("seek", { tick: Number(marker.dataset.tick) });
});
$("cmd-event").addEventListener("submit", (e) => {
  e.preventDefault();
  const town = focusedTown(), duration = Number($("event-duration").value);
  if (!town) return;
  command("trigger_event", { event: $("event-name").value, town: town.town, ...(duration ? { duration } : {}) });
});
$("cancel-event").addEventListener("click", () => {
  const town = focusedTown();
  if (town) command("cancel_event", { event: $("event-name").value, town: town.town });
});
}
