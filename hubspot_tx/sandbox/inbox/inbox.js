// The sandbox's web inbox: hash-routed views over the inspection API (/_sandbox/v1).
// Every value from the API reaches the DOM as text (textContent / text nodes), never as markup;
// the only HTML rendered is a message's own, in an iframe without scripts.
"use strict";

const API = "/_sandbox/v1";
const MAX_ROWS = 500; // the inbox keeps the newest rows; the count stays exact (from `total`)
const WAIT = 25; // seconds a long-poll may hang (the server caps it at 30)
const MIN_POLL_MS = 300; // during a relay, at most ~3 polls a second: the sandbox has work to do
const SETTLE_MS = 1000; // statuses move with time (events 0.05 s apart): refresh once after this
const NEVER = Number.MAX_SAFE_INTEGER; // `after=NEVER`: no message matches, only `since` wakes

// -- helpers ---------------------------------------------------------------------------------
/** An element; string children become text nodes (never parsed as HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

async function api(path, signal, as = "json") {
  const response = await fetch(API + path, { signal, headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText} for ${path}`);
  return as === "text" ? response.text() : response.json();
}

/** DELETE on the inspection API, after the user said yes. */
async function remove(path, question) {
  if (!window.confirm(question)) return false;
  const response = await fetch(API + path, { method: "DELETE" });
  if (!response.ok && response.status !== 404) throw new Error(`${response.status} deleting ${path}`);
  return true;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return q.toString();
}

function time(iso) {
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function status(kind) {
  const safe = String(kind).replace(/[^A-Z_]/g, ""); // a class name, from a value we don't trust
  return h("span", { class: `status status-${safe}` }, kind);
}

function table(caption, headings, rows, empty) {
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length, class: "empty" }, empty))));
}

function connection(text, offline = false) {
  const el = document.getElementById("connection");
  el.textContent = text;
  el.classList.toggle("offline", offline);
}

/** Wait for any change in the sandbox after `generation` (or the long-poll's end). */
async function changed(generation, signal) {
  const page = await api(`/messages?${query({ after: NEVER, limit: 1, wait: WAIT, since: generation })}`, signal);
  return page.generation;
}

/** Run `render` now and again on every change. Some things move with time alone (a send's
 * status, events coming due): while `render` says it is busy, or just after a change, it
 * re-renders every half second instead of waiting. */
async function keepFresh(view, render) {
  let generation = null;
  let settleUntil = 0;
  while (!view.signal.aborted) {
    try {
      // The generation first: a change during the render then wakes the next wait at once.
      const next = (await api("/stats", view.signal)).generation;
      const busy = await render();
      if (next !== generation) settleUntil = Date.now() + SETTLE_MS * 2;
      generation = next;
      connection("live");
      if (busy || Date.now() < settleUntil) await sleep(SETTLE_MS / 2, view.signal);
      else await changed(generation, view.signal);
    } catch (error) {
      if (view.signal.aborted) return;
      connection(`offline: ${error.message}`, true);
      await sleep(2000, view.signal);
    }
  }
}

// -- inbox -----------------------------------------------------------------------------------
const COLUMNS = ["Time", "From", "To", "Subject", "Message-ID", "Token / campaign", "Status"];

function messageRow(m) {
  const to = m.to.length ? m.to.join(", ") : m.rcptTo.join(", ");
  return h("tr", { "data-id": m.id },
    h("td", { class: "time", title: time(m.receivedAt) }, time(m.receivedAt).slice(11)), // the date on hover
    h("td", { class: "clip", title: m.from ?? m.mailFrom }, m.from ?? m.mailFrom),
    h("td", { class: "clip", title: to }, to),
    h("td", { class: "clip" }, h("a", { href: `#/messages/${Number(m.id)}` }, m.subject ?? "(no subject)")),
    h("td", { class: "clip mono", title: m.messageId ?? "" }, m.messageId ?? "—"),
    h("td", { class: "clip mono" },
      m.tokenId ?? "—", " / ",
      m.campaignId === null ? "—" : h("a", { href: `#/campaigns/${encodeURIComponent(m.campaignId)}` }, m.campaignId)),
    h("td", { class: "status-cell" }, status(m.status)));
}

