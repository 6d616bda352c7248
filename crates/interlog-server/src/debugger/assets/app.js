// The debugger page: signs in, then follows the account's live feed (server-sent events) and
// polls the counts. Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_ROWS = 500;
let source = null;
let countsTimer = null;

function text(v) { return v === undefined || v === null ? "" : String(v); }
function time(epoch) { return epoch ? new Date(epoch * 1000).toLocaleTimeString([], { hour12: false }) + "." + String(Math.floor((epoch % 1) * 1000)).padStart(3, "0") : ""; }

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = text(c);
    tr.appendChild(td);
  }
  return tr;
}

function tag(label, bad) {
  const s = document.createElement("span");
  s.className = bad ? "tag bad" : "tag";
  s.textContent = label;
  return s;
}

function prepend(tbody, tr) {
  tr.classList.add("fresh");
  tbody.insertBefore(tr, tbody.firstChild);
  while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
}

async function api(path, options) {
  const r = await fetch("/_interlog/ui/api/" + path, Object.assign({ credentials: "same-origin" }, options));
  const body = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.__type ? body.__type + ": " : "") + (body.message || r.statusText));
  return body;
}

function flagsCell(flags) {
  const span = document.createElement("span");
  for (const f of flags || []) { span.appendChild(tag(f.kind)); span.appendChild(document.createTextNode(" ")); }
  return span;
}

function matches(ev, trackingId) {
  const t = $("f-tracker").value, u = $("f-user").value.trim(), s = $("f-session").value.trim(), y = $("f-type").value.trim();
  return (!t || t === trackingId) && (!u || ev.userId === u) && (!s || ev.sessionId === s) && (!y || ev.eventType === y);
}

function onItem(item) {
  if (item.type === "stored") {
    for (const ev of item.events) {
      if (matches(ev, item.trackingId)) {
        prepend($("tail").tBodies[0], row(
          [time(ev.receivedAt), item.trackingId, ev.eventType, ev.userId, ev.sessionId, ev.itemId, ev.eventId, flagsCell(ev.flags)],
          { "data-event-id": ev.eventId, "data-tracking-id": item.trackingId }));
      }
      for (const f of ev.flags || []) {
        prepend($("flagged").tBodies[0], row([time(ev.receivedAt), ev.eventId, tag(f.kind), f.message], { "data-event-id": ev.eventId }));
      }
    }
  } else if (item.type === "rejected") {
    prepend($("rejected").tBodies[0], row(
      [time(item.at), item.operation + (item.trackingId ? " · " + item.trackingId : ""), tag(item.errorType, true), item.member ? item.member : "", item.message],
      { "data-error-type": item.errorType }));
  } else if (item.type === "missed") {
    prepend($("rejected").tBodies[0], row([time(Date.now() / 1000), "", tag("missed"), "", item.count + " items were missed: this page fell behind"]));
  }
}

function follow() {
  if (source) source.close();
  source = new EventSource("/_interlog/ui/api/stream");
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "on"; };
  source.onerror = () => { $("live").textContent = "reconnecting…"; $("live").className = ""; };
  source.onmessage = (m) => { try { onItem(JSON.parse(m.data)); } catch (e) { console.error(e); } };
}

