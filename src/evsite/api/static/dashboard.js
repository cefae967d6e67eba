// evsite dashboard: plain JS, no build step, no network calls beyond this evsite server.
"use strict";

const TOKEN_KEY = "evsite-token";
const HISTORY_S = 600;
const COLOURS = { L1: "#0072b2", L2: "#d55e00", L3: "#009e73", limit: "#1b1f24", dr: "#cc79a7", pv: "#e69f00", building: "#56b4e9" };
const $ = (id) => document.getElementById(id);

const ui = { token: null, site: null, state: null, chargers: [], history: [], socket: null, retry: 0, tab: "overview" };

// ------------------------------------------------------------------ API helpers

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${ui.token}` }, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut("Your token was not accepted."); throw new Error("unauthorized"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail || problem.title; } catch (_) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

const getJSON = async (path) => (await api(path)).json();
const fmt = (x, digits = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–");
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "–");

// ------------------------------------------------------------------ sign-in

function readToken() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.token = null;
  if (ui.socket) { ui.socket.onclose = null; ui.socket.close(); ui.socket = null; }
  $("app").hidden = true; $("tabs").hidden = true; $("logout").hidden = true; $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function start(token) {
  ui.token = token;
  try {
    ui.site = await getJSON("/api/v1/site");
  } catch (error) {
    if (error.message !== "unauthorized") signOut(`Cannot reach evsite: ${error.message}`);
    return;
  }
  $("login").hidden = true; $("app").hidden = false; $("tabs").hidden = false; $("logout").hidden = false;
  $("site-name").textContent = ui.site.name;
  const evseCount = (ui.site.evse || []).length;
  $("site-meta").textContent = `${ui.site.service.system} service · ${evseCount} chargers · ${ui.site.address || ""}`;
  const chargerSelect = $("session-charger");
  for (const evse of ui.site.evse || []) chargerSelect.add(new Option(evse.id, evse.id));
  const month = new Date().toISOString().slice(0, 7);
  $("billing-month").value = month;
  connect();
  firstPaint();
  refreshSlow();
  setInterval(refreshSlow, 5000);
}

async function firstPaint() {
  // Draw from the REST snapshot at once; the live feed (one message a second) takes over when it arrives.
  try {
    const [state, chargers] = await Promise.all([getJSON("/api/v1/site/state"), getJSON("/api/v1/chargers")]);
    if (!ui.state) onState({ state, chargers, events: [] });
  } catch (_) { /* the live feed will fill the page */ }
}

// ------------------------------------------------------------------ live stream

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The token rides in a subprotocol, never in the URL (URLs land in access logs); the server selects evsite.v1.
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/live`, ["evsite.v1", `evsite.bearer.${ui.token}`]);
  } catch (_) { // a pasted token with characters a subprotocol cannot carry is not an evsite token
    signOut("Your token was not accepted.");
    return;
  }
  ui.socket = socket;
  socket.onopen = () => { ui.retry = 0; setLink(true); };
  socket.onmessage = (message) => onState(JSON.parse(message.data));
  socket.onclose = (event) => {
    setLink(false);
    if (event.code === 4401) { signOut("Your token was not accepted."); return; }
    ui.retry = Math.min(ui.retry + 1, 5);
    setTimeout(() => ui.token && connect(), 1000 * ui.retry);
  };
}

function setLink(on) {
  const pill = $("link-state");
  pill.textContent = on ? "live" : "reconnecting";
  pill.className = `pill ${on ? "pill-on" : "pill-off"}`;
}

function onState(message) {
  ui.state = message.state;
  ui.chargers = message.chargers;
  const service = serviceNode();
  if (service) {
    const point = { t: Date.parse(ui.state.at), limit: siteLimit() };
    for (const line of service.lines) point[line.line] = line.measured_a;
    const signals = ui.state.signals || [];
    point.dr = maxSignal(signals, "dr_limit");
    point.pv = maxSignal(signals, "pv_surplus");
    point.building = maxSignal(signals, "building_load");
    ui.history.push(point);
    const cutoff = point.t - HISTORY_S * 1000;
    while (ui.history.length && ui.history[0].t < cutoff) ui.history.shift();
  }
  renderKpis();
  renderChart();
  renderTiles();
  renderOneLine();
  fillNodes();
  if (message.events && message.events.some((e) => ["ChargerConnected", "SetpointResult", "SiteSignal"].includes(e.type))) refreshAlerts();
}

