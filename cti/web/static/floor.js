// Supervisor floor: queues, agents and calls in progress, from /events.
"use strict";
const $ = (id) => document.getElementById(id);

function rows(table, items, cells) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const text of cells(item)) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
}

function show(floor) {
  rows("queues", floor.queues, (q) => [q.queue, q.waiting, q.longest_wait,
    Object.entries(q.agents).map(([state, n]) => `${n} ${state}`).join(", ") || "none"]);
  rows("agents", floor.agents, (a) => [a.interface, a.queues.map((m) => m.queue).join(", "),
    a.paused ? `paused (${a.queues[0].reason || "no reason"})` : [...new Set(a.queues.map((m) => m.device))].join(", ")]);
  rows("calls", floor.calls, (c) => [c.linkedid, c.caller, c.queue || "", c.state, c.agent || ""]);
}

const source = new EventSource("/events");
source.onopen = () => { $("live").dataset.state = "connected"; $("live").textContent = "connected"; };
source.onerror = () => { $("live").dataset.state = "reconnecting"; $("live").textContent = "reconnecting"; };
source.addEventListener("floor", (e) => show(JSON.parse(e.data)));
