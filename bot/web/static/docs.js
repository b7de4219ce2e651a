/* Renders the OpenAPI document as a readable list of endpoints (text only, no HTML from the spec). */
(function () {
  "use strict";
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  fetch("/api/openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    document.getElementById("description").appendChild(el("pre", "", doc.info.description || ""));
    var box = document.getElementById("paths");
    Object.keys(doc.paths).forEach(function (path) {
      var item = doc.paths[path];
      ["get", "post", "put", "delete"].forEach(function (method) {
        var op = item[method];
        if (!op) return;
        var section = el("section", "op");
        var head = el("h2");
        head.appendChild(el("span", "method " + method, method.toUpperCase()));
        head.appendChild(el("code", "", " " + path));
        section.appendChild(head);
        section.appendChild(el("p", "", op.summary || ""));
        if (op.description) section.appendChild(el("p", "muted", op.description));
        if (op.security) section.appendChild(el("p", "muted", "Auth: " + op.security.map(function (s) { return Object.keys(s)[0]; }).join(", ")));
        var body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
        if (body) section.appendChild(el("pre", "", "Body: " + JSON.stringify(body.schema, null, 1)));
        section.appendChild(el("p", "muted", "Responses: " + Object.keys(op.responses || {}).join(", ")));
        box.appendChild(section);
      });
    });
  });
})();
