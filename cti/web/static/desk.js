// Agent desktop: live state and screen pops from /events (EventSource reconnects by
// itself), actions posted with the page's CSRF token. Text goes in with textContent.
"use strict";
const csrf = document.querySelector("meta[name=csrf-token]").content;
const $ = (id) => document.getElementById(id);
let current = null; // the pop event on screen

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function post(url, data) {
  const body = data instanceof FormData ? data : new FormData();
  if (!(data instanceof FormData)) for (const [k, v] of Object.entries(data || {})) body.append(k, v);
  body.append("csrf_token", csrf);
  const reply = await fetch(url, { method: "POST", body, headers: { "X-CSRFToken": csrf } });
  const json = await reply.json().catch(() => ({ error: reply.statusText }));
  if (!reply.ok) throw new Error(json.error || reply.statusText);
  return json;
}

function showAgent(state) {
  const mine = new Map(state.queues.map((m) => [m.queue, m]));
  const box = $("queues");
  box.replaceChildren();
  for (const queue of state.all_queues) {
    const member = mine.get(queue);
    const row = el("div", null, { class: "queue", "data-queue": queue, "data-member": member ? "yes" : "no" });
    row.append(el("strong", queue), " ");
    row.append(el("span", member ? (member.paused ? "paused" : member.device) : "not logged in", { class: "member-state" }), " ");
    const button = el("button", member ? "Log out" : "Log in", { type: "button", class: member ? "leave" : "join" });
    button.onclick = () => act(`/agent/queues/${encodeURIComponent(queue)}/${member ? "leave" : "join"}`);
    row.append(button);
    box.append(row);
  }
  const paused = state.queues.length && state.queues.every((m) => m.paused);
  $("agent-state").textContent = !state.queues.length ? "logged out" : paused ? "paused" : "available";
  $("pause-reason").textContent = paused ? state.queues[0].reason : "";
}

async function act(url, data) {
  $("state-error").textContent = "";
  try { await post(url, data); } catch (e) { $("state-error").textContent = e.message; }
}

function showCustomers(pop) {
  const box = $("customers");
  box.replaceChildren();
  $("new-customer").hidden = pop.customers.length > 0;
  if (!pop.customers.length) {
    $("new-customer").elements.phone.value = pop.caller_e164 || pop.caller || "";
    return;
  }
  if (pop.customers.length > 1)
    box.append(el("p", `${pop.customers.length} customers share this number: choose the caller.`, { id: "ambiguous" }));
  pop.customers.forEach((c, i) => {
    const card = el("div", null, { class: "customer", "data-customer-id": c.id });
    const title = el("h3");
    if (pop.customers.length > 1) {
      const pick = el("input", null, { type: "radio", name: "pick", value: c.id });
      pick.onchange = () => { $("disposition").elements.customer_id.value = c.id; };
      title.append(pick, " ");
    }
    const accounts = c.accounts.length
      ? c.accounts.map((a) => `${a.number} (${a.balance} ${a.currency}${a.status === "open" ? "" : ", " + a.status})`).join(", ")
      : "none";
    title.append(el("span", c.name, { class: "name" }), " ", el("small", `${c.tier} · accounts ${accounts}`, { class: "accounts" }));
    card.append(title, el("p", `Phones: ${c.phones.join(", ")} · matched by ${pop.match}`, { class: "muted" }));
    const list = (heading, items, text, extra) => {
      if (!items.length) return;
      card.append(el("h4", heading));
      const ul = el("ul", null, { class: heading.toLowerCase().replace(/ /g, "-") });
      items.forEach((item) => {
        const li = el("li", text(item));
        if (extra) li.append(" ", extra(item));
        ul.append(li);
      });
      card.append(ul);
    };
    list("Recent calls", c.calls, (x) => `${x.at} · ${x.disposition || x.outcome || "?"}${x.agent ? " · " + x.agent : ""}${x.notes ? " · " + x.notes : ""}`);
    list("Open commitments", c.commitments, (x) => `due ${x.due}: ${x.text}`);
    // Ticked, the disposition cancels the callback: this call dealt with it.
    list("Pending callbacks", c.callbacks, (x) => `${x.due}: ${x.reason}`, (x) => {
      const label = el("label");
      label.append(el("input", null, { type: "checkbox", name: "resolved_callbacks", value: x.id, form: "disposition" }), " resolved on this call");
      return label;
    });
    list("Survey answers", c.surveys, (x) => `${x.at}: ${x.question} = ${x.answer}`);
    card.append(editForm(c, title));
    box.append(card);
    if (i === 0) $("disposition").elements.customer_id.value = pop.customers.length === 1 ? c.id : "";
  });
}

function editForm(c, title) {
  // The agent corrects the record while on the call; "phone" adds a number to it and
  // "account" one more account (a number another customer holds is refused).
  const details = el("details", null, { class: "edit" });
  details.append(el("summary", "Edit record"));
  const form = el("form", null, { class: "edit-customer" });
  for (const [name, value] of [["name", c.name], ["tier", c.tier], ["language", c.language], ["phone", ""], ["account", ""]]) {
    const label = el("label", `${name} `);
    label.append(el("input", null, { name, value }));
    form.append(label);
  }
  form.append(el("button", "Save record", { type: "submit" }));
  const result = el("span", "", { class: "result", role: "status" });
  form.append(" ", result);
  form.onsubmit = async (e) => {
    e.preventDefault();
    try {
      await post(`/customers/${c.id}`, new FormData(form));
      result.textContent = "Saved.";
      title.querySelector(".name").textContent = form.elements.name.value;
    } catch (err) { result.textContent = err.message; }
  };
  details.append(form);
  return details;
}