async function loadResources() {
  const r = await api("resources");
  const root = $("resources");
  root.textContent = "";
  const tree = document.createElement("ul");
  tree.className = "tree";
  const trackers = [];
  for (const g of r.datasetGroups) {
    const li = document.createElement("li");
    li.appendChild(Object.assign(document.createElement("span"), { className: "kind", textContent: "group" }));
    li.appendChild(Object.assign(document.createElement("b"), { textContent: g.name, title: g.arn }));
    const sub = document.createElement("ul");
    for (const d of g.datasets) {
      const i = document.createElement("li");
      i.appendChild(Object.assign(document.createElement("span"), { className: "kind", textContent: d.type.toLowerCase() }));
      i.appendChild(Object.assign(document.createElement("span"), { textContent: d.name, title: d.arn }));
      sub.appendChild(i);
    }
    for (const t of g.trackers) {
      const i = document.createElement("li");
      i.appendChild(Object.assign(document.createElement("span"), { className: "kind", textContent: "tracker" }));
      i.appendChild(Object.assign(document.createElement("span"), { textContent: t.name + " ", title: t.arn }));
      i.appendChild(Object.assign(document.createElement("span"), { className: "mono", textContent: t.trackingId }));
      sub.appendChild(i);
      trackers.push(t);
    }
    li.appendChild(sub);
    tree.appendChild(li);
  }
  root.appendChild(tree);
  for (const sel of [$("f-tracker"), $("h-tracker")]) {
    const keep = sel.value;
    while (sel.options.length > (sel.id === "f-tracker" ? 1 : 0)) sel.remove(sel.options.length - 1);
    for (const t of trackers) sel.add(new Option(t.name + " (" + t.trackingId + ")", t.trackingId));
    if (keep) sel.value = keep;
  }
}

async function loadCounts() {
  try {
    const r = await api("counts");
    const tbody = $("counts").tBodies[0];
    tbody.textContent = "";
    for (const t of r.trackers) {
      const head = row([t.trackingId], { class: "tracker" });
      head.cells[0].colSpan = 5;
      head.cells[0].className = "mono";
      tbody.appendChild(head);
      for (const [label, c] of [["minute", t.minute], ["hour", t.hour]]) {
        const tr = row(["last " + label, c.stored, c.duplicates, c.rejected, c.flagged],
          { "data-tracking-id": t.trackingId, "data-window": label });
        for (let i = 1; i < tr.cells.length; i++) tr.cells[i].className = "num";
        tbody.appendChild(tr);
      }
    }
  } catch (e) { if (/AccessDenied/.test(e.message)) showSignIn(); }
}

async function showHistory(e) {
  e.preventDefault();
  $("history-error").textContent = "";
  const q = new URLSearchParams({ trackingId: $("h-tracker").value, [$("h-kind").value]: $("h-id").value.trim(), limit: "100" });
  const tbody = $("history").tBodies[0];
  tbody.textContent = "";
  try {
    const r = await api("history?" + q);
    for (const ev of r.events) {
      tbody.appendChild(row([time(ev.receivedAt), time(ev.sentAt), ev.eventType, ev.itemId, ev.eventId, ev.properties, flagsCell(ev.flags)], { "data-event-id": ev.eventId }));
    }
    if (!r.events.length) tbody.appendChild(row(["no events"]));
  } catch (err) { $("history-error").textContent = err.message; }
}

function showSignIn() {
  if (source) { source.close(); source = null; }
  clearInterval(countsTimer);
  $("app").hidden = true; $("whoami").hidden = true; $("signin").hidden = false;
}

async function showApp(account) {
  $("account").textContent = account;
  $("signin").hidden = true; $("app").hidden = false; $("whoami").hidden = false;
  follow();
  await loadResources();
  loadCounts();
  clearInterval(countsTimer);
  countsTimer = setInterval(() => { loadCounts(); }, 2000);
}

async function signIn(e) {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    const r = await api("session", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ accessKeyId: $("access-key-id").value.trim(), secretAccessKey: $("secret-access-key").value }) });
    $("secret-access-key").value = "";
    await showApp(r.account);
  } catch (err) { $("signin-error").textContent = err.message; }
}

async function signOut() {
  await api("session", { method: "DELETE" }).catch(() => {});
  showSignIn();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("history-form").addEventListener("submit", showHistory);
  $("f-clear").addEventListener("click", () => { for (const id of ["f-user", "f-session", "f-type"]) $(id).value = ""; $("f-tracker").value = ""; });
  try { const me = await api("session"); await showApp(me.account); } catch (_) { showSignIn(); }
});
