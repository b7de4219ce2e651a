/* Support-lead dashboard. Renders a period summary (GET /api/analytics/summary) with Chart.js.
 * The HTML report inlines this file with the summary in window.DASHBOARD_DATA (no API needed).
 * All text from data is set with textContent: nothing from a conversation is parsed as HTML. */
(function () {
  "use strict";
  const TOKEN_KEY = "pennant-console-token"; // shared with the agent console: one login for both
  const COLORS = { good: "#1f7a4d", bad: "#b3261e", warn: "#b26a00", accent: "#2f5bd3",
    grey: "#8a94a6", violet: "#7b4fc9", teal: "#138a8a" };
  const charts = {};
  window.dashboardCharts = charts;

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([k, v]) => {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.appendChild(c));
    return node;
  }
  const rate = (r) => (r && r.rate != null ? r.rate : null);
  const pct = (r) => (rate(r) == null ? "–" : (100 * r.rate).toFixed(1) + " %");
  const frac = (r) => (r ? `${r.numerator} of ${r.denominator}` : "");
  const secs = (s) => (s == null ? "–" : s < 90 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`);
  const tone = (value, goodAbove, badBelow) =>
    value == null ? "" : value >= goodAbove ? "good" : value < badBelow ? "bad" : "warn";

  function tiles(s) {
    const csatBot = s.csat.bot_only, csatAgent = s.csat.agent_handled;
    const est = s.estimated_satisfaction;
    return [
      { label: "Conversations", value: String(s.conversations), detail: "started in the period" },
      { label: "Containment", value: pct(s.containment), detail: frac(s.containment) + " resolved by the bot",
        tone: tone(rate(s.containment), 0.6, 0.4) },
      { label: "False containment", value: pct(s.false_containment),
        detail: frac(s.false_containment) + " bot-only left unserved",
        tone: tone(1 - (rate(s.false_containment) ?? 0), 0.85, 0.7) },
      { label: "Escalation rate", value: pct(s.escalation), detail: frac(s.escalation) + " handed to a person" },
      { label: "Durable resolution", value: pct(s.durable_resolution),
        detail: "no repeat contact in 7 days", tone: tone(rate(s.durable_resolution), 0.85, 0.7) },
      { label: "CSAT bot only", value: csatBot.mean == null ? "–" : csatBot.mean.toFixed(2),
        detail: `${pct(csatBot.satisfied)} satisfied, response ${pct(csatBot.response_rate)}`,
        tone: tone(csatBot.mean, 4, 3) },
      { label: "CSAT agent handled", value: csatAgent.mean == null ? "–" : csatAgent.mean.toFixed(2),
        detail: `${pct(csatAgent.satisfied)} satisfied, response ${pct(csatAgent.response_rate)}`,
        tone: tone(csatAgent.mean, 4, 3) },
      { label: "CSAT coverage", value: pct(s.csat_coverage), detail: frac(s.csat_coverage) + " rated" },
      { label: "Estimated satisfied", value: est.estimated_satisfied == null ? "–" : (100 * est.estimated_satisfied).toFixed(1) + " %",
        detail: `every conversation; agreement ${pct(est.agreement)} with ratings${est.calibrated ? "" : " (uncalibrated)"}` },
      { label: "First agent reply", value: secs(s.time_to_first_agent_reply.median),
        detail: `median; p90 ${secs(s.time_to_first_agent_reply.p90)}` },
      { label: "Agent handle time", value: secs(s.agent_handle_time.median),
        detail: `median of ${s.agent_handle_time.count} tickets` },
      { label: "Abandoned waiting", value: pct(s.abandonment_while_waiting),
        detail: frac(s.abandonment_while_waiting) + " tickets",
        tone: tone(1 - (rate(s.abandonment_while_waiting) ?? 0), 0.95, 0.85) },
      { label: "Missed escalations", value: pct(s.escalation_labels.missed),
        detail: "labelled “escalated too late”", tone: tone(1 - (rate(s.escalation_labels.missed) ?? 0), 0.95, 0.85) },
      { label: "Unnecessary escalations", value: pct(s.escalation_labels.unnecessary),
        detail: `“bot should have solved it”; labelled ${pct(s.escalation_labels.coverage)}` },
    ];
  }

  function renderTiles(root, s) {
    const box = root.querySelector("[data-tiles]");
    box.replaceChildren(...tiles(s).map((t) => el("div", { class: `tile ${t.tone || ""}`, role: "group", "aria-label": t.label }, [
      el("div", { class: "label", text: t.label }),
      el("div", { class: "value", text: t.value }),
      el("div", { class: "detail", text: t.detail }),
    ])));
  }

  function draw(name, canvas, config) {
    if (charts[name]) charts[name].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[name] = new window.Chart(canvas, config);
  }

  function renderCharts(root, s) {
    const q = (n) => root.querySelector(`[data-chart="${n}"]`);
    const days = s.daily.map((d) => d.day);
    const series = (key) => s.daily.map((d) => (rate(d[key]) == null ? null : +(100 * d[key].rate).toFixed(1)));
    draw("daily", q("daily"), {
      data: { labels: days, datasets: [
        { type: "bar", label: "Conversations", data: s.daily.map((d) => d.conversations), backgroundColor: "#d9e1f5", yAxisID: "count", order: 2 },
        { type: "line", label: "Containment %", data: series("containment"), borderColor: COLORS.good, backgroundColor: COLORS.good, yAxisID: "pct", spanGaps: true },
        { type: "line", label: "False containment %", data: series("false_containment"), borderColor: COLORS.bad, backgroundColor: COLORS.bad, yAxisID: "pct", spanGaps: true },
        { type: "line", label: "Escalation %", data: series("escalation"), borderColor: COLORS.accent, backgroundColor: COLORS.accent, yAxisID: "pct", spanGaps: true },
      ] },
      options: { scales: { pct: { position: "left", min: 0, max: 100, title: { display: true, text: "%" } },
        count: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "conversations" } } } },
    });
    const reasons = Object.entries(s.escalation_reasons);
    draw("reasons", q("reasons"), {
      type: "bar",
      data: { labels: reasons.map(([c]) => c), datasets: [{ label: "Escalated conversations", data: reasons.map(([, r]) => r.numerator), backgroundColor: COLORS.accent }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    const paths = [["Bot only", s.csat.bot_only], ["Agent handled", s.csat.agent_handled]];
    draw("csat", q("csat"), {
      type: "bar",
      data: { labels: paths.map(([n]) => n), datasets: [
        { label: "Satisfied (4-5) %", data: paths.map(([, c]) => (rate(c.satisfied) == null ? 0 : +(100 * c.satisfied.rate).toFixed(1))), backgroundColor: COLORS.good },
        { label: "Response rate %", data: paths.map(([, c]) => (rate(c.response_rate) == null ? 0 : +(100 * c.response_rate.rate).toFixed(1))), backgroundColor: COLORS.grey },
      ] },
      options: { scales: { y: { min: 0, max: 100 } } },
    });
    const lab = s.escalation_labels;
    draw("labels", q("labels"), {
      type: "doughnut",
      data: { labels: ["Correct", "Bot should have solved it", "Escalated too late", "New topic"],
        datasets: [{ data: [lab.correct.numerator, lab.unnecessary.numerator, lab.missed.numerator, lab.new_topic.numerator],
          backgroundColor: [COLORS.good, COLORS.warn, COLORS.bad, COLORS.violet] }] },
      options: { plugins: { legend: { position: "right" } } },
    });
    const worst = s.per_intent.slice(0, 10);
    const ratePct = (r) => (rate(r) == null ? 0 : +(100 * r.rate).toFixed(1));
    draw("intents", q("intents"), {
      type: "bar",
      data: { labels: worst.map((r) => r.intent), datasets: [
        { label: "Fallback %", data: worst.map((r) => ratePct(r.fallback)), backgroundColor: COLORS.warn },
        { label: "Didn't help %", data: worst.map((r) => ratePct(r.didnt_help)), backgroundColor: COLORS.bad },
        { label: "Escalated %", data: worst.map((r) => ratePct(r.escalation)), backgroundColor: COLORS.accent },
      ] },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 100 } } },
    });
  }

  function renderIntentTable(root, s) {
    const body = root.querySelector("[data-intent-rows]");
    const cell = (r, hotAbove) => el("td", { class: `num ${rate(r) != null && rate(r) >= hotAbove ? "hot" : ""}`, text: pct(r) });
    body.replaceChildren(...s.per_intent.map((row) => el("tr", {}, [
      el("td", { text: row.intent }),
      el("td", { class: "num", text: String(row.volume) }),
      cell(row.fallback, 0.3), cell(row.didnt_help, 0.3), cell(row.escalation, 0.5),
    ])));
  }

  function fillTopics(root, s) {
    const select = root.querySelector("[data-topic]");
    if (!select) return;
    const current = s.period.topic || "";
    select.replaceChildren(el("option", { value: "", text: "All topics" }),
      ...s.topics.map((t) => el("option", { value: t, text: t })));
    select.value = current;
  }

  function render(s, root) {
    root = root || document;
    const period = root.querySelector("[data-period]");
    if (period) period.textContent = `${s.period.from.slice(0, 10)} to ${s.period.to.slice(0, 10)} (exclusive)` + (s.period.topic ? ` · topic ${s.period.topic}` : "");
    renderTiles(root, s);
    renderCharts(root, s);
    renderIntentTable(root, s);
    fillTopics(root, s);
    root.querySelector("main.dash")?.setAttribute("data-ready", "true");
  }

  /* ---- live mode: lead login and the analytics API ---- */
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers = Object.assign({ Authorization: `Bearer ${token()}` }, opts.headers);
    const response = await fetch(path, opts);
    if (response.status === 401 || response.status === 403) { showLogin("Please log in with a support-lead account."); throw new Error("auth"); }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || body.message || `HTTP ${response.status}`);
    }
    return response;
  }

  function query() {
    const from = document.querySelector("[data-from]").value, to = document.querySelector("[data-to]").value;
    const topic = document.querySelector("[data-topic]").value;
    const params = new URLSearchParams();
    if (from) params.set("from", from);
    if (to) params.set("to", to);
    if (topic) params.set("topic", topic);
    return params.toString();
  }

  async function refresh() {
    const status = document.querySelector("[data-status]");
    status.textContent = "Loading…";
    try {
      const summary = await (await api(`/api/analytics/summary?${query()}`)).json();
      render(summary);
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (err.message !== "auth") status.textContent = `Could not load: ${err.message}`;
    }
  }

  function showLogin(message) {
    document.querySelector("[data-login]").hidden = false;
    document.querySelector("[data-dashboard]").hidden = true;
    document.querySelector("[data-login-error]").textContent = message || "";
  }

  async function login(event) {
    event.preventDefault();
    const form = event.target;
    const response = await fetch("/api/agent/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ login: form.login.value, password: form.password.value }) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { showLogin((body.error && body.error.message) || "Login failed"); return; }
    sessionStorage.setItem(TOKEN_KEY, body.token);
    start();
  }

  async function runReplay(event) {
    event.preventDefault();
    const out = document.querySelector("[data-replay-result]");
    out.replaceChildren(el("p", { text: "Replaying…" }));
    try {
      const response = await api(`/api/analytics/replay?${query()}`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ policy: document.querySelector("[data-replay-policy]").value }) });
      const result = await response.json();
      const counts = Object.entries(result.counts).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
      out.replaceChildren(
        el("p", { text: `${result.changed} of ${result.conversations} conversations would be escalated differently (${counts}).` }),
        el("table", { class: "replay-rows" }, [
          el("thead", {}, [el("tr", {}, ["Conversation", "Topic", "Change", "Handoff turn", "Offer turn", "Candidate reasons"].map((h) => el("th", { text: h })))]),
          el("tbody", {}, result.rows.map((r) => el("tr", {}, [
            r.conversation_id, r.topic || "", r.change,
            `${r.current.first_handoff ?? "–"} → ${r.candidate.first_handoff ?? "–"}`,
            `${r.current.first_offer ?? "–"} → ${r.candidate.first_offer ?? "–"}`,
            r.candidate.reasons.join(", "),
          ].map((t) => el("td", { text: String(t) }))))),
        ]));
    } catch (err) {
      if (err.message !== "auth") out.replaceChildren(el("p", { class: "error", text: err.message }));
    }
  }

  async function loadCurrentPolicy() {
    const area = document.querySelector("[data-replay-policy]");
    if (area.value) return;
    try { area.value = await (await api("/api/analytics/policy")).text(); } catch (err) { /* shown on replay */ }
  }

  async function downloadCandidates(event) {
    event.preventDefault();
    const blob = await (await api(`/api/analytics/nlu-candidates.yml?${query()}`)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: "nlu_candidates.yml" });
    document.body.appendChild(link); link.click(); link.remove();
  }

  function start() {
    document.querySelector("[data-login]").hidden = true;
    document.querySelector("[data-dashboard]").hidden = false;
    refresh();
    loadCurrentPolicy();
  }

  function init() {
    if (window.DASHBOARD_DATA) { render(window.DASHBOARD_DATA); return; }
    if (!document.querySelector("[data-login]")) return;
    const today = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
    document.querySelector("[data-from]").value ||= from;
    document.querySelector("[data-to]").value ||= today;
    document.querySelector("[data-login-form]").addEventListener("submit", login);
    document.querySelector("[data-filters]").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
    document.querySelector("[data-topic]").addEventListener("change", refresh);
    document.querySelector("[data-replay-form]").addEventListener("submit", runReplay);
    document.querySelector("[data-export]").addEventListener("click", downloadCandidates);
    document.querySelector("[data-logout]").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(""); });
    if (token()) start(); else showLogin("");
  }

  window.PennantDashboard = { render, tiles };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