function stepText(s) {
  const said = !s.mode ? "" : s.utterance ? `said "${s.utterance}" (${Math.round((s.confidence || 0) * 100)}%)` : s.value ? `pressed ${s.value}` : "";
  const facts = [s.kind, said, s.find && `${s.find} ${s.value || ""} ${s.result}`, s.language, s.queue && `queue ${s.queue}`, s.question && `${s.question} = ${s.answer}`, s.reason];
  return `${s.node || ""}: ${facts.filter(Boolean).join(" · ")}`;
}

function showCallback(callback) {
  // A campaign's callback: why we call, and the call it follows (when, its IVR journey, how it ended).
  $("callback").hidden = !callback;
  if (!callback) return;
  const o = callback.original;
  $("callback-reason").textContent = callback.reason ? `: ${callback.reason}` : "";
  $("callback-campaign").textContent = callback.campaign ? `campaign ${callback.campaign}` : "";
  const ivr = o && (o.journey.flow ? `IVR ${o.journey.flow}${o.journey.ivr_seconds !== null ? ` (${o.journey.ivr_seconds} s)` : ""}` : "did not pass the IVR");
  $("callback-original").textContent = o ? `Follows the call of ${new Date(o.at).toLocaleString()} · ${(o.outcome || "outcome unknown").replace(/_/g, " ")} · ${ivr}` : "The call it follows is not in the log.";
  $("callback-journey").replaceChildren(...(o ? o.journey.steps : []).map((s) => el("li", stepText(s), { "data-kind": s.kind })));
}

function showPop(event) {
  const { state, call, pop } = event;
  const box = $("pop");
  if (state === "withdrawn") { if (current && current.call.linkedid === call.linkedid && current.state === "ringing") { box.hidden = true; current = null; } return; }
  if (state === "ended" || state === "transferred") {
    if (current && current.call.linkedid === call.linkedid) {
      if (current.state === "ringing") { box.hidden = true; current = null; }
      else box.dataset.state = state;
    }
    return;
  }
  const fresh = !current || current.call.linkedid !== call.linkedid;
  current = { ...event, pop: pop || (current && current.pop) };
  box.hidden = false;
  box.dataset.state = state;
  box.dataset.linkedid = call.linkedid;
  $("pop-title").textContent = state === "ringing" ? "Ringing:" : "On call:";
  $("pop-caller").textContent = call.caller || "unknown number";
  $("pop-queue").textContent = call.queue || "";
  $("pop-wait").textContent = call.queued_at ? `${Math.round(Date.now() / 1000 - call.queued_at)} s` : "";
  if (state === "answered") $("wrapup").hidden = false;
  else if (fresh) $("wrapup").hidden = true;
  $("disposition").dataset.linkedid = call.linkedid;
  if (!current.pop || !fresh && state !== "ringing") return;
  const p = current.pop;
  $("pop-ivr").textContent = p.journey.ivr_seconds !== null ? `${p.journey.ivr_seconds} s` : "—";
  $("journey-flow").textContent = p.journey.flow ? `${p.journey.flow} · ${p.journey.language || ""}` : "did not pass the IVR";
  $("journey").replaceChildren(...p.journey.steps.map((s) => el("li", stepText(s), { "data-kind": s.kind })));
  showCustomers(p);
  showCallback(p.callback);
  if (fresh) {
    const form = $("disposition");
    form.reset();
    form.elements.notes.value = p.notes || "";
    form.elements.customer_id.value = p.customers.length === 1 ? p.customers[0].id : "";
    $("wrapup-result").textContent = "";
  }
}

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { $("live").dataset.state = "connected"; $("live").textContent = "connected"; };
  source.onerror = () => { $("live").dataset.state = "reconnecting"; $("live").textContent = "reconnecting"; };
  source.addEventListener("agent", (e) => showAgent(JSON.parse(e.data)));
  source.addEventListener("pop", (e) => {
    const event = JSON.parse(e.data);
    showPop(event);
    window.lastPopAt = performance.timeOrigin + performance.now(); // read by the benchmark
  });
}

$("pause-form").onsubmit = (e) => { e.preventDefault(); act("/agent/pause", new FormData(e.target)); };
$("resume").onclick = () => act("/agent/resume");

let notesTimer = null;
$("disposition").elements.notes.oninput = () => {
  clearTimeout(notesTimer);
  notesTimer = setTimeout(() => {
    const id = $("disposition").dataset.linkedid;
    if (id) post(`/calls/${encodeURIComponent(id)}/notes`, { notes: $("disposition").elements.notes.value }).catch(() => {});
  }, 800);
};

$("disposition").onsubmit = async (e) => {
  e.preventDefault();
  const id = e.target.dataset.linkedid;
  try {
    await post(`/calls/${encodeURIComponent(id)}/disposition`, new FormData(e.target));
    $("wrapup-result").textContent = "Saved.";
    $("wrapup").hidden = true;
    $("pop").hidden = true;
    current = null;
  } catch (err) { $("wrapup-result").textContent = err.message; }
};

$("new-customer").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const made = await post("/customers", new FormData(e.target));
    $("disposition").elements.customer_id.value = made.id;
    e.target.replaceChildren(el("p", "Customer created."));
  } catch (err) { e.target.append(el("p", err.message, { class: "error" })); }
};

connect();
