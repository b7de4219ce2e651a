/* Account admin in the agent console: a view for support leads only (the server checks too).
 * Lists accounts; adds one (the generated password is shown once); disables/enables, resets a
 * password (shown once), changes role and skills. Uses the console's session through
 * SupportConsole.api. Everything shown is set with textContent. */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") node.className = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function mount(container, api) {
    var state = { accounts: [], skills: [], roles: ["agent", "lead"] };
    var path = function (login, action) {
      return "/api/admin/accounts/" + encodeURIComponent(login) + "/" + action;
    };

    var pane = el("section", { className: "admin-pane", "aria-labelledby": "admin-title" });
    pane.appendChild(el("h2", { id: "admin-title" }, "Accounts"));
    var error = el("p", { className: "error", role: "alert", "data-admin-error": "" });
    var secret = el("div", { className: "admin-secret", role: "status", "data-admin-secret": "" });
    secret.hidden = true;
    pane.appendChild(error);
    pane.appendChild(secret);

    // ---- add form
    var form = el("form", { className: "admin-add", "aria-label": "Add an account", "data-admin-add": "" });
    function field(id, label, input) {
      var wrap = el("div", { className: "admin-field" });
      wrap.appendChild(el("label", { for: id }, label));
      input.id = id;
      wrap.appendChild(input);
      form.appendChild(wrap);
      return input;
    }
    var login = field("admin-login", "New login (email)", el("input", { type: "email", name: "login", required: "", autocomplete: "off" }));
    var name = field("admin-name", "Name", el("input", { type: "text", name: "name", required: "", maxlength: "80" }));
    var role = field("admin-role", "Role", el("select", { name: "role" }));
    var capacity = field("admin-capacity", "Chats at once", el("input", { type: "number", name: "capacity", min: "1", max: "20", value: "3" }));
    var skillsBox = el("fieldset", { className: "admin-skills" });
    skillsBox.appendChild(el("legend", {}, "Skills"));
    form.appendChild(skillsBox);
    form.appendChild(el("button", { type: "submit", className: "primary" }, "Add account"));
    pane.appendChild(form);

    var table = el("table", { className: "queue admin-table", "data-admin-table": "" });
    table.appendChild(el("caption", { className: "visually-hidden" }, "Agent accounts"));
    var head = el("tr");
    ["Login", "Name", "Role", "Skills", "State", "Actions"].forEach(function (h) { head.appendChild(el("th", { scope: "col" }, h)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    pane.appendChild(table);
    container.appendChild(pane);

    function fail(e) { error.textContent = e.message; }
    function showSecret(loginName, password) {
      secret.textContent = "";
      secret.appendChild(el("span", {}, "Password for " + loginName + " (shown once, copy it now): "));
      secret.appendChild(el("code", { "data-admin-password": "" }, password));
      var hide = el("button", { type: "button", className: "link" }, "Hide");
      hide.addEventListener("click", function () { secret.hidden = true; secret.textContent = ""; });
      secret.appendChild(hide);
      secret.hidden = false;
    }
    function act(promise) {
      error.textContent = "";
      return promise.then(load).catch(function (e) { fail(e); return load(); });
    }

    function row(account) {
      var tr = el("tr", { "data-account": account.login });
      if (account.disabled) tr.className = "disabled";
      tr.appendChild(el("td", {}, account.login));
      tr.appendChild(el("td", {}, account.name));
      var roleCell = el("td");
      var roleSelect = el("select", { "aria-label": "Role of " + account.login, "data-role": "" });
      state.roles.forEach(function (r) {
        var option = el("option", { value: r }, r);
        if (r === account.role) option.selected = true;
        roleSelect.appendChild(option);
      });
      roleSelect.addEventListener("change", function () {
        act(api.post(path(account.login, "role"), { role: roleSelect.value }));
      });
      roleCell.appendChild(roleSelect);
      tr.appendChild(roleCell);
      var skillsCell = el("td");
      var skillsInput = el("input", { type: "text", value: account.skills.join(", "), "aria-label": "Skills of " + account.login, "data-skills": "" });
      var save = el("button", { type: "button" }, "Save skills");
      save.addEventListener("click", function () {
        var skills = skillsInput.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        act(api.post(path(account.login, "skills"), { skills: skills }));
      });
      skillsCell.appendChild(skillsInput);
      skillsCell.appendChild(save);
      tr.appendChild(skillsCell);
      tr.appendChild(el("td", {}, account.disabled ? "disabled" : "active"));
      var actions = el("td", { className: "admin-actions" });
      var toggle = el("button", { type: "button", "data-toggle": "" }, account.disabled ? "Enable" : "Disable");
      toggle.addEventListener("click", function () {
        act(api.post(path(account.login, account.disabled ? "enable" : "disable")));
      });
      var reset = el("button", { type: "button", "data-reset": "" }, "Reset password");
      reset.addEventListener("click", function () {
        error.textContent = "";
        api.post(path(account.login, "reset-password"))
          .then(function (data) { showSecret(account.login, data.password); return load(); })
          .catch(fail);
      });
      actions.appendChild(toggle);
      actions.appendChild(reset);
      tr.appendChild(actions);
      return tr;
    }

    function render() {
      body.textContent = "";
      state.accounts.forEach(function (a) { body.appendChild(row(a)); });
      if (!role.options.length) state.roles.forEach(function (r) { role.appendChild(el("option", { value: r }, r)); });
      if (skillsBox.querySelectorAll("input").length === 0) {
        state.skills.forEach(function (s) {
          var label = el("label", { className: "admin-skill" });
          var box = el("input", { type: "checkbox", value: s, name: "skills" });
          label.appendChild(box);
          label.appendChild(document.createTextNode(" " + s.replace(/_/g, " ")));
          skillsBox.appendChild(label);
        });
      }
    }

    function load() {
      return api.get("/api/admin/accounts").then(function (data) {
        state.accounts = data.accounts;
        state.skills = data.skills;
        state.roles = data.roles;
        render();
      }).catch(fail);
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      error.textContent = "";
      var skills = Array.prototype.map.call(skillsBox.querySelectorAll("input:checked"), function (b) { return b.value; });
      api.post("/api/admin/accounts", {
        login: login.value.trim(), name: name.value.trim(), role: role.value,
        capacity: parseInt(capacity.value, 10), skills: skills,
      }).then(function (data) {
        showSecret(data.account.login, data.password);
        form.reset();
        return load();
      }).catch(fail);
    });

    load();
  }

  if (!document.querySelector('link[href="/static/accounts.css"]')) {
    var link = el("link", { rel: "stylesheet", href: "/static/accounts.css" });
    document.head.appendChild(link);
  }
  window.SupportConsole.registerView({ id: "accounts", title: "Accounts", roles: ["lead"], mount: mount });
})();