function inbox(view) {
  const search = h("input", { id: "q", type: "search", name: "q", value: view.params.get("q") ?? "",
    placeholder: "subject, sender, recipient or Message-ID", autocomplete: "off" });
  const count = h("strong", { id: "message-count" }, "…");
  const tbody = h("tbody", {});
  const state = { total: 0, totalExact: true, newest: 0, generation: null, lastSync: 0 };
  const deleteAll = h("button", { id: "delete-all", type: "button", class: "danger", onclick: async () => {
    try {
      await remove("/messages", "Delete every message in the sandbox?"); // the live loop shows it
    } catch (error) {
      connection(`offline: ${error.message}`, true);
    }
  } }, "Delete all");
  view.root.replaceChildren(
    h("h2", {}, "Inbox"),
    h("div", { class: "toolbar", role: "search" },
      h("label", { for: "q" }, "Search"), search,
      h("p", { class: "count" }, count, " messages",
        h("span", { class: "note", id: "rows-note" })),
      deleteAll),
    h("table", { id: "messages" },
      h("caption", {}, "Messages accepted over SMTP, newest first"),
      h("thead", {}, h("tr", {}, COLUMNS.map((t) => h("th", { scope: "col" }, t)))),
      tbody));

  let typing;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { location.hash = "#/?" + query({ q: search.value }); }, 250);
  });
  const q = search.value;
  if (view.params.has("q")) { // typing re-routes (the query is in the URL): keep the caret
    search.focus();
    search.setSelectionRange(q.length, q.length);
  }

  function showCount() {
    // Past a page the server may estimate a search's total (it never scans every message).
    count.textContent = (state.totalExact ? "" : "about ") + String(state.total);
    const shown = tbody.querySelectorAll("tr[data-id]").length;
    document.getElementById("rows-note").textContent =
      state.total > shown ? ` (the newest ${shown} shown)` : "";
    if (!tbody.firstChild) tbody.append(h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No messages yet.")));
  }

  // The newest MAX_ROWS, exact total and fresh statuses; rows still on screen are reused.
  async function sync() {
    const page = await api(`/messages?${query({ order: "desc", limit: MAX_ROWS, q })}`, view.signal);
    const old = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
    tbody.replaceChildren(...page.results.map((m) => {
      const tr = old.get(String(m.id));
      if (!tr) return messageRow(m);
      tr.querySelector(".status-cell").replaceChildren(status(m.status));
      return tr;
    }));
    Object.assign(state, { total: page.total, totalExact: page.totalExact,
      generation: page.generation, lastSync: Date.now() });
    state.newest = Math.max(state.newest, page.results[0]?.id ?? 0);
    showCount();
  }

  // New messages only: newest first, at most MAX_ROWS; more than that means a gap, so re-sync.
  function prepend(page) {
    if (page.total > page.results.length) return false;
    tbody.querySelector("td.empty")?.parentElement.remove();
    tbody.prepend(...page.results.map(messageRow));
    const rows = tbody.querySelectorAll("tr[data-id]");
    for (let i = rows.length - 1; i >= MAX_ROWS; i--) rows[i].remove();
    state.total += page.total;
    state.newest = page.results[0].id;
    state.generation = page.generation;
    showCount();
    return true;
  }

  // The live loop: a long-poll for newer messages that also wakes on any other change.
  // Statuses move with time alone (a message's events come due 0.05 s apart), so for a while
  // after a change it polls briefly and re-syncs instead of waiting the full long-poll.
  (async () => {
    let settleUntil = 0;
    while (!view.signal.aborted) {
      const started = Date.now();
      try {
        if (state.generation === null) {
          await sync(); // the first look, or after a lost connection: events may still be due
          settleUntil = Date.now() + 2 * SETTLE_MS;
        }
        connection("live");
        const settling = started < settleUntil;
        const poll = query({ order: "desc", limit: MAX_ROWS, after: state.newest, q,
          wait: settling ? SETTLE_MS / 1000 : WAIT, since: state.generation });
        const page = await api(`/messages?${poll}`, view.signal);
        if (page.results.length && prepend(page)) {
          settleUntil = Date.now() + 2 * SETTLE_MS;
          if (Date.now() - state.lastSync > 5 * SETTLE_MS) await sync(); // mid-relay statuses
        } else if (page.results.length || page.generation !== state.generation) {
          settleUntil = Date.now() + 2 * SETTLE_MS;
          await sync(); // a gap (over MAX_ROWS new), a deletion, a reset, another change
        } else if (settling) {
          await sync(); // quiet for a moment: let the statuses catch up
        }
      } catch (error) {
        if (view.signal.aborted) return;
        connection(`offline: ${error.message}`, true);
        state.generation = null;
        await sleep(2000, view.signal);
        continue;
      }
      await sleep(MIN_POLL_MS - (Date.now() - started), view.signal);
    }
  })();
}

// -- one message -----------------------------------------------------------------------------
function section(title, ...content) {
  return h("section", {}, h("h3", {}, title), ...content);
}