function serviceNode() {
  // The EV allocation (when the load manager reports one) is the binding site limit; else the service.
  return ui.state && (ui.state.nodes.find((n) => n.id === "allocation") || ui.state.nodes.find((n) => n.id === "service"));
}

function siteLimit() {
  // The binding EV limit: the lowest of the service and the EV allocation on any line.
  const top = ui.state.nodes.filter((n) => n.id === "service" || n.id === "allocation").flatMap((n) => n.lines);
  return top.length ? Math.min(...top.map((l) => l.limit_a)) : null;
}

function maxSignal(signals, kind) {
  const values = signals.filter((s) => s.kind === kind && !s.stale && (!s.until || Date.parse(s.until) > Date.now()))
    .flatMap((s) => Object.values(s.current_a));
  return values.length ? Math.max(...values) : null;
}

// ------------------------------------------------------------------ overview

function renderKpis() {
  const s = ui.state;
  $("kpi-connected").textContent = `${s.chargers_connected} / ${s.chargers_total}`;
  $("kpi-charging").textContent = s.connectors_charging;
  $("kpi-power").textContent = `${fmt(s.site_power_kw)} kW`;
  const limit = siteLimit();
  $("kpi-limit").textContent = limit === null ? "–" : `${fmt(limit, 0)} A${s.manual_limit ? " (manual)" : ""}`;
  renderDrKpi();
}

function renderDrKpi() {
  // One truth with the events list below: a cap in force, or any event the VEN reports as active.
  if (!ui.state) return;
  const active = (ui.drEvents || []).filter((e) => e.status === "active");
  const near = (ui.drEvents || []).filter((e) => e.status === "near");
  let text = "none";
  if (ui.state.dr_active) text = "active";
  else if (active.length) text = active.every((e) => e.opt === "optOut") ? "active, opted out" : "active";
  else if (near.length) text = `next at ${time(near[0].start)}`;
  $("kpi-dr").textContent = text;
}

function renderChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const points = ui.history;
  canvas.dataset.points = String(points.length);
  if (!points.length) return;
  const pad = { l: 44, r: 10, t: 10, b: 24 };
  const series = lineNames();
  // The axis fits the EV current and its limits; PV surplus and building load are context, drawn clipped to
  // the plot (their values are in the legend) so a large surplus cannot flatten the lines that matter.
  const keys = [...series, "limit", "dr"];
  const top = Math.max(10, ...points.flatMap((p) => keys.map((k) => p[k] ?? 0))) * 1.1;
  canvas.dataset.top = String(top);
  const t1 = points[points.length - 1].t, t0 = Math.min(points[0].t, t1 - 60000);
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / top) * (height - pad.t - pad.b);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#5a6270"; ctx.strokeStyle = "#e3e6eb"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (top / 4) * i;
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(width - pad.r, y(v)); ctx.stroke();
    ctx.fillText(`${v.toFixed(0)} A`, 4, y(v) + 4);
  }
  ctx.fillText(time(new Date(t0).toISOString()), pad.l, height - 6);
  ctx.fillText(time(new Date(t1).toISOString()), width - pad.r - 60, height - 6);
  ctx.save();
  ctx.beginPath(); ctx.rect(pad.l, pad.t - 3, width - pad.l - pad.r, height - pad.t - pad.b + 6); ctx.clip(); // lines at 0 A stay whole
  const draw = (key, colour, dash, lineWidth) => {
    ctx.beginPath(); ctx.setLineDash(dash); ctx.strokeStyle = colour; ctx.lineWidth = lineWidth;
    let started = false, count = 0;
    for (const p of points) {
      if (p[key] === null || p[key] === undefined) { started = false; continue; }
      count += 1;
      if (started) ctx.lineTo(x(p.t), y(p[key])); else { ctx.moveTo(x(p.t), y(p[key])); started = true; }
    }
    if (count === 1) { // a single sample (first paint) has no segment to stroke: mark it with a short tick
      const p = points.find((q) => q[key] !== null && q[key] !== undefined);
      ctx.moveTo(x(p.t) - 12, y(p[key])); ctx.lineTo(x(p.t), y(p[key]));
    }
    ctx.stroke(); ctx.setLineDash([]);
  };
  draw("building", COLOURS.building, [2, 3], 1.5);
  draw("pv", COLOURS.pv, [2, 3], 1.5);
  draw("dr", COLOURS.dr, [8, 4], 2);
  draw("limit", COLOURS.limit, [6, 4], 2);
  for (const line of series) draw(line, COLOURS[line], [], 2.2);
  ctx.restore();
  const last = points[points.length - 1];
  const legend = [...series.map((l) => [l, `${l} ${fmt(last[l])} A`, "solid"]), ["limit", `limit ${fmt(last.limit, 0)} A`, "dashed"]];
  if (points.some((p) => p.dr !== null)) legend.push(["dr", `DR limit ${fmt(last.dr, 0)} A`, "dashed"]);
  if (points.some((p) => p.pv !== null)) legend.push(["pv", `PV surplus ${fmt(last.pv, 0)} A`, "dotted"]);
  if (points.some((p) => p.building !== null)) legend.push(["building", `building ${fmt(last.building, 0)} A`, "dotted"]);
  $("legend").innerHTML = legend.map(([k, text, style]) => `<li><i data-colour="${COLOURS[k]}" data-dash="${style}"></i>${esc(text)}</li>`).join("");
  for (const mark of $("legend").querySelectorAll("i[data-colour]")) {
    mark.style.borderTopColor = mark.dataset.colour; // set through the CSSOM: the CSP refuses inline style attributes
    mark.style.borderTopStyle = mark.dataset.dash;
  }
  $("chart-note").textContent = ui.state.source === "control" ? "Numbers from the load manager." : "Numbers derived from meter values (load manager not connected).";
}

