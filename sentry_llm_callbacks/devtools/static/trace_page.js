/* The local trace page (sentry_llm_callbacks.devtools.trace_page): folding, the details panel,
   and the trace list's filter. Every value is untrusted: it reaches the page as text nodes only. */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
    return parent;
  }

  function copyButton(text, label) {
    var button = el("button", "slc-copy", "copy");
    button.type = "button";
    button.title = "Copy " + (label || "the value");
    button.addEventListener("click", function (event) {
      event.stopPropagation();
      copy(text).then(function () {
        button.textContent = "copied";
        setTimeout(function () { button.textContent = "copy"; }, 1200);
      });
    });
    return button;
  }

  function copy(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return Promise.resolve(legacyCopy(text));
  }

  function legacyCopy(text) {
    var area = el("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { area.remove(); }
  }

  function fmtMs(ms) {
    return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms";
  }

  /* ------------------------------------------------------------------ the trace */

  function tracePage(data) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.slc-row"));
    var spans = data.spans;
    var matching = rows.length === spans.length && rows.every(function (row, i) {
      return row.getAttribute("data-span-id") === spans[i].id;
    });
    if (!matching) return;
    var tree = folding(rows, spans);
    var picked = selection(rows, data);
    rows.forEach(function (row, i) {
      row.tabIndex = 0;
      var label = row.querySelector("td:first-child summary, td:first-child > div");
      if (label) label.insertBefore(tree.control(i), label.firstChild);
      row.addEventListener("click", function (event) {
        if (event.target.closest("summary")) event.preventDefault();
        if (!event.target.closest("a, button")) picked.select(i);
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.target.closest && event.target.closest("input, textarea")) return;
      var onRow = event.target.classList && event.target.classList.contains("slc-row");
      if (event.key === "Escape") picked.close();
      else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (picked.step(event.key === "ArrowDown" ? 1 : -1, tree.visible)) event.preventDefault();
      } else if (event.key === "Enter" && onRow) picked.select(rows.indexOf(event.target));
    });
    bind("slc-fold-all", function () { tree.setAll(function (span) { return span.depth >= 1; }); });
    bind("slc-unfold-all", function () { tree.setAll(function () { return false; }); });
    picked.fromAddress();
  }

  function bind(id, action) {
    var button = document.getElementById(id);
    if (button) button.addEventListener("click", action);
  }

  /* A fold control on each row with children; a folded row hides every row below it. */
  function folding(rows, spans) {
    var folded = spans.map(function () { return false; });
    var sizes = subtreeSizes(spans);

    function control(i) {
      if (!sizes[i]) return el("span", "slc-fold-spacer");
      var button = el("button", "slc-fold", "▾");
      button.type = "button";
      button.setAttribute("aria-expanded", "true");
      button.title = "Fold " + sizes[i] + " span" + (sizes[i] === 1 ? "" : "s") + " below";
      button.addEventListener("click", function (event) {
        event.preventDefault();
        event.stopPropagation();
        set(i, !folded[i]);
        layout();
      });
      return button;
    }

    function set(i, value) {
      if (!sizes[i] || folded[i] === value) return;
      folded[i] = value;
      var button = rows[i].querySelector(".slc-fold");
      button.textContent = value ? "▸" : "▾";
      button.setAttribute("aria-expanded", value ? "false" : "true");
      rows[i].classList.toggle("slc-folded", value);
      var badge = rows[i].querySelector(".slc-hidden-count");
      if (value && !badge) {
        var name = rows[i].querySelector(".slc-name");
        if (name) name.parentNode.insertBefore(el("span", "slc-hidden-count", "+" + sizes[i]), name.nextSibling);
      } else if (!value && badge) {
        badge.remove();
      }
    }

    function layout() {
      var limit = Infinity;
      for (var j = 0; j < rows.length; j++) {
        var depth = spans[j].depth;
        if (depth <= limit) limit = Infinity;
        var hidden = depth > limit;
        rows[j].style.display = hidden ? "none" : "";
        if (!hidden && folded[j]) limit = depth;
      }
    }

    return {
      control: control,
      visible: function (i) { return rows[i].style.display !== "none"; },
      setAll: function (wanted) {
        spans.forEach(function (span, i) { set(i, wanted(span)); });
        layout();
      }
    };
  }

  /* The selected row, shown in the details panel and kept in the address (#span-<id>). */
  function selection(rows, data) {
    var panel = document.getElementById("slc-panel");
    var selected = -1;

    function select(i) {
      if (selected >= 0) rows[selected].classList.remove("slc-selected");
      selected = i;
      rows[i].classList.add("slc-selected");
      renderPanel(panel, data.trace, data.spans[i], close);
      panel.hidden = false;
      if (history.replaceState) history.replaceState(null, "", "#span-" + data.spans[i].id);
    }

    function close() {
      if (selected < 0) return;
      rows[selected].classList.remove("slc-selected");
      selected = -1;
      panel.hidden = true;
      if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
    }

    function step(direction, visible) {
      if (selected < 0) return false;
      for (var j = selected + direction; j >= 0 && j < rows.length; j += direction) {
        if (visible(j)) { select(j); rows[j].focus(); return true; }
      }
      return false;
    }

    function fromAddress() {
      var wanted = /^#span-([0-9a-fA-F]+)$/.exec(location.hash);
      for (var k = 0; wanted && k < data.spans.length; k++) {
        if (data.spans[k].id === wanted[1]) { select(k); return; }
      }
    }

    return { select: select, close: close, step: step, fromAddress: fromAddress };
  }

  function subtreeSizes(spans) {
    var sizes = spans.map(function () { return 0; });
    var stack = [];
    spans.forEach(function (span, i) {
      while (stack.length && spans[stack[stack.length - 1]].depth >= span.depth) stack.pop();
      stack.forEach(function (ancestor) { sizes[ancestor] += 1; });
      stack.push(i);
    });
    return sizes;
  }

  /* ------------------------------------------------------------------ the details panel */

  function renderPanel(panel, trace, span, close) {
    var closeButton = el("button", "slc-close", "×");
    closeButton.type = "button";
    closeButton.title = "Close (Esc)";
    closeButton.addEventListener("click", close);
    var head = add(el("div", "slc-panel-head"), el("h2", "slc-panel-title", span.name), closeButton);

    var status = el("span", "slc-chip" + (span.error ? " slc-chip-error" : ""), span.error ? "error" : "ok");
    var meta = add(el("div", "slc-meta"), el("span", "slc-chip", span.kind), status,
      document.createTextNode((span.op ? span.op + " · " : "") + fmtMs(span.duration) + " · starts at +" + fmtMs(span.start)));

    var ids = add(el("div", "slc-ids"), document.createTextNode("trace "), el("code", null, trace.id),
      document.createTextNode(" "), copyButton(trace.id, "the trace id"));
    if (trace.link) {
      var link = el("a", "slc-sentry-link", "Open in Sentry ↗");
      link.href = trace.link;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      add(ids, document.createTextNode(" · "), link);
    }

    var parts = [head, meta, ids, errorBox(span.error)];
    parts.push(ioSection("Input", span.input), ioSection("Output", span.output));
    span.groups.forEach(function (group) { parts.push(kvSection(group[0], group[1])); });
    span.events.forEach(function (event) { parts.push(kvSection("Event: " + event[0], event[1])); });
    panel.replaceChildren.apply(panel, parts.filter(Boolean));
    panel.scrollTop = 0;
  }

  function errorBox(error) {
    if (!error) return null;
    var box = add(el("div", "slc-error-box"), el("b", "slc-error-type", error.type));
    if (error.message) add(box, document.createTextNode(": "), el("span", "slc-error-message", error.message));
    if (error.stack) {
      var details = el("details", "slc-stack-details");
      details.open = true;
      add(details, el("summary", null, "stack trace"), el("pre", "slc-stack", error.stack));
      add(box, details);
    }
    return box;
  }

  function ioSection(title, side) {
    if (!side) return null;
    var section = el("section", "slc-section slc-io slc-" + title.toLowerCase());
    var head = add(el("div", "slc-section-head"), el("span", null, title));
    var raw = el("div", "slc-raw");
    side.raw.forEach(function (item) {
      add(raw, el("div", "slc-raw-key", item[0] + " (" + item[1] + ")"), el("pre", "slc-pre", item[2]));
    });
    if (!side.messages) return add(section, head, raw);
    var talk = el("div", "slc-conversation");
    side.messages.forEach(function (message) { talk.appendChild(messageBox(message)); });
    raw.hidden = true;
    var toggle = el("button", "slc-toggle", "raw JSON");
    toggle.type = "button";
    toggle.addEventListener("click", function () {
      var showRaw = raw.hidden;
      raw.hidden = !showRaw;
      talk.hidden = showRaw;
      toggle.textContent = showRaw ? "conversation" : "raw JSON";
      toggle.setAttribute("aria-pressed", showRaw ? "true" : "false");
    });
    return add(section, add(head, toggle), talk, raw);
  }

  function messageBox(message) {
    var role = String(message.role);
    var box = el("div", "slc-msg slc-msg-" + role.replace(/[^a-z_]/gi, ""));
    box.setAttribute("data-role", role);
    var label = el("div", "slc-role", role);
    if (message.finish) add(label, el("span", "slc-finish", "finish: " + message.finish));
    add(box, label);
    message.parts.forEach(function (part) {
      if (part.kind === "tool_call" || part.kind === "tool_result") {
        var call = part.kind === "tool_call";
        var headText = (call ? "tool call " : "tool result ") + (part.name || "") + (part.id ? "  [" + part.id + "]" : "");
        add(box, add(el("div", "slc-part slc-part-" + part.kind), el("div", "slc-tool-head", headText.trim()),
          el("pre", "slc-pre", part.text)));
      } else if (part.kind === "other") {
        add(box, el("pre", "slc-pre slc-part-other", part.text));
      } else {
        add(box, el("div", "slc-part slc-part-" + part.kind, part.text));
      }
    });
    return box;
  }

  function kvSection(title, rows) {
    var section = el("section", "slc-section slc-group");
    section.setAttribute("data-group", title);
    var table = el("table", "slc-kv");
    rows.forEach(function (row) {
      var value = add(el("td"), copyButton(row[1], row[0]), el("span", "slc-val", row[1]));
      table.appendChild(add(el("tr"), el("th", null, row[0]), value));
    });
    return add(section, add(el("div", "slc-section-head"), el("span", null, title)), table);
  }

  /* ------------------------------------------------------------------ the list of traces */

  function listPage(input) {
    var count = document.getElementById("slc-filter-count");

    function apply() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var rows = document.querySelectorAll("tr.slc-trace-row");
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.getAttribute("data-search") || "";
        var match = terms.every(function (term) { return text.indexOf(term) >= 0; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      count.textContent = terms.length ? shown + " of " + rows.length + " traces" : "";
      var none = document.getElementById("slc-no-match");
      if (none) none.hidden = !(terms.length && rows.length && !shown);
    }

    var shownHtml = document.getElementById("slc-traces").innerHTML;

    function poll() {
      fetch(location.pathname + location.search, { cache: "no-store" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (text) {
          if (text === null) return;
          var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("slc-traces");
          var current = document.getElementById("slc-traces");
          if (fresh && current && fresh.innerHTML !== shownHtml) {
            shownHtml = fresh.innerHTML;
            current.replaceWith(document.importNode(fresh, true));
            apply();
          }
        })
        .catch(function () {})
        .then(function () { setTimeout(poll, 2000); });
    }

    input.addEventListener("input", apply);
    apply();
    setTimeout(poll, 2000);
  }

  var island = document.getElementById("slc-data");
  if (island) tracePage(JSON.parse(island.textContent));
  var filter = document.getElementById("slc-filter");
  if (filter) listPage(filter);
})();
