/*
 * Pennant Pay agent console. Plain JS, no build step. Everything shown is set with textContent.
 *
 * Views: the console has a "desk" view (queue + chats). Other views (e.g. the support lead's
 * dashboard) plug in with
 *   SupportConsole.registerView({id, title, roles: ["lead"], mount(container, api)})
 * where api.get(path) / api.post(path, body) call the gateway with the agent's session.
 */
(function () {
  "use strict";
  var TOKEN_KEY = "pennant-console-token";
  var $ = function (id) { return document.getElementById(id); };

  var state = {
    token: null, agent: null, online: false, socket: null, retryMs: 500,
    queue: [], mine: [], tickets: {}, events: {}, offsets: {}, selected: null,
    options: { canned_responses: [], dispositions: [], topics: [] },
    lastTyping: 0, customerTypingTimer: null, views: [], currentView: "desk",
  };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") node.className = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ------------------------------------------------------------------ HTTP
  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.status === 401 && path !== "/api/agent/login") { logout(false); }
          if (!response.ok) {
            var error = new Error((data.error && data.error.message) || response.statusText);
            error.status = response.status;
            throw error;
          }
          return data;
        });
      });
  }
  var api = {
    get: function (path) { return call("GET", path); },
    post: function (path, body) { return call("POST", path, body || {}); },
  };

  function banner(text) {
    var b = $("banner");
    if (text) { b.textContent = text; b.hidden = false; } else { b.hidden = true; }
  }
  function failed(e) { banner(e.message); }

  // ------------------------------------------------------------------ login
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("login-error").textContent = "";
    api.post("/api/agent/login", { login: $("login-name").value, password: $("login-password").value })
      .then(function (data) {
        state.token = data.token;
        sessionStorage.setItem(TOKEN_KEY, data.token);
        start();
      })
      .catch(function (err) { $("login-error").textContent = err.message; });
  });

  function logout(tellServer) {
    var done = tellServer ? api.post("/api/agent/logout").catch(function () {}) : Promise.resolve();
    done.then(function () {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      if (state.socket) { var s = state.socket; state.socket = null; s.close(); }
      $("app").hidden = true;
      $("login-view").hidden = false;
    });
  }
  $("logout").addEventListener("click", function () { logout(true); });

  function start() {
    Promise.all([api.get("/api/agent/me"), api.get("/api/agent/options")]).then(function (r) {
      var me = r[0];
      state.agent = me.agent;
      state.options = r[1];
      $("login-view").hidden = true;
      $("app").hidden = false;
      $("me-name").textContent = me.agent.name;
      setPresence(!!me.online);
      fillOptions();
      renderNav();
      updateMine(me.tickets || []);
      connect();
    }).catch(function (e) {
      if (e.status !== 401) banner(e.message);
    });
  }

  function fillOptions() {
    var canned = $("canned");
    canned.length = 1;
    state.options.canned_responses.forEach(function (c, i) { canned.appendChild(el("option", { value: String(i) }, c.title)); });
    var disp = $("disposition");
    disp.textContent = "";
    disp.appendChild(el("option", { value: "" }, "Disposition\u2026"));
    state.options.dispositions.forEach(function (d) { disp.appendChild(el("option", { value: d }, d.replace(/_/g, " "))); });
    var topics = $("transfer-topic");
    topics.textContent = "";
    topics.appendChild(el("option", { value: "" }, "Transfer to\u2026"));
    state.options.topics.forEach(function (t) { topics.appendChild(el("option", { value: t }, t.replace(/_/g, " "))); });
  }

  // ------------------------------------------------------------------ presence
  function setPresence(online) {
    state.online = online;
    var b = $("presence");
    b.setAttribute("aria-checked", online ? "true" : "false");
    b.textContent = online ? "Online" : "Offline";
    b.classList.toggle("on", online);
  }
  $("presence").addEventListener("click", function () {
    api.post("/api/agent/presence", { online: !state.online }).then(function (data) {
      setPresence(!!data.online);
      if (data.assigned && data.assigned.length) refreshMine();
    }).catch(failed);
  });

  // ------------------------------------------------------------------ queue
  function waitText(seconds) {
    seconds = Math.max(0, Math.round(seconds || 0));
    if (seconds < 60) return seconds + " s";
    var m = Math.floor(seconds / 60);
    return m < 60 ? m + " min" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function renderQueue() {
    var body = $("queue-body");
    body.textContent = "";
    var waiting = state.queue.filter(function (t) { return t.state === "queued"; });
    $("queue-count").textContent = "(" + waiting.length + " waiting)";
    $("queue-empty").hidden = waiting.length > 0;
    waiting.forEach(function (t) {
      var row = el("tr", { "data-ticket-id": t.id });
      if (t.sla_breached) row.className = "breached";
      row.appendChild(el("td", { className: "prio prio-" + t.priority_label }, t.priority_label || t.priority));
      var topic = el("td");
      topic.appendChild(el("strong", {}, (t.topic || "").replace(/_/g, " ")));
      topic.appendChild(el("div", { className: "reasons" }, (t.reasons || []).join(", ")));
      topic.appendChild(el("div", { className: "muted" }, customerName(t)));
      row.appendChild(topic);
      var waited = t.waiting_since ? Date.now() / 1000 - t.waiting_since : t.wait_seconds;
      row.appendChild(el("td", { className: "wait", "data-since": String(t.waiting_since || "") }, waitText(waited)));
      var action = el("td");
      var claim = el("button", { type: "button", className: "claim" }, "Claim");
      claim.setAttribute("aria-label", "Claim ticket " + t.id + " (" + (t.topic || "") + ")");
      claim.addEventListener("click", function () {
        api.post("/api/tickets/" + encodeURIComponent(t.id) + "/claim").then(function (d) {
          addTicket(d.ticket, true);
        }).catch(failed);
      });
      action.appendChild(claim);
      row.appendChild(action);
      body.appendChild(row);
    });
  }
  setInterval(function () {
    document.querySelectorAll("td.wait[data-since]").forEach(function (td) {
      var since = Number(td.dataset.since);
      if (since) td.textContent = waitText(Date.now() / 1000 - since);
    });
  }, 1000);

  $("claim-next").addEventListener("click", function () {
    api.post("/api/tickets/claim").then(function (d) {
      if (d.ticket) { addTicket(d.ticket, true); banner(null); } else banner(d.message);
    }).catch(failed);
  });

  // ------------------------------------------------------------------ my tickets
  function refreshMine() {
    api.get("/api/agent/me").then(function (me) { updateMine(me.tickets || []); }).catch(failed);
  }

  function updateMine(tickets) {
    var ids = tickets.map(function (t) { return t.id; });
    state.mine.forEach(function (id) { if (ids.indexOf(id) < 0) dropTicket(id); });
    tickets.forEach(function (t) { if (state.mine.indexOf(t.id) < 0) addTicket(t, !state.selected); });
    renderMine();
  }

  function customerName(t) {
    var name = t.customer && t.customer.display_name;
    if (name && name !== "Customer") return name;
    return "Customer \u2026" + String(t.conversation_id || t.id).slice(-6);
  }

  function addTicket(ticket, select) {
    state.queue = state.queue.filter(function (q) { return q.id !== ticket.id; });
    renderQueue();
    if (state.mine.indexOf(ticket.id) < 0) state.mine.push(ticket.id);
    state.tickets[ticket.id] = ticket;
    return api.get("/api/tickets/" + encodeURIComponent(ticket.id)).then(function (data) {
      state.tickets[ticket.id] = data.ticket;
      var conv = data.ticket.conversation_id;
      state.events[conv] = [];
      state.offsets[conv] = "0-0";
      data.messages.forEach(function (e) { addEvent(conv, e); });
      sendWatch();
      renderMine();
      if (select || !state.selected) selectTicket(ticket.id);
    }).catch(failed);
  }

  function dropTicket(id) {
    state.mine = state.mine.filter(function (x) { return x !== id; });
    var t = state.tickets[id];
    if (t) { delete state.events[t.conversation_id]; delete state.offsets[t.conversation_id]; }
    if (state.selected === id) { state.selected = null; showChat(false); }
    sendWatch();
    renderMine();
  }

  // The gateway stopped relaying a chat this agent no longer holds (resolved, handed back,
  // transferred, or back in the queue after a lapsed connection): close it here too.
  function revoked(frame) {
    var id = frame.ticket_id;
    if (!id || state.mine.indexOf(id) < 0) return;
    var t = state.tickets[id] || { id: id };
    dropTicket(id);
    banner("The chat with " + customerName(t) + (frame.reason === "moved"
      ? " was moved to the queue or to a colleague." : " was closed."));
  }

  function renderMine() {
    var list = $("mine");
    list.textContent = "";
    $("mine-count").textContent = "(" + state.mine.length + " of " + ((state.agent && state.agent.capacity) || "?") + ")";
    state.mine.forEach(function (id) {
      var t = state.tickets[id] || { id: id };
      var item = el("li", { role: "presentation" });
      var tab = el("button", { type: "button", role: "tab", "aria-selected": state.selected === id ? "true" : "false", className: "mine-tab" });
      tab.appendChild(el("strong", {}, customerName(t)));
      tab.appendChild(el("span", { className: "muted" }, " " + (t.topic || "").replace(/_/g, " ")));
      if (t.unread) tab.appendChild(el("span", { className: "unread", "aria-label": t.unread + " new" }, String(t.unread)));
      tab.addEventListener("click", function () { selectTicket(id); });
      item.appendChild(tab);
      list.appendChild(item);
    });
  }

  // ------------------------------------------------------------------ chat
  function showChat(show) { $("chat").hidden = !show; $("no-chat").hidden = show; }

  function selectTicket(id) {
    state.selected = id;
    var t = state.tickets[id];
    if (!t) return;
    t.unread = 0;
    showChat(true);
    $("chat-title").textContent = customerName(t);
    $("chat-meta").textContent = [
      "ticket " + t.id, (t.topic || "").replace(/_/g, " "), "priority " + (t.priority_label || t.priority),
      t.customer && t.customer.verified ? "verified" : "not verified",
    ].join(" \u00b7 ");
    renderTranscript();
    renderContext(t);
    renderMine();
    $("reply").focus();
  }

  function addEvent(conv, event) {
    var list = state.events[conv];
    if (!list) return;
    if (event.type === "typing") { if (event.from === "customer") customerTyping(conv, event); return; }
    if (list.some(function (e) { return e.id === event.id; })) return;
    list.push(event);
    state.offsets[conv] = event.id;
    var selected = state.tickets[state.selected];
    if (selected && selected.conversation_id === conv) {
      appendLine(event);
      if (event.from === "customer") $("customer-typing").hidden = true;
    } else if (event.type === "message" && event.from === "customer") {
      var id = ticketOf(conv);
      if (id) { state.tickets[id].unread = (state.tickets[id].unread || 0) + 1; renderMine(); }
    }
  }

  function ticketOf(conv) {
    for (var i = 0; i < state.mine.length; i++) {
      var t = state.tickets[state.mine[i]];
      if (t && t.conversation_id === conv) return t.id;
    }
    return null;
  }

  function renderTranscript() {
    var t = state.tickets[state.selected];
    $("transcript").textContent = "";
    (state.events[t.conversation_id] || []).forEach(appendLine);
  }

  function appendLine(event) {
    if (event.type === "mode") return;
    var box = $("transcript");
    var item;
    if (event.type === "notice") {
      item = el("li", { className: "notice" }, event.text);
    } else {
      item = el("li", { className: "line from-" + event.from });
      var who = event.from === "agent" ? (event.agent_name || "Agent") : event.from === "bot" ? "Bot" : "Customer";
      var head = el("div", { className: "who" }, who);
      head.appendChild(el("time", { className: "muted" }, " " + new Date((event.ts || 0) * 1000).toLocaleTimeString()));
      item.appendChild(head);
      item.appendChild(el("p", { className: "text" }, event.text || ""));
      if (event.buttons && event.buttons.length) {
        item.appendChild(el("div", { className: "muted" }, "Buttons: " + event.buttons.map(function (b) { return b.title; }).join(" | ")));
      }
    }
    box.appendChild(item);
    box.scrollTop = box.scrollHeight;
  }

  function pct(x) { return x === undefined || x === null ? "" : Math.round(Number(x) * 100) + "%"; }
  function sentimentLabel(s) {
    if (s === undefined || s === null) return "";
    s = Number(s);
    return (s <= -0.3 ? "negative " : s >= 0.3 ? "positive " : "neutral ") + s.toFixed(2);
  }

  function renderContext(t) {
    var box = $("context");
    box.textContent = "";
    var dl = el("dl", { className: "facts" });
    [["Reasons", (t.reasons || []).join(", ")], ["Topic", (t.topic || "").replace(/_/g, " ")],
     ["Priority", t.priority_label || t.priority], ["Waited", waitText(t.wait_seconds)]].forEach(function (p) {
      dl.appendChild(el("dt", {}, p[0])); dl.appendChild(el("dd", {}, p[1]));
    });
    box.appendChild(dl);
    var summary = t.summary || {};
    if (summary.text) box.appendChild(el("p", { className: "gist" }, summary.text));
    if (summary.intents && summary.intents.length) {
      box.appendChild(el("h4", {}, "Intents"));
      var ul = el("ul", { className: "intents" });
      summary.intents.forEach(function (i) { ul.appendChild(el("li", {}, i.name + " " + pct(i.confidence))); });
      box.appendChild(ul);
    }
    var turns = (summary.transcript || []).filter(function (x) { return x.role === "customer"; });
    if (turns.length) {
      box.appendChild(el("h4", {}, "Per customer turn"));
      var table = el("table", { className: "turns" });
      var head = el("tr");
      ["Message", "Intent", "Conf.", "Sentiment"].forEach(function (h) { head.appendChild(el("th", { scope: "col" }, h)); });
      table.appendChild(head);
      turns.forEach(function (x) {
        var row = el("tr");
        var s = Number(x.sentiment);
        row.appendChild(el("td", {}, x.text));
        row.appendChild(el("td", {}, x.intent || ""));
        row.appendChild(el("td", {}, pct(x.confidence)));
        row.appendChild(el("td", { className: s <= -0.3 ? "neg" : s >= 0.3 ? "pos" : "" }, sentimentLabel(x.sentiment)));
        table.appendChild(row);
      });
      box.appendChild(table);
    }
  }

  function customerTyping(conv, event) {
    var t = state.tickets[state.selected];
    if (!t || t.conversation_id !== conv) return;
    var fresh = Date.now() / 1000 - (event.ts || 0) < 6;
    $("customer-typing").hidden = !(event.typing && fresh);
    clearTimeout(state.customerTypingTimer);
    state.customerTypingTimer = setTimeout(function () { $("customer-typing").hidden = true; }, 5000);
  }

  // ------------------------------------------------------------------ actions
  function newClientId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  $("reply-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("reply").value.trim();
    if (!text || !state.selected) return;
    var id = state.selected;
    var clientId = newClientId();
    $("reply").value = "";
    api.post("/api/tickets/" + encodeURIComponent(id) + "/messages", { text: text, client_id: clientId })
      .then(function (d) { addEvent(state.tickets[id].conversation_id, d.message); banner(null); })
      .catch(function (err) { $("reply").value = text; failed(err); });
  });
  $("reply").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("reply-form").requestSubmit(); }
  });
  $("reply").addEventListener("input", function () {
    if (!state.selected || Date.now() - state.lastTyping < 2500) return;
    state.lastTyping = Date.now();
    api.post("/api/tickets/" + encodeURIComponent(state.selected) + "/typing", { typing: true }).catch(function () {});
  });
  $("canned").addEventListener("change", function () {
    var c = state.options.canned_responses[Number(this.value)];
    if (c) { $("reply").value = c.text; $("reply").focus(); }
    this.value = "";
  });

  function finish(action, body) {
    var id = state.selected;
    if (!id) return;
    api.post("/api/tickets/" + encodeURIComponent(id) + "/" + action, body).then(function () {
      dropTicket(id);
      if (state.mine.length) selectTicket(state.mine[0]);
    }).catch(failed);
  }
  $("resolve").addEventListener("click", function () {
    if (!$("disposition").value) { banner("Choose a disposition before resolving."); $("disposition").focus(); return; }
    finish("resolve", { disposition: $("disposition").value });
  });
  $("handback").addEventListener("click", function () { finish("handback", {}); });
  $("transfer").addEventListener("click", function () {
    if (!$("transfer-topic").value) { banner("Choose the topic to transfer to."); $("transfer-topic").focus(); return; }
    finish("transfer", { topic: $("transfer-topic").value });
  });

  // ------------------------------------------------------------------ live socket
  function sendWatch() {
    if (!state.socket || state.socket.readyState !== 1) return;
    var watch = {};
    state.mine.forEach(function (id) {
      var t = state.tickets[id];
      if (t && t.conversation_id && state.events[t.conversation_id]) watch[t.conversation_id] = state.offsets[t.conversation_id];
    });
    state.socket.send(JSON.stringify({ type: "watch", conversations: watch }));
  }

  function connect() {
    if (!state.token || (state.socket && state.socket.readyState <= 1)) return;
    var socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/api/agent/ws");
    state.socket = socket;
    socket.addEventListener("open", function () { socket.send(JSON.stringify({ type: "hello", token: state.token })); });
    socket.addEventListener("message", function (m) {
      var frame;
      try { frame = JSON.parse(m.data); } catch (e) { return; }
      if (frame.type === "ready") { state.retryMs = 500; banner(null); sendWatch(); }
      else if (frame.type === "queue") { state.queue = frame.tickets; renderQueue(); }
      else if (frame.type === "mine") updateMine(frame.tickets);
      else if (frame.type === "presence") setPresence(!!frame.online);
      else if (frame.type === "event") addEvent(frame.conversation_id, frame.event);
      else if (frame.type === "revoked") revoked(frame);
      else if (frame.type === "error") banner(frame.message);
    });
    socket.addEventListener("close", function () {
      if (state.socket !== socket) return;
      state.socket = null;
      if (!state.token) return;
      banner("The assistant is reconnecting\u2026 Your chats continue once the connection is back.");
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 10000);
    });
  }

  // ------------------------------------------------------------------ views (extensible)
  function renderNav() {
    var nav = $("views-nav");
    nav.textContent = "";
    var all = [{ id: "desk", title: "Desk" }].concat(state.views.filter(function (v) {
      return !v.roles || v.roles.indexOf(state.agent.role) >= 0;
    }));
    if (all.length < 2) return;
    all.forEach(function (v) {
      var b = el("button", { type: "button", className: "view-tab", "aria-pressed": v.id === state.currentView ? "true" : "false" }, v.title);
      b.addEventListener("click", function () { showView(v.id); });
      nav.appendChild(b);
    });
  }

  function showView(id) {
    state.currentView = id;
    document.querySelectorAll("main[data-view]").forEach(function (m) { m.hidden = m.dataset.view !== id; });
    var view = state.views.filter(function (v) { return v.id === id; })[0];
    if (view && !view.mounted) {
      var main = el("main", { "data-view": id, className: "extra-view", id: "view-" + id });
      $("app").appendChild(main);
      view.mount(main, api);
      view.mounted = true;
    }
    renderNav();
  }

  window.SupportConsole = {
    registerView: function (view) { state.views.push(view); if (state.agent) renderNav(); },
    api: api,
  };

  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (state.token) start();
})();