function lineNames() {
  const service = serviceNode();
  return service ? service.lines.map((l) => l.line) : ["L1", "L2", "L3"];
}

async function refreshAlerts() {
  try {
    const alerts = await getJSON("/api/v1/alerts?active=true");
    $("alerts").innerHTML = alerts.length
      ? alerts.map((a) => `<li class="${esc(a.severity)}"><span class="sev">${esc(a.severity)}</span>${esc(a.message)} <span class="muted small">since ${time(a.since)}</span></li>`).join("")
      : '<li class="muted">No alerts.</li>';
  } catch (_) { /* shown by the link pill */ }
}

async function refreshSignals() {
  try {
    const signals = await getJSON("/api/v1/signals");
    const list = $("dr-events");
    ui.drEvents = signals.dr_events || [];
    renderDrKpi();
    if (!signals.dr_configured) { list.innerHTML = '<li class="muted">No OpenADR VEN in this process.</li>'; return; }
    list.innerHTML = signals.dr_events.length ? signals.dr_events.map((e) => `
      <li><strong>${esc(e.event_id)}</strong> ${esc(e.status)} · ${dateTime(e.start)}–${e.end ? time(e.end) : "open"} · ${esc(e.signal)}
        ${e.limit_a !== null ? `· ${fmt(e.limit_a, 0)} A` : ""} · <em>${e.opt === "optIn" ? "opted in" : "opted out"}</em>
        <button type="button" class="ghost" data-event="${esc(e.event_id)}" data-opt="${e.opt === "optIn" ? "optOut" : "optIn"}">
          ${e.opt === "optIn" ? "Opt out" : "Opt in"}</button></li>`).join("") : '<li class="muted">None.</li>';
  } catch (_) { /* ignore */ }
}

function fillNodes() {
  const select = $("limit-node");
  if (select.options.length || !ui.state) return;
  const settable = ["service", "panel", "feeder"];
  for (const node of ui.state.nodes.filter((n) => settable.includes(n.kind))) select.add(new Option(`${node.label} (${node.id})`, node.id));
}

// ------------------------------------------------------------------ chargers

function tileState(charger, connector) {
  if (!charger.connected) return ["offline", "Offline"];
  const status = connector.status;
  if (status === "Charging") return ["charging", "Charging"];
  if (status.startsWith("Suspended")) return ["suspended", status === "SuspendedEV" ? "Paused by EV" : "Paused"];
  if (status === "Available") return ["available", "Available"];
  return ["other", status];
}

function renderTiles() {
  const html = ui.chargers.map((charger) => charger.connectors.map((c) => {
    const [cls, label] = tileState(charger, c);
    const max = charger.max_current_a;
    const offered = c.setpoint_a ?? c.offered_a;
    const kwh = c.session_wh === null ? "–" : fmt(c.session_wh / 1000, 2);
    return `<article class="tile s-${cls}" data-charger="${esc(charger.id)}" aria-label="Charger ${esc(charger.id)}">
      <h3><span>${esc(charger.id)}${charger.connectors.length > 1 ? "/" + c.connector_id : ""}</span><span class="state">${esc(label)}</span></h3>
      <div class="bar" role="img" aria-label="drawn ${fmt(c.drawn_a)} A of ${fmt(offered)} A offered">
        <div class="drawn" data-width="${Math.min(100, (100 * c.drawn_a) / max)}"></div>
        ${offered !== null && offered !== undefined ? `<div class="offered" data-width="${Math.min(100, (100 * offered) / max)}"></div>` : ""}
      </div>
      <dl><dt>Offered</dt><dd class="offered-a">${fmt(offered)} A</dd><dt>Drawn</dt><dd class="drawn-a">${fmt(c.drawn_a)} A</dd>
      <dt>Session</dt><dd>${kwh} kWh</dd><dt>Lines</dt><dd>${esc(charger.lines.join("-"))}</dd></dl></article>`;
  }).join("")).join("");
  $("tiles").innerHTML = html;
  for (const bar of $("tiles").querySelectorAll("[data-width]")) bar.style.width = `${bar.dataset.width}%`;
}

