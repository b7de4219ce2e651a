/*
 * Pennant Pay chat widget. Add it to any page with one tag:
 *   <script src="https://<gateway>/static/widget.js" defer></script>
 * It talks to the gateway it was loaded from: HTTP for sending, a WebSocket for live events.
 * The conversation id and token are kept in localStorage, so a reload resumes the conversation
 * and a reconnect replays whatever was missed (from the last event id seen).
 * All text is rendered with textContent: nothing a customer, agent or bot writes becomes HTML.
 */
(function () {
  "use strict";
  if (window.PennantChat) return;

  var script = document.currentScript;
  var BASE = new URL(script ? script.src : "/static/widget.js", window.location.href).origin;
  var STORE_KEY = "pennant-chat:" + BASE;
  var PAYLOAD_HUMAN = "/request_human";
  var MAX_TEXT = 2000;

  var state = {
    conversationId: null,
    token: null,
    lastEventId: "0-0",
    mode: "bot",
    seen: {},
    pending: {},
    socket: null,
    retryMs: 500,
    open: false,
    agentName: null,
    typingTimer: null,
    lastTypingSent: 0,
    peerTypingTimer: null,
  };

  // ---------------------------------------------------------------- storage
  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(STORE_KEY) || "null");
      if (saved && saved.conversationId && saved.token) {
        state.conversationId = saved.conversationId;
        state.token = saved.token;
        state.open = !!saved.open;
      }
    } catch (e) { /* private mode: the conversation lasts as long as the page */ }
  }
  function save() {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify({
        conversationId: state.conversationId, token: state.token, open: state.open,
      }));
    } catch (e) { /* ignore */ }
  }

  // ---------------------------------------------------------------- DOM helpers
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var ui = {};

  function build() {
    var css = el("link", { rel: "stylesheet", href: BASE + "/static/widget.css" });
    document.head.appendChild(css);

    ui.root = el("div", { className: "pc-root", id: "pennant-chat" });
    ui.launcher = el("button", {
      className: "pc-launcher", type: "button", "aria-expanded": "false",
      "aria-controls": "pc-panel",
    }, "Chat with us");
    ui.panel = el("section", {
      className: "pc-panel", id: "pc-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "pc-title", hidden: "",
    });

    var header = el("header", { className: "pc-header" });
    var titles = el("div", { className: "pc-titles" });
    titles.appendChild(el("h2", { id: "pc-title", className: "pc-title" }, "Pennant Pay support"));
    ui.status = el("p", { className: "pc-status", id: "pc-status" }, "Assistant");
    titles.appendChild(ui.status);
    header.appendChild(titles);
    ui.human = el("button", { className: "pc-human", type: "button" }, "Talk to a person");
    header.appendChild(ui.human);
    ui.close = el("button", { className: "pc-close", type: "button", "aria-label": "Close chat" }, "\u00d7");
    header.appendChild(ui.close);

    ui.queue = el("div", { className: "pc-queue", role: "status", "aria-live": "polite", hidden: "" });
    ui.log = el("ol", {
      className: "pc-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-label": "Conversation", tabindex: "0",
    });
    ui.typing = el("p", { className: "pc-typing", "aria-live": "polite", hidden: "" });
    ui.connection = el("p", { className: "pc-connection", role: "alert", hidden: "" });

    ui.form = el("form", { className: "pc-form", "aria-label": "Send a message" });
    var label = el("label", { className: "pc-visually-hidden", for: "pc-input" }, "Your message");
    ui.input = el("textarea", {
      id: "pc-input", className: "pc-input", rows: "1", maxlength: String(MAX_TEXT),
      placeholder: "Type your question\u2026", autocomplete: "off",
    });
    ui.send = el("button", { className: "pc-send", type: "submit" }, "Send");
    ui.form.appendChild(label);
    ui.form.appendChild(ui.input);
    ui.form.appendChild(ui.send);

    [header, ui.queue, ui.log, ui.typing, ui.connection, ui.form].forEach(function (n) {
      ui.panel.appendChild(n);
    });
    ui.root.appendChild(ui.panel);
    ui.root.appendChild(ui.launcher);
    document.body.appendChild(ui.root);

    ui.launcher.addEventListener("click", function () { setOpen(!state.open); });
    ui.close.addEventListener("click", function () { setOpen(false); ui.launcher.focus(); });
    ui.panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { setOpen(false); ui.launcher.focus(); }
    });
    ui.human.addEventListener("click", function () {
      sendMessage({ payload: PAYLOAD_HUMAN, title: "Talk to a person" });
    });
    ui.form.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = ui.input.value.trim();
      if (!text) return;
      ui.input.value = "";
      sendMessage({ text: text });
    });
    ui.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        ui.form.requestSubmit ? ui.form.requestSubmit() : ui.send.click();
      }
    });
    ui.input.addEventListener("input", onTyping);
  }

  function setOpen(open) {
    state.open = open;
    save();
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      ui.panel.removeAttribute("hidden");
      ui.root.classList.add("pc-is-open");
      ensureConversation().then(function () { ui.input.focus(); });
    } else {
      ui.panel.setAttribute("hidden", "");
      ui.root.classList.remove("pc-is-open");
    }
  }

  // ---------------------------------------------------------------- rendering
  function idKey(id) {
    var parts = String(id).split("-");
    return [Number(parts[0]), Number(parts[1] || 0)];
  }
  function before(a, b) {
    var x = idKey(a), y = idKey(b);
    return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
  }

  function insertOrdered(node, id) {
    node.dataset.eventId = id;
    var items = ui.log.querySelectorAll("li[data-event-id]");
    for (var i = items.length - 1; i >= 0; i--) {
      if (!before(id, items[i].dataset.eventId)) {
        items[i].after(node);
        return;
      }
    }
    ui.log.insertBefore(node, ui.log.firstChild);
  }

  function speaker(from) {
    if (from === "customer") return "You";
    if (from === "agent") return state.agentName || "Agent";
    if (from === "bot") return "Assistant";
    return "";
  }

  function renderEvent(event) {
    if (!event || !event.id) return;
    if (event.type === "typing") { showPeerTyping(event); return; }
    if (event.type === "mode") { applyState(event); }
    if (state.seen[event.id]) return;
    state.seen[event.id] = true;
    if (before(state.lastEventId, event.id)) state.lastEventId = event.id;
    if (event.type === "mode") return;
    if (event.client_id && state.pending[event.client_id]) {
      state.pending[event.client_id].remove();
      delete state.pending[event.client_id];
    }
    var item;
    if (event.type === "notice") {
      item = el("li", { className: "pc-notice" }, event.text);
      // the gateway answered because the assistant is unavailable (bot.web.fallback)
      if (event.code === "bot_unavailable" && event.ts > Date.now() / 1000 - 120) {
        showConnection("The assistant is reconnecting\u2026 Your messages are saved.");
      }
    } else {
      if (event.from === "bot") showConnection(null);
      if (event.from === "agent" && event.agent_name) state.agentName = event.agent_name;
      item = messageItem(event.from, event.text, event.buttons);
    }
    insertOrdered(item, event.id);
    if (event.from !== "customer") hidePeerTyping();
    refreshButtons();
    scrollDown();
  }

  function messageItem(from, text, buttons) {
    var item = el("li", { className: "pc-msg pc-from-" + from });
    item.appendChild(el("span", { className: "pc-visually-hidden" }, speaker(from) + ": "));
    if (from === "agent") item.appendChild(el("span", { className: "pc-who", "aria-hidden": "true" }, speaker(from)));
    if (text) item.appendChild(el("p", { className: "pc-text" }, text));
    if (buttons && buttons.length) {
      var rating = buttons.every(function (b) { return String(b.payload).indexOf("/csat_rating") === 0; });
      var group = el("div", {
        className: "pc-buttons" + (rating ? " pc-rating" : ""), role: "group",
        "aria-label": rating ? "Rate this conversation from 1 (poor) to 5 (great)" : "Quick replies",
      });
      buttons.forEach(function (b) {
        var button = el("button", { type: "button", className: "pc-quick" }, b.title);
        button.addEventListener("click", function () {
          sendMessage({ payload: b.payload, title: b.title });
        });
        group.appendChild(button);
      });
      item.appendChild(group);
    }
    return item;
  }

  function refreshButtons() {
    // Only the latest message's quick replies stay active.
    var groups = ui.log.querySelectorAll(".pc-buttons");
    groups.forEach(function (g, i) {
      var last = i === groups.length - 1 && g.parentNode === ui.log.lastElementChild;
      g.querySelectorAll("button").forEach(function (b) { b.disabled = !last; });
    });
  }

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    var minutes = Math.max(1, Math.round(seconds / 60));
    return minutes === 1 ? "about 1 minute" : "about " + minutes + " minutes";
  }

  function applyState(s) {
    if (!s || !s.mode) return;
    var atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
    state.mode = s.mode;
    if ("ticket_id" in s) state.ticketId = s.ticket_id;
    if (s.agent_name) state.agentName = s.agent_name;
    ui.root.dataset.mode = s.mode;
    if (s.mode === "waiting") {
      var text = "Waiting for a person";
      if (s.position) text += " \u2014 you are number " + s.position + " in the queue";
      var eta = formatEta(s.eta_seconds);
      if (eta) text += ", " + eta;
      ui.queue.textContent = text + ". You can keep asking the assistant meanwhile.";
      ui.queue.removeAttribute("hidden");
      ui.status.textContent = "Waiting for a person";
      ui.human.disabled = true;
    } else if (s.mode === "agent") {
      ui.queue.setAttribute("hidden", "");
      ui.status.textContent = "Chatting with " + (state.agentName || "a person");
      ui.human.disabled = true;
    } else {
      ui.queue.setAttribute("hidden", "");
      ui.status.textContent = "Assistant";
      ui.human.disabled = false;
    }
    if (atBottom) scrollDown();  // the queue banner changes the log's height
  }

  function showPeerTyping(event) {
    if (event.from === "customer") return;
    var age = Date.now() / 1000 - (event.ts || 0);
    if (!event.typing || age > 6) { hidePeerTyping(); return; }
    ui.typing.textContent = speaker(event.from) + " is typing\u2026";
    ui.typing.removeAttribute("hidden");
    clearTimeout(state.peerTypingTimer);
    state.peerTypingTimer = setTimeout(hidePeerTyping, 5000);
  }
  function hidePeerTyping() { ui.typing.setAttribute("hidden", ""); }

  function showConnection(text) {
    if (text) { ui.connection.textContent = text; ui.connection.removeAttribute("hidden"); }
    else ui.connection.setAttribute("hidden", "");
  }

  // ---------------------------------------------------------------- HTTP
  function api(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(BASE + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error((data.error && data.error.message) || response.statusText);
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  var creating = null;
  function ensureConversation() {
    if (state.conversationId) { connect(); return Promise.resolve(); }
    if (creating) return creating;
    creating = api("POST", "/api/conversations").then(function (data) {
      state.conversationId = data.conversation_id;
      state.token = data.token;
      save();
      connect();
    }).catch(function (e) {
      showConnection("We could not start the chat (" + e.message + "). Please try again.");
    }).finally(function () { creating = null; });
    return creating;
  }

  function newClientId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function sendMessage(message, clientId) {
    clientId = clientId || newClientId();
    var body = { client_id: clientId };
    if (message.payload) { body.payload = message.payload; body.title = message.title; }
    else body.text = message.text.slice(0, MAX_TEXT);
    var shown = message.text || message.title || message.payload;
    var pending = state.pending[clientId];
    if (!pending) {
      pending = messageItem("customer", shown);
      pending.classList.add("pc-pending");
      pending.appendChild(el("span", { className: "pc-note" }, "Sending\u2026"));
      ui.log.appendChild(pending);
      state.pending[clientId] = pending;
      scrollDown();
    }
    return ensureConversation().then(function () {
      return api("POST", "/api/conversations/" + state.conversationId + "/messages", body);
    }).then(function (data) {
      (data.messages || []).forEach(renderEvent);
      applyState(data);
    }).catch(function (e) {
      if (e.status === 403 || e.status === 404) { restart(); return; }
      if (e.status === 503) showConnection("The assistant is reconnecting\u2026");
      var note = pending.querySelector(".pc-note");
      note.textContent = "Not sent (" + e.message + "). ";
      var retry = el("button", { type: "button", className: "pc-retry" }, "Retry");
      retry.addEventListener("click", function () {
        note.textContent = "Sending\u2026";
        sendMessage(message, clientId);
      });
      note.appendChild(retry);
    });
  }

  function restart() {
    // The conversation is gone (expired): start a fresh one.
    state.conversationId = null; state.token = null; state.lastEventId = "0-0"; state.seen = {};
    save();
    ui.log.textContent = "";
    ensureConversation();
  }

  function onTyping() {
    var now = Date.now();
    if (state.socket && state.socket.readyState === 1 && now - state.lastTypingSent > 2000) {
      state.lastTypingSent = now;
      state.socket.send(JSON.stringify({ type: "typing", typing: true }));
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(function () {
      state.lastTypingSent = 0;
      if (state.socket && state.socket.readyState === 1) {
        state.socket.send(JSON.stringify({ type: "typing", typing: false }));
      }
    }, 3000);
  }

  // ---------------------------------------------------------------- WebSocket
  function connect() {
    if (!state.conversationId) return;
    if (state.socket && state.socket.readyState <= 1) return;
    var url = BASE.replace(/^http/, "ws") + "/api/conversations/" +
      encodeURIComponent(state.conversationId) + "/ws";
    var socket = new WebSocket(url);
    state.socket = socket;
    socket.addEventListener("open", function () {
      socket.send(JSON.stringify({ type: "hello", token: state.token, after: state.lastEventId }));
    });
    socket.addEventListener("message", function (message) {
      var frame;
      try { frame = JSON.parse(message.data); } catch (e) { return; }
      if (frame.type === "ready") { state.retryMs = 500; showConnection(null); applyState(frame); }
      else if (frame.type === "event") renderEvent(frame.event);
      else if (frame.type === "state") applyState(frame);
      else if (frame.type === "error" && socket.readyState > 1) showConnection(frame.message);
    });
    socket.addEventListener("close", function (e) {
      if (state.socket !== socket) return;
      state.socket = null;
      if (e.code === 4403) { restart(); return; }
      showConnection("The assistant is reconnecting\u2026");
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 10000);
    });
  }

  function init() {
    load();
    build();
    if (state.conversationId) { connect(); }
    if (state.open) setOpen(true);
  }

  window.PennantChat = {
    open: function () { setOpen(true); },
    close: function () { setOpen(false); },
    conversationId: function () { return state.conversationId; },
    ticketId: function () { return state.ticketId || null; },
    mode: function () { return state.mode; },
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