function summary(pairs) {
  return h("dl", { class: "summary" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function eventRows(events) {
  return events.map((e) => h("tr", {},
    h("td", { class: "time" }, time(e.created)), h("td", {}, status(e.type)),
    h("td", {}, e.recipient), h("td", {}, e.dropReason ?? ""),
    h("td", { class: "clip mono" }, e.smtpId ?? e.sendId ?? "")));
}
const EVENT_COLUMNS = ["Time", "Type", "Recipient", "Drop reason", "Message-ID / sendId"];

async function message(view, id) {
  const m = await api(`/messages/${id}`, view.signal);
  const raw = h("pre", { id: "raw", class: "mono" }, "loading…");
  const del = h("button", { id: "delete", type: "button", class: "danger", onclick: async () => {
    try {
      if (await remove(`/messages/${Number(m.id)}`, "Delete this message?")) location.hash = "#/";
    } catch (error) {
      view.root.prepend(h("p", { class: "error", role: "alert" }, error.message));
    }
  } }, "Delete");
  view.root.replaceChildren(
    h("p", { class: "toolbar" }, h("a", { href: "#/" }, "← Inbox"), del),
    h("h2", { id: "subject" }, m.subject ?? "(no subject)"),
    summary([
      ["From", m.from], ["To", m.to.join(", ")], ["Envelope", `${m.mailFrom} → ${m.rcptTo.join(", ")}`],
      ["Received", time(m.receivedAt)],
      ["Message-ID", m.messageIdAssigned ? `${m.messageId} (assigned by the sandbox: the message had none)` : m.messageId],
      ["Size", `${m.size} bytes`],
      ["Token", m.tokenId], ["Campaign", m.campaignId], ["Status", status(m.status)],
      ["Arrival", m.arrival > 1 ? `duplicate #${m.arrival}` : "first"],
    ]),
    m.html === null ? null : section("HTML",
      // No allow-scripts, no allow-same-origin: the mail's HTML renders, its scripts never run;
      // the server's CSP says the same again.
      h("iframe", { class: "html-part", sandbox: "", referrerpolicy: "no-referrer",
        title: "The message's HTML part", src: `${API}/messages/${Number(m.id)}/html` })),
    section("Text", m.text === null ? h("p", { class: "empty" }, "No text part.") : h("pre", { id: "text" }, m.text)),
    section("Attachments", m.attachments.length
      ? h("ul", { id: "attachments" }, m.attachments.map((a) =>
        h("li", {}, h("a", { href: a.url, download: a.filename ?? "" }, a.filename ?? "(unnamed)"),
          ` — ${a.contentType}, ${a.size} bytes`)))
      : h("p", { class: "empty" }, "None.")),
    section("Events", table("Email events for this message", EVENT_COLUMNS, eventRows(m.events), "None yet.")),
    section("Headers", table("Headers, in order", ["Name", "Value"],
      m.headers.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))), "None.")),
    section("Raw source", h("p", { class: "note" },
      h("a", { href: `${API}/messages/${Number(m.id)}/raw`, download: `message-${Number(m.id)}.eml` }, "Download .eml")), raw));
  const source = await api(`/messages/${id}/raw`, view.signal, "text");
  const LIMIT = 200_000; // a huge message would stall the page: show its start
  raw.textContent = source.length > LIMIT ? source.slice(0, LIMIT) + `\n… (${source.length - LIMIT} more characters: download it)` : source;
}

// -- single-sends ----------------------------------------------------------------------------
function singleSends(view) {
  const SEND_COLUMNS = ["Requested", "To", "Email id", "sendId", "Status", "Result", "Timeline"];
  return keepFresh(view, async () => {
    const list = await api("/single-sends", view.signal);
    const rows = list.results.slice().reverse().map((s) => h("tr", { "data-status-id": s.statusId },
      h("td", { class: "time" }, time(s.requestedAt)), h("td", {}, s.to), h("td", {}, s.emailId),
      h("td", { class: "clip mono" }, s.sendId ?? "—"), h("td", {}, status(s.status)),
      h("td", {}, s.sendResult ?? "", s.duplicate ? " (duplicate)" : ""),
      h("td", {}, h("ol", { class: "timeline" },
        s.timeline.map((t) => h("li", { title: t.at }, status(t.status), " ", time(t.at).slice(11)))))));
    view.root.replaceChildren(h("h2", {}, "Single-sends"),
      h("p", { class: "count" }, h("strong", { id: "send-count" }, list.total), " single-sends"),
      table("Single-send requests, newest first, with their status timelines", SEND_COLUMNS, rows, "No single-sends yet."));
    return list.results.some((s) => s.status !== "COMPLETE");
  });
}