// ------------------------------------------------------------------ one-line diagram (live)

function renderOneLine() {
  const nodes = ui.state.nodes;
  const children = {};
  for (const n of nodes) (children[n.parent ?? ""] ||= []).push(n);
  const box = { w: 112, h: 44, gx: 10, gy: 34 };
  const pos = {};
  let nextX = 0;
  const perRow = 10;
  const place = (node, depth) => {
    const kids = children[node.id] || [];
    if (!kids.length) { pos[node.id] = { x: nextX, depth }; nextX += box.w + box.gx; return; }
    if (kids.length > perRow && kids.every((k) => !(children[k.id] || []).length)) {
      const x0 = nextX;  // many leaves (branch circuits): a grid of rows under their panel
      kids.forEach((k, i) => { pos[k.id] = { x: x0 + (i % perRow) * (box.w + box.gx), depth: depth + 1 + Math.floor(i / perRow) }; });
      nextX = x0 + perRow * (box.w + box.gx);
      pos[node.id] = { x: x0 + ((perRow - 1) * (box.w + box.gx)) / 2, depth };
      return;
    }
    for (const kid of kids) place(kid, depth + 1);
    const xs = kids.map((k) => pos[k.id].x);
    pos[node.id] = { x: (Math.min(...xs) + Math.max(...xs)) / 2, depth };
  };
  for (const root of children[""] || []) place(root, 0);
  const depth = Math.max(0, ...Object.values(pos).map((p) => p.depth));
  const width = Math.max(nextX, 300), height = (depth + 1) * (box.h + box.gy);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="One-line diagram with live current on each node">`;
  for (const n of nodes) {
    const p = pos[n.id], parent = n.parent && pos[n.parent];
    if (!p || !parent) continue;
    const x1 = parent.x + box.w / 2, y1 = parent.depth * (box.h + box.gy) + box.h, x2 = p.x + box.w / 2, y2 = p.depth * (box.h + box.gy);
    svg += `<path class="edge" d="M${x1},${y1} V${(y1 + y2) / 2} H${x2} V${y2}"/>`;
  }
  for (const n of nodes) {
    const p = pos[n.id];
    if (!p) continue;
    const worst = n.lines.reduce((a, l) => (l.measured_a - l.limit_a > a.measured_a - a.limit_a ? l : a), n.lines[0] || { measured_a: 0, limit_a: 0, line: "" });
    const over = n.lines.some((l) => l.measured_a > l.limit_a + 1e-6);
    const y = p.depth * (box.h + box.gy);
    svg += `<g class="node${over ? " over" : ""}" data-node="${esc(n.id)}"><title>${esc(n.label)}: ${n.lines.map((l) => `${l.line} ${fmt(l.measured_a)}/${fmt(l.limit_a, 0)} A`).join(", ")}</title>
      <rect x="${p.x}" y="${y}" width="${box.w}" height="${box.h}" rx="5"/>
      <text x="${p.x + 6}" y="${y + 16}" font-weight="600">${esc(n.id)}</text>
      <text x="${p.x + 6}" y="${y + 34}">${fmt(worst.measured_a)} / ${fmt(worst.limit_a, 0)} A${over ? " OVER" : ""}</text></g>`;
  }
  const holder = $("oneline");
  holder.innerHTML = svg + "</svg>";
  const root = (children[""] || [])[0];
  if (root && holder.clientWidth > 0 && holder.clientWidth !== ui.onelineWidth) {
    // Narrower than the diagram (a phone): show the service, not the empty left edge; again after a resize only,
    // so a person's own scrolling is kept.
    ui.onelineWidth = holder.clientWidth;
    if (holder.scrollWidth > holder.clientWidth) holder.scrollLeft = pos[root.id].x + box.w / 2 - holder.clientWidth / 2;
  }
}

// ------------------------------------------------------------------ sessions and billing

async function refreshSessions() {
  const charger = $("session-charger").value;
  const query = charger ? `?charger=${encodeURIComponent(charger)}&limit=200` : "?limit=200";
  try {
    const sessions = await getJSON(`/api/v1/sessions${query}`);
    $("sessions").tBodies[0].innerHTML = sessions.length ? sessions.map((s) => `<tr><td>${s.transaction_id}</td><td>${esc(s.charger)}/${s.connector_id}</td>
      <td>${esc(s.unit || s.id_tag || "–")}</td><td>${dateTime(s.started_at)}</td><td>${dateTime(s.stopped_at)}</td>
      <td class="num">${s.energy_wh === null ? "–" : fmt(s.energy_wh / 1000, 2)}</td><td>${esc(s.state)}</td></tr>`).join("")
      : '<tr><td colspan="7" class="muted">No sessions yet.</td></tr>';
  } catch (_) { /* ignore */ }
}

async function exportCsv() {
  const charger = $("session-charger").value;
  const response = await api(`/api/v1/sessions.csv${charger ? `?charger=${encodeURIComponent(charger)}` : ""}`);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "sessions.csv";
  link.click();
  URL.revokeObjectURL(link.href);
}

async function showBilling(event) {
  event.preventDefault();
  const out = $("billing-out");
  out.innerHTML = '<p class="muted">Loading…</p>';
  try {
    const data = await getJSON(`/api/v1/billing/statements?month=${encodeURIComponent($("billing-month").value)}`);
    out.innerHTML = renderStatements(data);
  } catch (error) {
    out.innerHTML = `<p class="muted">${esc(error.message)}</p>`;
  }
}

function renderStatements(data) {
  const rows = Array.isArray(data) ? data : data.statements || [];
  if (!rows.length) return `<pre>${esc(JSON.stringify(data, null, 2))}</pre>`;
  const cols = Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== "object");
  return `<div class="table-wrap"><table><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>
    ${rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c])}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

