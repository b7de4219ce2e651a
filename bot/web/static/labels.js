/* Analytics in the agent console: one-click escalation labels, and a link to the quality
 * dashboard for support leads.
 * Lists the tickets this agent handled and closed that have no label yet, each with four buttons:
 * correct escalation / the bot should have solved it / escalated too late / new topic.
 * A click stores the label (POST /api/tickets/{id}/label) and removes the row.
 * Uses the console's session (sessionStorage "pennant-console-token"); text via textContent only. */
(function () {
  "use strict";
  const TOKEN_KEY = "pennant-console-token";
  const POLL_MS = 8000;
  let panel = null;

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v; else if (k === "class") node.className = v; else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(c));
    return node;
  }

  function ensurePanel() {
    if (panel && document.body.contains(panel)) return panel;
    const host = document.querySelector(".queue-pane") || document.body;
    panel = el("section", { class: "label-panel", "aria-labelledby": "label-title", "data-label-panel": "" }, [
      el("h2", { id: "label-title", class: "mine-title", text: "Label your handled tickets" }),
      el("p", { class: "muted label-hint", text: "Was the escalation right? One click per ticket." }),
      el("ul", { class: "label-list", "data-label-list": "" }),
    ]);
    host.appendChild(panel);
    if (!document.querySelector('link[href="/static/labels.css"]')) {
      document.head.appendChild(el("link", { rel: "stylesheet", href: "/static/labels.css" }));
    }
    return panel;
  }

  async function call(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return null;
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, opts.headers || {});
    const response = await fetch(path, opts);
    if (!response.ok) return null;
    return response.json();
  }

  async function label(ticketId, value, row) {
    row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const result = await call(`/api/tickets/${encodeURIComponent(ticketId)}/label`, { method: "POST", body: JSON.stringify({ label: value }) });
    if (result) row.remove(); else row.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    refreshEmpty();
  }

  function refreshEmpty() {
    const list = panel && panel.querySelector("[data-label-list]");
    if (list) panel.hidden = list.children.length === 0;
  }

  function render(data) {
    const list = ensurePanel().querySelector("[data-label-list]");
    list.replaceChildren(...data.pending.map((t) => {
      const row = el("li", { class: "label-row", "data-ticket": t.ticket_id });
      row.appendChild(el("div", { class: "label-what", text: `${t.topic || "general"} · ${t.reason_codes.join(", ") || "no reason"} · ${t.state}` }));
      const buttons = el("div", { class: "label-buttons", role: "group", "aria-label": `Label ticket ${t.ticket_id}` });
      data.labels.forEach((choice) => {
        const button = el("button", { type: "button", "data-label": choice.value, text: choice.title });
        button.addEventListener("click", () => label(t.ticket_id, choice.value, row));
        buttons.appendChild(button);
      });
      row.appendChild(buttons);
      return row;
    }));
    refreshEmpty();
  }

  async function poll() {
    try {
      const data = await call("/api/analytics/labels");
      if (data) render(data);
    } catch (err) { /* the console shows connection problems itself */ }
  }

  async function leadLink() {
    const me = await call("/api/agent/me").catch(() => null);
    const logout = document.getElementById("logout");
    if (!me || me.agent.role !== "lead" || !logout || document.querySelector("[data-dashboard-link]")) return;
    logout.parentNode.insertBefore(el("a", { href: "/dashboard", class: "link", "data-dashboard-link": "", text: "Quality dashboard" }), logout);
  }

  window.PennantLabels = { refresh: poll };
  function start() { poll(); leadLink(); setInterval(() => { poll(); leadLink(); }, POLL_MS); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