// -- campaigns -------------------------------------------------------------------------------
function campaigns(view) {
  return keepFresh(view, async () => {
    const list = await api("/campaigns", view.signal);
    const types = [...new Set(list.results.flatMap((c) => Object.keys(c.events)))].sort();
    const rows = list.results.map((c) => h("tr", {},
      h("td", {}, h("a", { href: `#/campaigns/${encodeURIComponent(c.campaignId)}` }, c.campaignId)),
      h("td", {}, c.name ?? "—"), h("td", {}, c.messages),
      types.map((t) => h("td", {}, c.events[t] ?? 0))));
    view.root.replaceChildren(h("h2", {}, "Campaigns"),
      table("Campaigns with their visible events by type", ["Campaign", "Name", "Messages", ...types], rows, "No campaigns yet."));
    return false;
  });
}

function campaign(view, id) {
  return keepFresh(view, async () => {
    const list = await api(`/events?${query({ campaignId: id })}`, view.signal);
    view.root.replaceChildren(h("p", {}, h("a", { href: "#/campaigns" }, "← Campaigns")),
      h("h2", {}, `Campaign ${id}`),
      h("p", { class: "count" }, h("strong", { id: "event-count" }, (list.totalExact ? "" : "about ") + list.total), " events"),
      table("Its events, oldest first", EVENT_COLUMNS, eventRows(list.results), "No events yet."));
    return false;
  });
}

// -- the inspection API, readable ------------------------------------------------------------
const METHODS = ["get", "post", "put", "delete"];

async function apiReference(view) {
  const doc = await fetch("/_sandbox/openapi.json", { signal: view.signal }).then((r) => r.json());
  const groups = new Map(); // tag -> operations, in the document's order
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS.filter((m) => item[m])) {
      const op = item[method];
      const tag = op.tags?.[0] ?? "Other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, op, params: [...(item.parameters ?? []), ...(op.parameters ?? [])] });
    }
  }
  const tags = new Map((doc.tags ?? []).map((t) => [t.name, t.description ?? ""]));
  view.root.replaceChildren(
    h("h2", {}, doc.info?.title ?? "API"),
    h("p", {}, "The REST API the sandbox emulates and its inspection API (no token needed), from ",
      h("a", { href: "/_sandbox/openapi.json", download: "openapi.json" }, "its OpenAPI document (JSON)"), "."),
    h("div", { id: "api" }, [...groups.entries()].reverse().map(([tag, operations]) => h("section", {},
      h("h3", {}, tag), h("p", { class: "note" }, tags.get(tag) ?? ""),
      operations.map(({ path, method, op, params }) => h("section", { class: "operation" },
        // A GET without path parameters can be opened as is: link it.
        h("h4", {}, h("span", { class: `method method-${method}` }, method.toUpperCase()), " ",
          h("code", {}, method === "get" && !path.includes("{") ? h("a", { href: path }, path) : path)),
        h("p", {}, op.summary ?? ""),
        params.length ? table("Parameters", ["Name", "In", "Description"],
          params.map((p) => h("tr", {}, h("td", { class: "mono" }, p.name ?? ""), h("td", {}, p.in ?? ""),
            h("td", {}, p.description ?? ""))), "") : null,
        h("p", { class: "note" }, "Responses: ",
          Object.entries(op.responses ?? {}).map(([code, r]) => `${code} ${r.description ?? ""}`).join("; "))))))));
}

// -- routing ---------------------------------------------------------------------------------
let current = null;

function route() {
  current?.abort(); // ends the previous view's long-polls
  const controller = new AbortController();
  current = controller;
  const [path, params] = location.hash.replace(/^#/, "").split("?");
  const view = { root: document.getElementById("view"), signal: controller.signal,
    params: new URLSearchParams(params ?? "") };
  let parts;
  try {
    parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = []; // a malformed hash: the inbox
  }
  const section = ["single-sends", "campaigns", "api"].includes(parts[0]) ? parts[0] : "inbox";
  for (const a of document.querySelectorAll("nav a[data-section]")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let shown;
  if (parts[0] === "messages" && /^\d+$/.test(parts[1] ?? "")) shown = message(view, parts[1]);
  else if (parts[0] === "single-sends") shown = singleSends(view);
  else if (parts[0] === "campaigns" && parts[1]) shown = campaign(view, parts[1]);
  else if (parts[0] === "campaigns") shown = campaigns(view);
  else if (parts[0] === "api") shown = apiReference(view);
  else shown = inbox(view);
  Promise.resolve(shown).catch((error) => {
    if (controller.signal.aborted) return;
    view.root.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
  });
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);