// ------------------------------------------------------------------ operator actions

async function setLimit(event) {
  event.preventDefault();
  const msg = $("limit-msg");
  const body = { limit_a: Number($("limit-a").value), node: $("limit-node").value || "service", duration_s: Number($("limit-minutes").value) * 60 };
  try {
    const result = await (await api("/api/v1/load/limit", { method: "PUT", json: body })).json();
    msg.textContent = `Limit ${fmt(result.limit_a, 0)} A on ${result.node} until ${time(result.until)}.`;
    msg.className = "small";
  } catch (error) {
    msg.textContent = error.status === 403 ? "Setting a limit needs the operator role." : error.message;
    msg.className = "small error";
  }
}

async function clearLimit() {
  const msg = $("limit-msg");
  try {
    await api("/api/v1/load/limit", { method: "DELETE" });
    msg.textContent = "Manual limit cleared."; msg.className = "small";
  } catch (error) {
    msg.textContent = error.status === 404 ? "No manual limit is set." : error.message; msg.className = "small error";
  }
}

async function setOpt(event) {
  const button = event.target.closest("button[data-event]");
  if (!button) return;
  try {
    await api(`/api/v1/signals/dr/${encodeURIComponent(button.dataset.event)}/opt`, { method: "PUT", json: { opt: button.dataset.opt } });
  } catch (error) { alert(error.message); }
  refreshSignals();
}

function refreshSlow() {
  refreshAlerts();
  refreshSignals();
  if (ui.tab === "sessions") refreshSessions();
}

function selectTab(name) {
  ui.tab = name;
  for (const button of document.querySelectorAll("[role=tab]")) {
    const on = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(on));
    $(`panel-${button.dataset.tab}`).hidden = !on;
  }
  if (name === "sessions") refreshSessions();
  if (name === "overview") renderChart();
}

// ------------------------------------------------------------------ wiring

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token);
});
$("logout").addEventListener("click", () => signOut(""));
$("limit-form").addEventListener("submit", setLimit);
$("limit-clear").addEventListener("click", clearLimit);
$("dr-events").addEventListener("click", setOpt);
$("session-charger").addEventListener("change", refreshSessions);
$("sessions-csv").addEventListener("click", exportCsv);
$("billing-form").addEventListener("submit", showBilling);
for (const button of document.querySelectorAll("[role=tab]")) button.addEventListener("click", () => selectTab(button.dataset.tab));
window.addEventListener("resize", () => ui.state && renderChart());

const saved = readToken();
if (saved) start(saved); else signOut("");
