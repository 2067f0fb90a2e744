/*
 * Lead console: the NLU inbox (filter, group, label in bulk or one message at a time, mark entities)
 * and the model registry (train, follow the job, compare with the baseline, activate or roll back),
 * with the saved conversation tests and their last result per model version.
 * Views are hash routes (#inbox, #models). Everything that comes from shoppers or the server is
 * rendered with textContent / createElement; state changes are JSON POSTs with the CSRF header.
 */
(function () {
  "use strict";

  var NEW_INTENT = /^[a-z][a-z0-9_]{1,47}$/;
  var PAGE_SIZE = 50;
  var DETAIL_BATCH = 10;
  var POLL_MS = 2000;
  var REASONS = {
    low_confidence: "Low confidence",
    fallback: "Fallback",
    escalated: "Before a handoff",
    sampled: "Sampled"
  };
  var STATUSES = { open: "Open", labelled: "Labelled", out_of_scope: "Out of scope", ignored: "Ignored" };
  var STATES = { queued: "Queued", training: "Training", evaluating: "Evaluating", ready: "Ready", failed: "Failed" };
  var ACTIVATION_KINDS = { activate: "Activated", override: "Activated over the gate", rollback: "Rolled back", baseline: "Baseline" };

  var $ = ConsoleKit.$, el = ConsoleKit.el, svg = ConsoleKit.svg, clear = ConsoleKit.clear;
  var api = ConsoleKit.client({
    loginUrl: "/agent/login?next=" + encodeURIComponent("/admin"),
    forbidden: "Only support leads can do that (or the page is out of date: reload it)."
  });

  var me = null;
  var intents = [];       // known intents (domain plus lead-created), sorted
  var entityNames = [];   // domain entity names
  var groups = [];        // the groups on the current page
  var selected = {};      // group_key -> true
  var page = 1;
  var totalGroups = 0;
  var openGroup = null;   // the group shown in the detail pane
  var shownIds = 0;       // how many of its messages are shown
  var cards = {};         // message id -> card state {message, entities, pending, nodes}
  var listSeq = 0;        // drops answers of superseded list requests
  var models = null;      // last GET /admin/api/models
  var modelDetail = null; // last GET /admin/api/models/{v}
  var pollTimer = null;
  var lastRunning = null;

  function testid(node, id) { node.setAttribute("data-testid", id); return node; }

  function button(text, id, cls) {
    var b = el("button", cls || null, text);
    b.type = "button";
    if (id) testid(b, id);
    return b;
  }

  function when(iso) {
    if (!iso) return "";
    var s = String(iso);
    if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s)) s += "Z";  // naive UTC from the server
    var t = Date.parse(s);
    if (!isFinite(t)) return String(iso);
    return new Date(t).toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function num(x, digits) { return typeof x === "number" && isFinite(x) ? x.toFixed(digits === undefined ? 3 : digits) : "\u2014"; }

  function signed(x, digits) {
    if (typeof x !== "number" || !isFinite(x)) return "";
    var d = digits === undefined ? 3 : digits;
    var r = Number(x.toFixed(d));
    return (r > 0 ? "+" : r < 0 ? "\u2212" : "\u00b1") + Math.abs(r).toFixed(d);
  }

  function reasonLabel(r) { return REASONS[r] || String(r || "").replace(/_/g, " "); }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : (many || one + "s")); }

  // ------------------------------------------------------------------ alerts

  function showError(err) {
    var text = err && err.message ? err.message : String(err || "Something went wrong.");
    var reasons = err && err.detail && Array.isArray(err.detail.reasons) ? err.detail.reasons : [];
    if (reasons.length) text += " " + reasons.join("; ") + ".";
    $("alert-text").textContent = text;
    $("alert").hidden = false;
  }

  function clearError() { $("alert").hidden = true; $("alert-text").textContent = ""; }

  function say(text) {
    // Re-set so screen readers announce the same text twice in a row.
    $("status").textContent = "";
    window.setTimeout(function () { $("status").textContent = text; }, 30);
  }

  $("alert-close").addEventListener("click", clearError);

  // ------------------------------------------------------------------ intent picker

  // A search box that filters a list box of intents; Enter in the box picks the first match,
  // arrow down moves into the list. Used in the bulk bar and on every message card.
  function picker(filterInput, select, onEnter) {
    function refresh(keep) {
      var want = keep !== undefined ? keep : select.value;
      var q = filterInput.value.trim().toLowerCase();
      clear(select);
      var matches = intents.filter(function (name) { return !q || name.toLowerCase().indexOf(q) >= 0; });
      matches.forEach(function (name) {
        var o = el("option", null, name);
        o.value = name;
        select.appendChild(o);
      });
      if (want && matches.indexOf(want) >= 0) select.value = want;
      else if (q && matches.length) select.value = matches[0];
      else select.selectedIndex = -1;
    }
    filterInput.addEventListener("input", function () { refresh(); });
    filterInput.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown" && select.options.length) {
        ev.preventDefault();
        if (select.selectedIndex < 0) select.selectedIndex = 0;
        select.focus();
      } else if (ev.key === "Enter") {
        ev.preventDefault();
        if (onEnter && select.value) onEnter();
      }
    });
    select.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); if (onEnter && select.value) onEnter(); }
    });
    refresh();
    return { refresh: refresh, value: function () { return select.value; } };
  }

  var bulkPicker = picker($("bulk-intent-filter"), $("bulk-intent"), function () { $("bulk-apply-intent").click(); });

  function setIntents(list) {
    var fresh = (list || []).slice().sort();
    if (fresh.join("\n") === intents.join("\n")) return;
    intents = fresh;
    var filter = $("filter-intent");
    var keep = filter.value;
    while (filter.options.length > 1) filter.remove(1);
    intents.forEach(function (name) {
      var o = el("option", null, name);
      o.value = name;
      filter.appendChild(o);
    });
    filter.value = intents.indexOf(keep) >= 0 ? keep : "";
    bulkPicker.refresh();
    Object.keys(cards).forEach(function (id) { if (cards[id].picker) cards[id].picker.refresh(); });
  }

  // ------------------------------------------------------------------ inbox: list

  function filterParams() {
    var p = new URLSearchParams();
    var q = $("filter-q").value.trim();
    if (q) p.set("q", q);
    if ($("filter-intent").value) p.set("intent", $("filter-intent").value);
    if ($("filter-reason").value) p.set("reason", $("filter-reason").value);
    p.set("status", $("filter-status").value || "open");
    var lo = $("filter-min-conf").value.trim();
    var hi = $("filter-max-conf").value.trim();
    if (lo !== "") p.set("min_conf", lo);
    if (hi !== "") p.set("max_conf", hi);
    if ($("filter-since").value) p.set("since", $("filter-since").value);
    if ($("filter-until").value) p.set("until", $("filter-until").value);
    p.set("page", String(page));
    p.set("page_size", String(PAGE_SIZE));
    return p;
  }

  function checkFilters() {
    var lo = $("filter-min-conf").value.trim();
    var hi = $("filter-max-conf").value.trim();
    function bad(v) { var x = Number(v); return v !== "" && (!isFinite(x) || x < 0 || x > 1); }
    if (bad(lo) || bad(hi)) return "Confidence is a number from 0 to 1.";
    if (lo !== "" && hi !== "" && Number(lo) > Number(hi)) return "The lowest confidence is above the highest.";
    var since = $("filter-since").value, until = $("filter-until").value;
    if (since && until && since > until) return "The start date is after the end date.";
    return "";
  }

  function loadGroups() {
    var problem = checkFilters();
    if (problem) { showError({ message: problem }); return Promise.resolve(); }
    var seq = ++listSeq;
    $("groups").setAttribute("aria-busy", "true");
    return api("GET", "/admin/api/inbox?" + filterParams().toString()).then(function (data) {
      if (seq !== listSeq) return;
      setIntents(data.intents || []);
      if (data.entities) entityNames = data.entities.slice();
      groups = data.groups || [];
      totalGroups = data.total_groups || 0;
      if (data.ingest_error) showError({ message: data.ingest_error + " The list shows what was read before." });
      var keys = {};
      groups.forEach(function (g) { keys[g.group_key] = true; });
      Object.keys(selected).forEach(function (k) { if (!keys[k]) delete selected[k]; });
      renderGroups();
    }).catch(showError).then(function () {
      if (seq === listSeq) $("groups").removeAttribute("aria-busy");
    });
  }

  function renderGroups() {
    var list = $("groups");
    var focusedKey = document.activeElement && document.activeElement.getAttribute("data-group-key");
    var focusedCheck = document.activeElement && document.activeElement.classList.contains("group-check");
    clear(list);
    groups.forEach(function (g) {
      var li = el("li", "group-row");
      testid(li, "group-row");
      li.setAttribute("data-group-key", g.group_key);
      if (openGroup && openGroup.group_key === g.group_key) li.classList.add("selected");

      var check = document.createElement("input");
      check.type = "checkbox";
      check.className = "group-check";
      check.checked = !!selected[g.group_key];
      check.setAttribute("data-group-key", g.group_key);
      check.setAttribute("aria-label", "Select \u201c" + g.text + "\u201d");
      testid(check, "group-check");
      check.addEventListener("change", function () {
        if (check.checked) selected[g.group_key] = true; else delete selected[g.group_key];
        renderSelection();
      });
      li.appendChild(check);

      var open = el("button", "group-open");
      open.type = "button";
      open.setAttribute("data-group-key", g.group_key);
      testid(open, "group-open");
      var top = el("span", "group-top");
      top.appendChild(testid(el("span", "group-text", "\u201c" + g.text + "\u201d"), "group-text"));
      var badge = testid(el("span", "count-badge", "\u00d7" + g.count), "group-count");
      badge.setAttribute("title", plural(g.count, "message"));
      top.appendChild(badge);
      open.appendChild(top);

      var others = (g.texts || []).filter(function (t) { return t !== g.text; });
      if (others.length) open.appendChild(el("span", "group-variants", "also: " + others.map(function (t) { return "\u201c" + t + "\u201d"; }).join(", ")));

      var tags = el("span", "tags");
      var pred = el("span", "tag intent", (g.intent || "no intent") + " " + num(g.confidence, 2));
      pred.setAttribute("title", "Predicted intent and the lowest confidence in the group");
      testid(pred, "group-intent");
      tags.appendChild(pred);
      (g.reasons || []).forEach(function (r) { tags.appendChild(el("span", "tag reason-" + r, reasonLabel(r))); });
      if (g.status && g.status !== "open") {
        var label = STATUSES[g.status] || g.status;
        if (g.status === "labelled" && g.label_intent) label += ": " + g.label_intent;
        if (g.label_target === "test") label += " (test set)";
        tags.appendChild(testid(el("span", "tag status-" + g.status, label), "group-status"));
      }
      tags.appendChild(el("span", "tag time", when(g.last_at)));
      open.appendChild(tags);
      open.setAttribute("aria-label", "\u201c" + g.text + "\u201d, " + plural(g.count, "message") + ", predicted " +
        (g.intent || "nothing") + " at " + num(g.confidence, 2) + ", " + (g.reasons || []).map(reasonLabel).join(", ") +
        (g.status && g.status !== "open" ? ", " + (STATUSES[g.status] || g.status) : ""));
      open.addEventListener("click", function () { showGroup(g, true); });
      li.appendChild(open);
      list.appendChild(li);
    });
    $("groups-empty").hidden = groups.length > 0;
    $("groups-total").textContent = String(totalGroups);
    var pages = Math.max(1, Math.ceil(totalGroups / PAGE_SIZE));
    $("page-info").textContent = "Page " + page + " of " + pages + " \u00b7 " + plural(totalGroups, "group");
    $("page-prev").disabled = page <= 1;
    $("page-next").disabled = page >= pages;
    renderSelection();
    if (focusedKey) {
      var sel = (focusedCheck ? ".group-check" : ".group-open") + '[data-group-key="' + cssEscape(focusedKey) + '"]';
      var again = list.querySelector(sel);
      if (again) again.focus();
    }
  }

  function cssEscape(s) { return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, "\\$&"); }

  function selectedKeys() { return Object.keys(selected); }

  function renderSelection() {
    var n = selectedKeys().length;
    var messages = 0;
    groups.forEach(function (g) { if (selected[g.group_key]) messages += g.count; });
    $("selected-count").textContent = n ? plural(n, "group") + " selected (" + plural(messages, "message") + ")" : "No groups selected";
    var all = $("select-all");
    all.checked = groups.length > 0 && n === groups.length;
    all.indeterminate = n > 0 && n < groups.length;
    ["bulk-confirm", "bulk-out-of-scope", "bulk-ignore", "bulk-reopen", "bulk-apply-intent", "bulk-new-intent"].forEach(function (id) {
      $(id).disabled = n === 0;
    });
  }

  $("select-all").addEventListener("change", function () {
    var on = $("select-all").checked;
    selected = {};
    if (on) groups.forEach(function (g) { selected[g.group_key] = true; });
    Array.prototype.forEach.call(document.querySelectorAll(".group-check"), function (c) { c.checked = on; });
    renderSelection();
  });

  $("filters").addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearError();
    page = 1;
    loadGroups();
  });
  ["filter-intent", "filter-reason", "filter-status", "filter-since", "filter-until"].forEach(function (id) {
    $(id).addEventListener("change", function () { page = 1; loadGroups(); });
  });
  $("filter-reset").addEventListener("click", function () {
    $("filters").reset();
    $("filter-status").value = "open";
    page = 1;
    clearError();
    loadGroups();
  });
  $("page-prev").addEventListener("click", function () { if (page > 1) { page--; loadGroups(); } });
  $("page-next").addEventListener("click", function () { page++; loadGroups(); });

  // Arrow keys move between groups; Enter/Space open (they are buttons).
  $("groups").addEventListener("keydown", function (ev) {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    var t = ev.target;
    if (!t.classList || !t.classList.contains("group-open")) return;
    var buttons = Array.prototype.slice.call($("groups").querySelectorAll(".group-open"));
    var i = buttons.indexOf(t);
    var next = ev.key === "ArrowDown" ? Math.min(buttons.length - 1, i + 1) : Math.max(0, i - 1);
    buttons[next].focus();
    ev.preventDefault();
  });

  // ------------------------------------------------------------------ inbox: labelling

  function label(body, done) {
    clearError();
    return api("POST", "/admin/api/inbox/label", body).then(function (data) {
      if (done) done(data);
      return data;
    });
  }

  function target() { return $("bulk-target").value === "test" ? "test" : "train"; }

  function afterBulk(text) {
    say(text);
    selected = {};
    return loadGroups().then(refreshOpenGroup);
  }

  function bulk(action, extra, describe) {
    var keys = selectedKeys();
    if (!keys.length) { showError({ message: "Select at least one group first." }); return; }
    var body = { group_keys: keys, action: action };
    if (action === "intent" || action === "out_of_scope") body.target = target();
    Object.keys(extra || {}).forEach(function (k) { body[k] = extra[k]; });
    label(body).then(function (data) {
      return afterBulk(plural(data.updated || 0, "message") + " " + describe + ".");
    }).catch(showError);
  }

  $("bulk-apply-intent").addEventListener("click", function () {
    var intent = bulkPicker.value();
    if (!intent) { showError({ message: "Pick an intent from the list first (type to search)." }); $("bulk-intent-filter").focus(); return; }
    bulk("intent", { intent: intent }, "labelled " + intent);
  });

  $("bulk-new-intent").addEventListener("click", function () {
    var name = $("bulk-new-intent-name").value.trim();
    if (!NEW_INTENT.test(name)) {
      showError({ message: "An intent name is 2 to 48 characters: lower-case letters, digits and _, starting with a letter." });
      $("bulk-new-intent-name").focus();
      return;
    }
    var known = intents.indexOf(name) >= 0;
    var extra = { intent: name };
    if (!known) extra.new_intent = true;
    bulk("intent", extra, "labelled " + name + (known ? "" : " (new intent)"));
    $("bulk-new-intent-name").value = "";
  });
  $("bulk-new-intent-name").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { ev.preventDefault(); $("bulk-new-intent").click(); }
  });

  $("bulk-out-of-scope").addEventListener("click", function () { bulk("out_of_scope", {}, "marked out of scope"); });
  $("bulk-ignore").addEventListener("click", function () { bulk("ignore", {}, "ignored"); });
  $("bulk-reopen").addEventListener("click", function () { bulk("reopen", {}, "reopened"); });

  // Confirm: each selected group gets the intent the assistant predicted for it.
  $("bulk-confirm").addEventListener("click", function () {
    var byIntent = {};
    var missing = 0;
    groups.forEach(function (g) {
      if (!selected[g.group_key]) return;
      if (!g.intent) { missing++; return; }
      (byIntent[g.intent] = byIntent[g.intent] || []).push(g.group_key);
    });
    var names = Object.keys(byIntent);
    if (!names.length) { showError({ message: "None of the selected groups has a predicted intent to confirm." }); return; }
    var updated = 0;
    var chain = Promise.resolve();
    names.forEach(function (name) {
      chain = chain.then(function () {
        return label({ group_keys: byIntent[name], action: "intent", intent: name, target: target() })
          .then(function (data) { updated += data.updated || 0; });
      });
    });
    chain.then(function () {
      return afterBulk("Confirmed the predicted intent of " + plural(updated, "message") +
        (missing ? "; " + plural(missing, "group") + " had no prediction and kept their status" : "") + ".");
    }).catch(function (err) { showError(err); loadGroups(); });
  });

  // ------------------------------------------------------------------ inbox: detail pane

  function showGroup(g, focus) {
    openGroup = g;
    shownIds = 0;
    cards = {};
    Array.prototype.forEach.call(document.querySelectorAll(".group-row"), function (row) {
      row.classList.toggle("selected", row.getAttribute("data-group-key") === g.group_key);
    });
    $("detail-placeholder").hidden = true;
    $("detail-body").hidden = false;
    $("detail-title").textContent = "\u201c" + g.text + "\u201d";
    $("detail-meta").textContent = plural(g.count, "message") + " \u00b7 predicted " + (g.intent || "nothing") +
      " (lowest confidence " + num(g.confidence, 2) + ") \u00b7 " + (g.reasons || []).map(reasonLabel).join(", ") +
      " \u00b7 " + when(g.first_at) + (g.first_at !== g.last_at ? " to " + when(g.last_at) : "");
    clear($("detail-messages"));
    if (focus) $("detail").focus();
    return showMore();
  }

  function showMore() {
    if (!openGroup) return Promise.resolve();
    var ids = (openGroup.message_ids || []).slice(shownIds, shownIds + DETAIL_BATCH);
    shownIds += ids.length;
    $("detail-more").hidden = shownIds >= (openGroup.message_ids || []).length;
    var group = openGroup;
    return Promise.all(ids.map(function (id) {
      return api("GET", "/admin/api/inbox/messages/" + encodeURIComponent(id)).catch(function (err) { return { error: err, id: id }; });
    })).then(function (answers) {
      if (openGroup !== group) return;
      answers.forEach(function (a) {
        if (a.error) { showError(a.error); return; }
        $("detail-messages").appendChild(messageCard(a));
      });
    });
  }

  $("detail-more").addEventListener("click", function () { showMore(); });

  $("detail").addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape" || !openGroup) return;
    var back = $("groups").querySelector('.group-open[data-group-key="' + cssEscape(openGroup.group_key) + '"]');
    if (back) back.focus();
  });

  // After a label: reread the open group's messages (status, labels, history) where they are shown.
  function refreshOpenGroup() {
    var ids = Object.keys(cards);
    return Promise.all(ids.map(function (id) {
      return api("GET", "/admin/api/inbox/messages/" + encodeURIComponent(id)).then(function (data) {
        var card = cards[id];
        if (!card) return;
        var fresh = messageCard(data);
        card.node.parentNode.replaceChild(fresh, card.node);
      }).catch(function () { /* shown as it was */ });
    }));
  }

  function unwrap(data) {
    // {"message": {...}, "history": [...], "context": {...}} or the message at the top level
    var m = data && data.message && typeof data.message === "object" ? data.message : data;
    return { message: m, history: data.history || m.history || [], context: data.context || m.context || {} };
  }

  function contextList(items, cls) {
    var ol = el("ol", "context " + cls);
    (items || []).forEach(function (c) {
      var who = c.who === "bot" ? "bot" : "shopper";
      var li = el("li", "ctx " + who);
      li.appendChild(el("span", "ctx-who", who === "bot" ? "Assistant" : "Shopper"));
      li.appendChild(document.createTextNode(c.text || ""));
      ol.appendChild(li);
    });
    return ol;
  }

  function validEntity(text, e) {
    return e && typeof e.start === "number" && typeof e.end === "number" && e.start >= 0 && e.end > e.start &&
      e.end <= text.length && typeof e.entity === "string" && e.entity;
  }

  function startingEntities(m) {
    var text = m.text || "";
    var source = m.label_entities && m.label_entities.length ? m.label_entities :
      m.status === "open" ? (m.entities || []) : [];
    var out = [];
    source.forEach(function (e) {
      if (!validEntity(text, e)) return;
      if (entityNames.length && entityNames.indexOf(e.entity) < 0) return;
      if (out.some(function (o) { return o.start < e.end && e.start < o.end; })) return;
      out.push({ start: e.start, end: e.end, entity: e.entity, value: text.slice(e.start, e.end) });
    });
    return out.sort(function (a, b) { return a.start - b.start; });
  }

  function renderMarked(node, text, entities) {
    clear(node);
    var at = 0;
    entities.forEach(function (e) {
      if (e.start > at) node.appendChild(document.createTextNode(text.slice(at, e.start)));
      var mark = el("mark", "ent", text.slice(e.start, e.end));
      mark.setAttribute("data-entity", e.entity);
      mark.setAttribute("title", e.entity);
      testid(mark, "entity-mark-" + e.entity);
      node.appendChild(mark);
      at = e.end;
    });
    if (at < text.length) node.appendChild(document.createTextNode(text.slice(at)));
  }

  function messageCard(data) {
    var parts = unwrap(data);
    var m = parts.message;
    var text = m.text || "";
    var li = el("li", "msg-card");
    testid(li, "message-card");
    li.setAttribute("data-message-id", String(m.id));
    var card = { message: m, entities: startingEntities(m), pending: null, node: li };
    cards[m.id] = card;

    li.appendChild(contextList(parts.context.before, "before"));

    var main = el("div", "msg-main");
    var head = el("div", "msg-head");
    head.appendChild(el("span", "ctx-who", "Shopper"));
    head.appendChild(el("span", "muted", when(m.timestamp)));
    var tags = el("span", "tags");
    tags.appendChild(el("span", "tag intent", (m.intent || "no intent") + " " + num(m.confidence, 2)));
    (m.reasons || []).forEach(function (r) { tags.appendChild(el("span", "tag reason-" + r, reasonLabel(r))); });
    var st = STATUSES[m.status] || m.status || "";
    if (m.status === "labelled" && m.label_intent) st += ": " + m.label_intent;
    if (m.status !== "open" && m.label_target === "test") st += " (test set)";
    tags.appendChild(testid(el("span", "tag status-" + m.status, st), "message-status"));
    head.appendChild(tags);
    main.appendChild(head);

    var textNode = el("p", "msg-text");
    textNode.setAttribute("data-message-id", String(m.id));
    textNode.setAttribute("aria-label", "Message text; select words in it to mark an entity");
    testid(textNode, "message-text");
    renderMarked(textNode, text, card.entities);
    main.appendChild(textNode);
    li.appendChild(main);

    li.appendChild(contextList(parts.context.after, "after"));

    // Entities
    var ents = el("div", "ents");
    ents.appendChild(el("h4", null, "Entities"));
    var entList = el("ul", "ent-list");
    testid(entList, "entity-list");
    ents.appendChild(entList);

    var markRow = el("div", "mark-row");
    var tId = "ent-text-" + m.id, eId = "ent-type-" + m.id;
    var tLabel = el("label", "small", "Text to mark (select it above, or type it)");
    tLabel.htmlFor = tId;
    var textInput = document.createElement("input");
    textInput.type = "text";
    textInput.id = tId;
    textInput.autocomplete = "off";
    testid(textInput, "entity-text");
    textInput.addEventListener("input", function () { card.pending = null; });
    var eLabel = el("label", "small", "Entity");
    eLabel.htmlFor = eId;
    var typeSelect = document.createElement("select");
    typeSelect.id = eId;
    testid(typeSelect, "entity-type");
    var none = el("option", null, "Pick an entity\u2026");
    none.value = "";
    typeSelect.appendChild(none);
    entityNames.forEach(function (name) {
      var o = el("option", null, name);
      o.value = name;
      typeSelect.appendChild(o);
    });
    var markBtn = button("Mark", "entity-mark");
    var f1 = el("span", "field");
    f1.appendChild(tLabel); f1.appendChild(textInput);
    var f2 = el("span", "field");
    f2.appendChild(eLabel); f2.appendChild(typeSelect);
    markRow.appendChild(f1); markRow.appendChild(f2); markRow.appendChild(markBtn);
    ents.appendChild(markRow);
    li.appendChild(ents);

    function renderEntities() {
      renderMarked(textNode, text, card.entities);
      clear(entList);
      if (!card.entities.length) entList.appendChild(el("li", "muted", "None marked."));
      card.entities.forEach(function (e, i) {
        var item = el("li", "ent-item");
        testid(item, "entity-item");
        item.appendChild(el("mark", "ent", e.value));
        item.appendChild(document.createTextNode(" \u2192 " + e.entity + " "));
        var rm = button("Remove", "entity-remove", "link");
        rm.setAttribute("aria-label", "Remove " + e.entity + " \u201c" + e.value + "\u201d");
        rm.addEventListener("click", function () {
          card.entities.splice(i, 1);
          renderEntities();
          say("Removed the " + e.entity + " mark. Save the label to keep the change.");
        });
        item.appendChild(rm);
        entList.appendChild(item);
      });
    }
    card.renderEntities = renderEntities;
    card.textInput = textInput;
    card.textNode = textNode;
    renderEntities();

    function mark() {
      clearError();
      var entity = typeSelect.value;
      if (!entity) { showError({ message: "Pick the entity type to mark." }); typeSelect.focus(); return; }
      var span = null;
      var wanted = textInput.value;
      if (card.pending && text.slice(card.pending.start, card.pending.end) === wanted) {
        span = card.pending;
      } else {
        var w = wanted.trim();
        if (!w) { showError({ message: "Select the words in the message (or type them) first." }); textInput.focus(); return; }
        var i = text.toLowerCase().indexOf(w.toLowerCase());
        if (i < 0) { showError({ message: "\u201c" + w + "\u201d is not in this message." }); textInput.focus(); return; }
        span = { start: i, end: i + w.length };
      }
      card.entities = card.entities.filter(function (e) { return e.end <= span.start || e.start >= span.end; });
      card.entities.push({ start: span.start, end: span.end, entity: entity, value: text.slice(span.start, span.end) });
      card.entities.sort(function (a, b) { return a.start - b.start; });
      card.pending = null;
      textInput.value = "";
      renderEntities();
      say("Marked \u201c" + text.slice(span.start, span.end) + "\u201d as " + entity + ". Save the label to keep it.");
    }
    markBtn.addEventListener("click", mark);
    textInput.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); mark(); } });

    // Intent, target, actions
    var form = el("div", "label-form");
    var pId = "msg-intent-filter-" + m.id, sId = "msg-intent-" + m.id, nId = "msg-new-" + m.id, gId = "msg-target-" + m.id;
    var pickBox = el("div", "picker");
    var pLabel = el("label", null, "Intent");
    pLabel.htmlFor = pId;
    var pFilter = document.createElement("input");
    pFilter.type = "search";
    pFilter.id = pId;
    pFilter.autocomplete = "off";
    pFilter.placeholder = "Type to search intents";
    testid(pFilter, "message-intent-filter");
    var pSelect = document.createElement("select");
    pSelect.id = sId;
    pSelect.size = 4;
    pSelect.setAttribute("aria-label", "Intents");
    testid(pSelect, "message-intent");
    pickBox.appendChild(pLabel); pickBox.appendChild(pFilter); pickBox.appendChild(pSelect);
    form.appendChild(pickBox);

    var side = el("div", "label-side");
    var nLabel = el("label", null, "Or a new intent");
    nLabel.htmlFor = nId;
    var nInput = document.createElement("input");
    nInput.type = "text";
    nInput.id = nId;
    nInput.maxLength = 48;
    nInput.autocomplete = "off";
    nInput.spellcheck = false;
    nInput.placeholder = "new_intent_name";
    testid(nInput, "message-new-intent-name");
    var gLabel = el("label", null, "Use for");
    gLabel.htmlFor = gId;
    var gSelect = document.createElement("select");
    gSelect.id = gId;
    testid(gSelect, "message-target");
    [["train", "Training"], ["test", "Test set"]].forEach(function (o) {
      var opt = el("option", null, o[1]);
      opt.value = o[0];
      gSelect.appendChild(opt);
    });
    gSelect.value = m.label_target === "test" ? "test" : "train";
    side.appendChild(nLabel); side.appendChild(nInput); side.appendChild(gLabel); side.appendChild(gSelect);
    form.appendChild(side);
    li.appendChild(form);

    var pick = picker(pFilter, pSelect, function () { save(); });
    pick.refresh(m.label_intent || m.intent || "");
    card.picker = pick;

    var actions = el("div", "msg-actions");
    var saveBtn = button("Save label", "message-save", "primary");
    var oosBtn = button("Out of scope", "message-out-of-scope");
    var ignBtn = button("Ignore", "message-ignore");
    var reBtn = button("Reopen", "message-reopen");
    reBtn.disabled = m.status === "open";
    actions.appendChild(saveBtn); actions.appendChild(oosBtn); actions.appendChild(ignBtn); actions.appendChild(reBtn);
    li.appendChild(actions);

    function one(body, what) {
      body.message_ids = [m.id];
      if (body.action === "intent" || body.action === "out_of_scope") body.target = gSelect.value === "test" ? "test" : "train";
      label(body).then(function () {
        say("Message " + what + ".");
        return reloadCard();
      }).then(function () { return loadGroups(); }).catch(showError);
    }

    function save() {
      var fresh = nInput.value.trim();
      var intent = fresh || pick.value();
      if (!intent) { showError({ message: "Pick an intent (type to search) or give a new one." }); pFilter.focus(); return; }
      if (fresh && !NEW_INTENT.test(fresh)) {
        showError({ message: "An intent name is 2 to 48 characters: lower-case letters, digits and _, starting with a letter." });
        nInput.focus();
        return;
      }
      var body = {
        action: "intent", intent: intent,
        entities: card.entities.map(function (e) { return { start: e.start, end: e.end, entity: e.entity, value: e.value }; })
      };
      if (intents.indexOf(intent) < 0) body.new_intent = true;
      one(body, "labelled " + intent + (body.entities.length ? " with " + plural(body.entities.length, "entity", "entities") : ""));
    }
    saveBtn.addEventListener("click", save);
    nInput.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); save(); } });
    oosBtn.addEventListener("click", function () { one({ action: "out_of_scope" }, "marked out of scope"); });
    ignBtn.addEventListener("click", function () { one({ action: "ignore" }, "ignored"); });
    reBtn.addEventListener("click", function () { one({ action: "reopen" }, "reopened"); });
    if (m.sender_id) {  // the whole conversation as a saved conversation test
      var testBtn = button("Save as test", "message-save-test");
      actions.appendChild(testBtn);
      testBtn.addEventListener("click", function () {
        var name = window.prompt("Name of the conversation test:", "");
        if (name === null || !name.trim()) return;
        clearError();
        api("POST", "/admin/api/conversation-tests", { conversation_id: m.sender_id, name: name.trim(), origin: "nlu-inbox" })
          .then(function (saved) { say("Saved the conversation as test \u201c" + saved.name + "\u201d (" + saved.turns.length + (saved.turns.length === 1 ? " turn)." : " turns).")); })
          .catch(showError);
      });
    }

    function reloadCard() {
      return api("GET", "/admin/api/inbox/messages/" + encodeURIComponent(m.id)).then(function (fresh) {
        var node = messageCard(fresh);
        if (li.parentNode) li.parentNode.replaceChild(node, li);
        node.setAttribute("tabindex", "-1");
        node.focus();
      });
    }

    // History
    var hist = el("div", "history");
    hist.appendChild(el("h4", null, "History"));
    var ol = el("ol", "history-list");
    testid(ol, "message-history");
    if (!parts.history.length) ol.appendChild(el("li", "muted", "Not labelled yet."));
    parts.history.forEach(function (h) {
      var what = STATUSES[h.status] || h.status || "";
      if (h.status === "labelled" && h.intent) what = "Labelled " + h.intent;
      if (h.entities && h.entities.length) {
        what += " with " + h.entities.map(function (e) { return e.entity + " \u201c" + (e.value || text.slice(e.start, e.end)) + "\u201d"; }).join(", ");
      }
      if (h.target === "test" && h.status !== "open") what += " (test set)";
      var item = el("li", "history-item", what + " \u00b7 " + (h.author || "someone") + " \u00b7 " + when(h.at));
      testid(item, "history-item");
      ol.appendChild(item);
    });
    hist.appendChild(ol);
    if (m.labelled_by) hist.appendChild(el("p", "muted small", "Last labelled by " + m.labelled_by + ", " + when(m.labelled_at) + "."));
    li.appendChild(hist);
    return li;
  }

  // Selecting words inside a message's text fills that card's "text to mark" with exact offsets.
  function offsetIn(container, node, offset) {
    var r = document.createRange();
    r.setStart(container, 0);
    r.setEnd(node, offset);
    return r.toString().length;
  }

  document.addEventListener("selectionchange", function () {
    var sel = window.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) return;
    var range = sel.getRangeAt(0);
    var anchor = range.commonAncestorContainer;
    var host = (anchor.nodeType === 1 ? anchor : anchor.parentNode);
    host = host && host.closest ? host.closest(".msg-text") : null;
    if (!host) return;
    var card = cards[host.getAttribute("data-message-id")];
    if (!card || card.textNode !== host) return;
    var text = card.message.text || "";
    var start = offsetIn(host, range.startContainer, range.startOffset);
    var end = offsetIn(host, range.endContainer, range.endOffset);
    while (start < end && /\s/.test(text.charAt(start))) start++;
    while (end > start && /\s/.test(text.charAt(end - 1))) end--;
    if (end <= start) return;
    card.pending = { start: start, end: end };
    card.textInput.value = text.slice(start, end);
  });

  // ------------------------------------------------------------------ models

  function loadLabels() {
    return api("GET", "/admin/api/labels").then(function (data) {
      var n = data.pending || 0;
      var fresh = data.new_intents || [];
      $("pending-labels").textContent = plural(n, "label") + (fresh.length ? " (new intents: " + fresh.join(", ") + ")" : "");
    }).catch(function (err) { $("pending-labels").textContent = "unknown"; showError(err); });
  }

  function loadModels() {
    return api("GET", "/admin/api/models").then(function (data) {
      models = data;
      renderModels();
      var running = data.running === undefined ? null : data.running;
      if (lastRunning !== null && running !== lastRunning) {
        // A job just ended: its result and the pending count have changed.
        loadLabels();
        loadConvTests();
        if (modelDetail && modelDetail.version === lastRunning) openModel(lastRunning, false);
        say("Version " + lastRunning + " finished training.");
      } else if (running !== null && running !== undefined && modelDetail && modelDetail.version === running) {
        openModel(running, false);
      }
      lastRunning = running;
      schedulePoll();
    }).catch(function (err) { showError(err); schedulePoll(); });
  }

  function schedulePoll() {
    if (pollTimer) { window.clearTimeout(pollTimer); pollTimer = null; }
    if (currentView() !== "models" || !models || models.running === null || models.running === undefined) return;
    pollTimer = window.setTimeout(function () { pollTimer = null; loadModels(); }, POLL_MS);
  }

  function versionOf(v) {
    var found = null;
    ((models && models.versions) || []).forEach(function (x) { if (x.version === v) found = x; });
    return found;
  }

  function macroDiff(v) {
    var now = v.metrics && v.metrics.macro_f1;
    var base = v.baseline_metrics && v.baseline_metrics.macro_f1;
    return typeof now === "number" && typeof base === "number" ? now - base : null;
  }

  // Every word about the gate comes from its decision object (bot/training/gate.py): the verdict, its summary,
  // the rules applied, and one status per check and per intent. Nothing here decides anything of its own.
  var VERDICTS = {
    passed: ["ok", "passed"], blocked: ["bad", "blocked"],
    first_model: ["muted-badge", "first model"], nothing_to_compare: ["muted-badge", "nothing to compare"]
  };

  function gateBadge(v) {
    var kind = v.gate && VERDICTS[v.gate.verdict];
    if (!kind) return el("span", "badge muted-badge", "\u2014");
    var b = el("span", "badge " + kind[0], kind[1]);
    testid(b, "gate-badge");
    if (v.gate.summary) b.setAttribute("title", v.gate.summary);
    return b;
  }

  function checkFailed(v, rule) {
    return ((v.gate && v.gate.checks) || []).some(function (c) { return c.rule === rule && c.status === "fail"; });
  }

  function ruleList(rules, id) {
    var ul = el("ul", "plain-list rules");
    testid(ul, id);
    rules.forEach(function (r) { ul.appendChild(el("li", null, r)); });
    return ul;
  }

  function renderModels() {
    var data = models || {};
    var gate = data.gate || {};
    if (gate.rules && gate.rules.length) {
      var box = $("gate-rule");
      clear(box);
      box.appendChild(el("p", null, "The gate compares a new model with the live one and blocks it when a rule fails; " +
        "a lead can still activate a blocked model with a reason."));
      box.appendChild(ruleList(gate.rules, "gate-rules"));
    }
    $("serving").textContent = data.serving ? "Rasa is serving " + data.serving + "." :
      data.serving === null ? "Rasa did not say which model it serves (is it running?)." : "";
    var running = data.running !== null && data.running !== undefined ? versionOf(data.running) : null;
    $("train").disabled = !!running;
    $("train-note").disabled = !!running;
    $("job").hidden = !running;
    if (running) {
      var pct = Math.round(Math.max(0, Math.min(1, running.progress || 0)) * 100);
      $("job-status").textContent = "Version " + running.version + ": " + (STATES[running.state] || running.state) +
        (running.stage ? " \u2014 " + running.stage : "") + " (" + pct + "%)";
      $("job-progress").value = Math.max(0, Math.min(1, running.progress || 0));
      $("job-progress").setAttribute("aria-valuetext", pct + "%");
    }

    var body = $("models-body");
    clear(body);
    var versions = data.versions || [];
    versions.forEach(function (v) {
      var tr = el("tr", v.active ? "active-row" : "");
      testid(tr, "model-row-" + v.version);
      if (modelDetail && modelDetail.version === v.version) tr.classList.add("selected");
      var first = el("td");
      var open = button("v" + v.version, "model-open-" + v.version, "link");
      open.setAttribute("aria-label", "Open version " + v.version);
      open.addEventListener("click", function () { openModel(v.version, true); });
      first.appendChild(open);
      tr.appendChild(first);
      var state = el("td");
      state.appendChild(testid(el("span", "state state-" + v.state, STATES[v.state] || v.state), "model-state"));
      if (v.state === "failed" && v.error) state.setAttribute("title", v.error);
      tr.appendChild(state);
      tr.appendChild(el("td", null, v.created_by || "\u2014"));
      tr.appendChild(el("td", null, when(v.created_at)));
      tr.appendChild(el("td", "num", typeof v.examples === "number" ? String(v.examples) : "\u2014"));
      tr.appendChild(el("td", "num", num(v.metrics && v.metrics.accuracy)));
      var mf = el("td", "num");
      mf.appendChild(document.createTextNode(num(v.metrics && v.metrics.macro_f1)));
      var d = macroDiff(v);
      if (d !== null) {
        var drop = checkFailed(v, "macro_f1");
        mf.appendChild(el("span", "diff " + (drop ? "neg" : d > 0 ? "pos" : ""), " (" + signed(d) + ")"));
      }
      tr.appendChild(mf);
      var g = el("td");
      g.appendChild(gateBadge(v));
      tr.appendChild(g);
      var live = el("td");
      if (v.active) live.appendChild(testid(el("span", "badge live", "live"), "active-badge"));
      tr.appendChild(live);
      body.appendChild(tr);
    });
    $("models-empty").hidden = versions.length > 0;
  }

  $("train-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearError();
    $("train").disabled = true;
    api("POST", "/admin/api/models/train", {
      note: $("train-note").value.trim(), from_scratch: $("train-scratch").checked
    }).then(function (data) {
      $("train-note").value = "";
      $("train-scratch").checked = false;
      say("Training version " + data.version + " started. This page follows its progress.");
      return loadModels().then(function () { return openModel(data.version, false); });
    }).catch(function (err) {
      showError(err);
      loadModels();
    });
  });

  function openModel(version, focus) {
    return api("GET", "/admin/api/models/" + encodeURIComponent(version)).then(function (data) {
      modelDetail = data;
      renderModelDetail(focus);
      Array.prototype.forEach.call(document.querySelectorAll("#models-body tr"), function (tr) {
        tr.classList.toggle("selected", tr.getAttribute("data-testid") === "model-row-" + version);
      });
    }).catch(showError);
  }

  function renderModelDetail(focus) {
    var v = modelDetail;
    var pane = $("model-detail");
    pane.hidden = false;
    $("model-title").textContent = "Version " + v.version + (v.active ? " (live)" : "");
    var meta = (STATES[v.state] || v.state) + (v.stage && v.state !== "ready" ? " \u2014 " + v.stage : "") +
      " \u00b7 trained by " + (v.created_by || "unknown") + ", " + when(v.created_at) +
      (typeof v.examples === "number" ? " \u00b7 " + plural(v.examples, "lead-labelled example") : "") +
      (v.note ? " \u00b7 \u201c" + v.note + "\u201d" : "");
    $("model-meta").textContent = meta;

    // Gate and metrics against the baseline
    var gateBox = $("model-gate");
    clear(gateBox);
    var m = v.metrics || {};
    var b = v.baseline_metrics || {};
    var facts = el("dl", "facts");
    function fact(k, val) { facts.appendChild(el("dt", null, k)); facts.appendChild(el("dd", null, val)); }
    if (typeof m.accuracy === "number") fact("Accuracy", num(m.accuracy) + (typeof b.accuracy === "number" ? " (" + signed(m.accuracy - b.accuracy) + ")" : ""));
    if (typeof m.macro_f1 === "number") fact("Macro-F1", num(m.macro_f1) + (typeof b.macro_f1 === "number" ? " (" + signed(m.macro_f1 - b.macro_f1) + ")" : ""));
    if (typeof m.evaluated_as_baseline_of === "number") {
      fact("Evaluated", "on the test set as the baseline of version " + m.evaluated_as_baseline_of);
    } else if (v.state === "ready" && typeof m.macro_f1 !== "number") {
      fact("Evaluated", v.active ? "not yet: the next training evaluates the live model on the test set as its " +
        "baseline, and its scores show here" : "no (registered without an evaluation)");
    }
    if (v.data_fingerprint) fact("Training data", "fingerprint " + String(v.data_fingerprint).slice(0, 12));
    if (v.training) fact("Training", v.training);
    fact("Baseline", v.baseline_version !== null && v.baseline_version !== undefined ? "version " + v.baseline_version :
      v.gate && v.gate.verdict === "first_model" ? "none (first model)" : "none (no live model when it was evaluated)");
    gateBox.appendChild(facts);
    var g = v.gate || {};
    if (VERDICTS[g.verdict]) {
      var verdict = el("p", "verdict " + (g.verdict === "passed" ? "ok" : g.verdict === "blocked" ? "bad" : "muted"),
        g.summary || VERDICTS[g.verdict][1]);
      testid(verdict, "gate-verdict");
      gateBox.appendChild(verdict);
      if (g.reasons && g.reasons.length) {
        var ul = el("ul", "plain-list");
        testid(ul, "gate-reasons");
        g.reasons.forEach(function (r) { ul.appendChild(el("li", null, r)); });
        gateBox.appendChild(ul);
      }
      var notes = (g.notes || []).filter(function (r) { return r !== g.summary; });
      if (notes.length) {
        var nl = el("ul", "plain-list muted");
        testid(nl, "gate-notes");
        notes.forEach(function (r) { nl.appendChild(el("li", null, "Within noise: " + r)); });
        gateBox.appendChild(nl);
      }
      var conversations = conversationGate(g);
      if (conversations) gateBox.appendChild(conversations);
      if (g.rules && g.rules.length) {
        var applied = el("details", "rules-applied");
        applied.appendChild(el("summary", "muted small", "Rules applied to this version"));
        applied.appendChild(ruleList(g.rules, "gate-rules-applied"));
        gateBox.appendChild(applied);
      }
    }
    if (v.state === "failed" && v.error) gateBox.appendChild(testid(el("p", "verdict bad", "Training failed: " + v.error), "model-error"));
    if (v.state !== "ready" && v.state !== "failed") {
      var p = el("progress");
      p.max = 1;
      p.value = Math.max(0, Math.min(1, v.progress || 0));
      p.setAttribute("aria-label", "Progress of version " + v.version);
      gateBox.appendChild(p);
    }

    // Activate / override / roll back
    var form = $("activate-form");
    var active = models ? models.active : null;
    var can = v.state === "ready" && !v.active;
    form.hidden = !can;
    if (can) {
      var failed = v.gate && v.gate.passed === false;
      var older = typeof active === "number" && v.version < active;
      var needsReason = failed || older;  // the server asks for a reason for overrides and rollbacks
      $("activate").hidden = older;
      $("rollback").hidden = !older;
      $("activate").textContent = failed ? "Override the gate" : "Activate";
      $("rollback").textContent = failed ? "Override the gate and roll back" : "Roll back to this version";
      $("activate-reason-label").textContent = failed ? "Reason for overriding the gate (required, kept in the registry)" :
        older ? "Reason for the rollback (required, kept in the registry)" : "Reason (optional)";
      $("activate-reason").required = needsReason;
      form.setAttribute("data-version", String(v.version));
    }

    var sections = $("model-sections");
    clear(sections);
    sections.appendChild(perIntentSection(v));
    if (v.confusion_url) {
      var fig = el("figure", "confusion");
      var link = el("a");
      link.href = v.confusion_url;
      link.target = "_blank";
      link.rel = "noopener";
      var img = document.createElement("img");
      img.src = v.confusion_url;
      img.alt = "Confusion matrix of version " + v.version + " on the test set (expected intents in rows, predictions in columns)";
      testid(img, "confusion");
      link.appendChild(img);
      fig.appendChild(link);
      fig.appendChild(el("figcaption", "muted small", "Confusion matrix on the test set; open it full size."));
      sections.appendChild(section("Confusion matrix", fig));
    }
    sections.appendChild(changedSection(v));
    sections.appendChild(activationsSection(v));
    var pre = el("pre", "log-tail", v.log_tail || "No log yet.");
    testid(pre, "log-tail");
    pre.setAttribute("tabindex", "0");
    pre.setAttribute("aria-label", "Training log, last lines");
    sections.appendChild(section("Log (last lines)", pre));
    if (focus) pane.focus();
  }

  function section(title, content) {
    var s = el("section", "sub");
    s.appendChild(el("h3", null, title));
    s.appendChild(content);
    return s;
  }

  function perIntentSection(v) {
    var rows = (v.per_intent || []).slice();
    if (!rows.length) return section("Per intent", el("p", "muted", "No evaluation yet."));
    rows.forEach(function (r) { r._d = typeof r.f1 === "number" && typeof r.baseline_f1 === "number" ? r.f1 - r.baseline_f1 : null; });
    rows.sort(function (a, b) {
      if (a._d === null && b._d === null) return String(a.intent).localeCompare(String(b.intent));
      if (a._d === null) return 1;
      if (b._d === null) return -1;
      return a._d - b._d || String(a.intent).localeCompare(String(b.intent));
    });
    var wrap = el("div", "table-wrap");
    var t = el("table", "per-intent");
    testid(t, "per-intent");
    var cap = el("caption", "sr-only", "F1 per intent on the test set, biggest drop first");
    t.appendChild(cap);
    t.appendChild(ConsoleKit.thead(["Intent", "F1", "Baseline", "Difference", "Support", "Gate"], 1));
    var tb = el("tbody");
    rows.forEach(function (r) {
      // The gate's own decision for this intent (bot/training/gate.py), never a rule of the page's own.
      var fails = r.gate === "fail", noise = r.gate === "within_noise";
      var tr = el("tr", fails ? "fails" : noise ? "noise" : "");
      testid(tr, "intent-row");
      tr.setAttribute("data-intent", r.intent);
      tr.setAttribute("data-gate", r.gate || "");
      var th = el("th", null, r.intent);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", "num", num(r.f1)));
      tr.appendChild(el("td", "num", num(r.baseline_f1)));
      tr.appendChild(el("td", "num diff " + (fails ? "neg" : noise ? "noise" : r._d > 0 ? "pos" : ""),
        r._d === null ? "\u2014" : signed(r._d)));
      tr.appendChild(el("td", "num", typeof r.support === "number" ? String(r.support) : "\u2014"));
      var gc = el("td");
      if (fails || noise) {
        var badge = testid(el("span", "badge " + (fails ? "bad" : "noise-badge"), fails ? "blocks" : "within noise"),
          "intent-gate");
        if (r.gate_text) badge.setAttribute("title", r.gate_text);
        gc.appendChild(badge);
      }
      tr.appendChild(gc);
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    wrap.appendChild(t);
    return section("Per intent", wrap);
  }

  function changedSection(v) {
    var list = v.changed || [];
    if (!list.length) {
      return section("Changed predictions", el("p", "muted", v.baseline_version !== null && v.baseline_version !== undefined ?
        "No test message is predicted differently from the baseline." : "No baseline to compare with."));
    }
    var ul = el("ul", "changed");
    testid(ul, "changed");
    var fixed = 0;
    list.forEach(function (c) {
      if (c.fixed) fixed++;
      var li = el("li", c.fixed ? "fixed" : "broken");
      li.appendChild(el("span", "badge " + (c.fixed ? "ok" : "bad"), c.fixed ? "fixed" : "now wrong"));
      li.appendChild(el("span", "changed-text", " \u201c" + c.text + "\u201d "));
      li.appendChild(el("span", "muted", "expected " + c.expected + ": " + c.before + " \u2192 " + c.after));
      ul.appendChild(li);
    });
    var box = el("div");
    box.appendChild(el("p", "muted", plural(list.length, "test message") + " changed: " + fixed + " fixed, " + (list.length - fixed) + " now wrong."));
    box.appendChild(ul);
    return section("Changed predictions", box);
  }

  function activationsSection(v) {
    var list = v.activations || [];
    var ol = el("ol", "plain-list activations");
    testid(ol, "activations");
    if (!list.length) return section("Activation history", el("p", "muted", "Never activated."));
    list.forEach(function (a) {
      var text = (ACTIVATION_KINDS[a.kind] || a.kind) + " by " + (a.author || "someone") + ", " + when(a.at) +
        (a.previous_version !== null && a.previous_version !== undefined ? " (replacing version " + a.previous_version + ")" : "") +
        (a.reason ? ": \u201c" + a.reason + "\u201d" : "");
      ol.appendChild(el("li", null, text));
    });
    return section("Activation history", ol);
  }

  function activate() {
    clearError();
    var version = Number($("activate-form").getAttribute("data-version"));
    if (!version) return;
    var reason = $("activate-reason").value.trim();
    if ($("activate-reason").required && !reason) {
      showError({ message: modelDetail && modelDetail.gate && modelDetail.gate.passed === false ?
        "The gate blocked this model: give a reason to override it." : "Give a reason for rolling back to this version." });
      $("activate-reason").focus();
      return;
    }
    var body = reason ? { reason: reason } : {};
    $("activate").disabled = true;
    $("rollback").disabled = true;
    api("POST", "/admin/api/models/" + version + "/activate", body).then(function (data) {
      $("activate-reason").value = "";
      say("Version " + (data.active || version) + " is live now.");
      return loadModels().then(function () { return openModel(version, false); });
    }).catch(function (err) {
      showError(err);
      if (err.detail && err.detail.error === "gate_failed") {
        $("activate-reason").required = true;
        $("activate-reason").focus();
      }
    }).then(function () {
      $("activate").disabled = false;
      $("rollback").disabled = false;
    });
  }

  $("activate-form").addEventListener("submit", function (ev) { ev.preventDefault(); activate(); });
  $("rollback").addEventListener("click", activate);

  // ------------------------------------------------------------------ saved conversation tests
  // The list under the registry (GET /admin/api/conversation-tests: each test with its last result per model
  // version and the stored turn results) and the gate panel's per-test rows (the decision's ``conversations``).

  var CONV_FIELDS = [["intent", "Intent"], ["actions", "Actions"], ["reply", "Reply"]];

  function loadConvTests() {
    return api("GET", "/admin/api/conversation-tests").then(function (data) {
      renderConvTests(data.tests || []);
    }).catch(showError);
  }

  function convVersions(results) {
    return Object.keys(results || {}).map(Number).filter(function (n) { return isFinite(n); })
      .sort(function (a, b) { return b - a; });
  }

  function convResultLabel(r) {
    if (r.passed) return "passed";
    if (r.error) return "could not be played";
    return typeof r.diverged_at === "number" ? "failed at turn " + (r.diverged_at + 1) : "failed";
  }

  function renderConvTests(tests) {
    $("convtests-total").textContent = tests.length ? String(tests.length) : "";
    $("convtests-empty").hidden = tests.length > 0;
    var list = $("convtests-list");
    clear(list);
    tests.forEach(function (t) { list.appendChild(convTestItem(t)); });
  }

  function convTestItem(t) {
    var li = el("li", "convtest");
    testid(li, "convtest");
    li.setAttribute("data-name", t.name);
    var head = el("div", "convtest-head");
    head.appendChild(testid(el("span", "convtest-name", t.name), "convtest-name"));
    head.appendChild(el("span", "muted", plural((t.turns || []).length, "turn") + (t.source ? " \u00b7 from " + t.source : "")));
    li.appendChild(head);
    var versions = convVersions(t.results);
    if (!versions.length) {
      li.appendChild(testid(el("p", "muted small", "Not played against any model yet."), "convtest-never"));
      return li;
    }
    var ul = el("ul", "convtest-results");
    versions.forEach(function (v) {
      var r = t.results[String(v)];
      var b = el("span", "badge " + (r.passed ? "ok" : "bad"), "v" + v + ": " + convResultLabel(r));
      testid(b, "convtest-result");
      b.setAttribute("data-version", String(v));
      b.setAttribute("data-status", r.passed ? "passed" : "failed");
      if (r.ran_at) b.setAttribute("title", "played " + when(r.ran_at));
      var item = el("li");
      item.appendChild(b);
      ul.appendChild(item);
    });
    li.appendChild(ul);
    versions.forEach(function (v) {
      var r = t.results[String(v)];
      if (!r.passed) li.appendChild(convTurnDiff(v, r));
    });
    return li;
  }

  function convValue(field, value) {
    if (field === "actions") return value && value.length ? value.join(", ") : "none";
    if (field === "reply") return value ? String(value).replace(/_/g, " ") : "none";
    return value || "none";
  }

  // The turn where a failed test diverged: what the shopper said, and expected against got per field; a field
  // the test does not check says so, and the fields the runner named as different are marked.
  function convTurnDiff(version, r) {
    var box = el("div", "turn-diff");
    testid(box, "turn-diff");
    box.setAttribute("data-version", String(version));
    var turn = null;
    (r.turns || []).forEach(function (x) { if (x.index === r.diverged_at) turn = x; });
    var n = typeof r.diverged_at === "number" ? r.diverged_at + 1 : null;
    var said = el("p", null, "Version " + version + (n ? ", turn " + n : "") + ": ");
    testid(said, "turn-said");
    if (turn) said.appendChild(document.createTextNode("the shopper said \u201c" + turn.user + "\u201d"));
    box.appendChild(said);
    if (r.error) box.appendChild(testid(el("p", null, r.error), "turn-error"));
    if (!turn) return box;
    var expected = turn.expected || {};
    var differences = turn.differences || [];
    var t = el("table");
    t.appendChild(ConsoleKit.thead(["", "Expected", "Got"]));
    var tb = el("tbody");
    CONV_FIELDS.forEach(function (f) {
      var differs = differences.some(function (d) { return String(d).indexOf(f[0] + ":") === 0; });
      var want = expected[f[0]];
      var checked = f[0] === "actions" ? !!(want && want.length) : want !== null && want !== undefined;
      var tr = el("tr", differs ? "differs" : "");
      testid(tr, "diff-row");
      tr.setAttribute("data-field", f[0]);
      tr.setAttribute("data-differs", differs ? "yes" : "no");
      var th = el("th", null, f[1]);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", checked ? null : "muted", checked ? convValue(f[0], want) : "not checked"));
      tr.appendChild(el("td", null, convValue(f[0], turn[f[0]])));
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    box.appendChild(t);
    return box;
  }

  // The gate decision's conversation rule and one row per saved test (bot/training/gate.py ``conversations``);
  // nothing when the tests were not played for this version.
  function conversationGate(g) {
    var list = g.conversations;
    if (!list) return null;
    var check = null;
    (g.checks || []).forEach(function (c) { if (c.rule === "conversations") check = c; });
    var failed = list.filter(function (e) { return e.status === "fail"; }).length;
    var blocks = check ? check.status === "fail" : failed > 0;
    var box = el("div", "gate-conversations");
    testid(box, "gate-conversations");
    var head = el("p", null, "Saved conversation tests: ");
    head.appendChild(testid(el("span", "badge " + (!list.length ? "muted-badge" : blocks ? "bad" : "ok"),
      !list.length ? "none saved" : blocks ? "blocks" : "passed"), "gate-conversation-rule"));
    if (list.length) head.appendChild(document.createTextNode(" " + (list.length - failed) + " of " + list.length + " passed"));
    box.appendChild(head);
    var ul = el("ul");
    list.forEach(function (e) {
      var fails = e.status === "fail";
      var li = el("li", fails ? "fail" : "pass");
      testid(li, "gate-conversation");
      li.setAttribute("data-name", e.name);
      li.setAttribute("data-status", e.status);
      li.appendChild(el("span", "badge " + (fails ? "bad" : "ok"), fails ? (typeof e.diverged_at === "number" ?
        "fails at turn " + (e.diverged_at + 1) : "fails") : "passed"));
      li.appendChild(document.createTextNode(" " + (fails && e.text ? e.text : e.name)));
      ul.appendChild(li);
    });
    box.appendChild(ul);
    return box;
  }

  // ------------------------------------------------------------------ topics

  var topicsScope = "all";
  var topicsData = null;   // last GET /admin/api/topics
  var topicsTimer = null;

  function pct(x) { return typeof x === "number" && isFinite(x) ? Math.round(x * 100) + " %" : "\u2014"; }

  function trendSvg(perDay) {
    var w = 8, h = 24, max = 1;
    perDay.forEach(function (d) { if (d.count > max) max = d.count; });
    var chart = svg("svg", {
      width: Math.max(perDay.length, 1) * w, height: h, "class": "topic-trend", role: "img",
      "aria-label": "Messages per day: " + perDay.map(function (d) { return d.day + " " + d.count; }).join(", ")
    });
    perDay.forEach(function (d, i) {
      var bh = Math.max(1, Math.round(d.count / max * h));
      chart.appendChild(svg("rect", { x: i * w + 1, y: h - bh, width: w - 2, height: bh }));
    });
    return chart;
  }

  function topicCard(t) {
    var card = el("article", "card topic-card" + (t.out_of_scope ? " topic-oos" : ""));
    testid(card, "topic-card");
    card.setAttribute("data-topic-id", String(t.id));
    var head = el("h3", "topic-name", t.name);
    head.appendChild(el("span", "count", " " + plural(t.size, "message")));
    if (t.out_of_scope) head.appendChild(el("span", "badge", "out of scope"));
    card.appendChild(head);
    var trend = el("p", "topic-stats");
    trend.appendChild(trendSvg(t.per_day));
    trend.appendChild(document.createTextNode(" " + t.per_day.map(function (d) { return d.day.slice(5) + ": " + d.count; }).join(" \u00b7 ")));
    card.appendChild(trend);
    card.appendChild(el("p", "topic-stats", "Containment " + pct(t.containment_rate) + " \u00b7 escalation " +
      pct(t.escalation_rate) + " \u00b7 rating " + num(t.average_rating, 1) + " \u00b7 " + plural(t.conversations, "conversation")));
    var today = Object.keys(t.intents_today || {});
    card.appendChild(el("p", "topic-stats", "Intents today: " + (today.length ? today.map(function (k) {
      return k + " (" + t.intents_today[k] + ")"; }).join(", ") : "none")));
    var reps = el("ul", "topic-reps");
    t.representatives.forEach(function (r) { reps.appendChild(el("li", null, r)); });
    card.appendChild(el("h4", null, "Representative messages"));
    card.appendChild(reps);

    var members = el("ul", "topic-members");
    t.members.forEach(function (m) {
      var li = el("li");
      var label = el("label");
      var box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(m.id);
      testid(box, "topic-member");
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + m.text + " "));
      label.appendChild(el("span", "muted", m.intent + (m.status !== "open" ? " \u2192 " + (m.label || STATUSES[m.status] || m.status) : "")));
      li.appendChild(label);
      members.appendChild(li);
    });
    card.appendChild(el("h4", null, "Messages (" + t.members_shown + " of " + t.size + ")"));
    card.appendChild(members);

    var bar = el("div", "topic-actions");
    var pick = document.createElement("select");
    testid(pick, "topic-intent");
    pick.setAttribute("aria-label", "Intent");
    pick.appendChild(el("option", null, "Pick an intent\u2026")).value = "";
    (topicsData.intents || []).forEach(function (name) { pick.appendChild(el("option", null, name)).value = name; });
    var fresh = document.createElement("input");
    fresh.type = "text";
    fresh.placeholder = "or a new intent";
    fresh.setAttribute("aria-label", "New intent");
    testid(fresh, "topic-new-intent");
    var labelBtn = button("Label selected as\u2026", "topic-label", "primary");
    labelBtn.addEventListener("click", function () {
      var ids = Array.prototype.map.call(members.querySelectorAll("input:checked"), function (b) { return Number(b.value); });
      var name = fresh.value.trim() || pick.value;
      if (!ids.length) { showError({ message: "Select at least one message." }); return; }
      if (!name) { showError({ message: "Pick an intent or type a new one." }); return; }
      if (fresh.value.trim() && !NEW_INTENT.test(name)) {
        showError({ message: "A new intent's name has 2 to 48 characters: lower-case letters, digits and _, starting with a letter." });
        return;
      }
      api("POST", "/admin/api/topics/" + t.id + "/label", { message_ids: ids, intent: name, new_intent: !!fresh.value.trim() })
        .then(function (r) { say(plural(r.updated, "message") + " labelled " + name + "."); loadTopics(); }).catch(showError);
    });
    var oos = button("Out of scope", "topic-out-of-scope");
    oos.addEventListener("click", function () {
      api("POST", "/admin/api/topics/" + t.id + "/out-of-scope", {})
        .then(function (r) { say("Topic marked out of scope (" + plural(r.updated, "message") + ")."); loadTopics(); }).catch(showError);
    });
    bar.appendChild(pick);
    bar.appendChild(fresh);
    bar.appendChild(labelBtn);
    bar.appendChild(oos);
    card.appendChild(bar);

    var form = el("form", "topic-knowledge");
    testid(form, "topic-knowledge");
    form.appendChild(el("h4", null, "Add knowledge entry"));
    function field(labelText, node) {
      var l = el("label", null, labelText + " ");
      l.appendChild(node);
      form.appendChild(l);
      return node;
    }
    var key = document.createElement("input");
    key.required = true;
    key.pattern = "[a-z][a-z0-9_]{1,47}";
    field("Key", key);
    var title = document.createElement("input");
    field("Label", title);
    var answer = document.createElement("textarea");
    answer.required = true;
    answer.rows = 3;
    field("Answer", answer);
    var examples = document.createElement("textarea");
    examples.rows = 3;
    examples.value = t.representatives.join("\n");
    field("Questions (one a line)", examples);
    var add = el("button", "primary", "Add to the policy file");
    add.type = "submit";
    form.appendChild(add);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var qs = examples.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
      api("POST", "/admin/api/topics/" + t.id + "/knowledge",
        { topic_key: key.value.trim(), label: title.value.trim(), answer: answer.value, examples: qs })
        .then(function (r) { say("Knowledge entry " + r.topic_key + " added to the policy file."); form.reset(); }).catch(showError);
    });
    card.appendChild(form);
    return card;
  }

  function renderTopics() {
    var box = $("topics-list");
    clear(box);
    var list = topicsData ? topicsData.topics : [];
    $("topics-total").textContent = topicsData ? "(" + list.length + ")" : "";
    if (!list.length) {
      box.appendChild(el("p", "muted", "No topics yet for this scope: recluster to build them."));
      return;
    }
    list.forEach(function (t) { box.appendChild(topicCard(t)); });
  }

  function loadTopics() {
    api("GET", "/admin/api/topics?scope=" + encodeURIComponent(topicsScope) + "&members=50")
      .then(function (data) { topicsData = data; renderTopics(); }).catch(showError);
  }

  function showJob(job) {
    var p = $("topics-job");
    if (!job || job.state === "idle") { p.textContent = ""; return; }
    var text = "Recluster (" + job.scope + "): " + job.state + " \u2014 " + job.stage + " (" + job.done + "/" + job.total + ")";
    if (job.error) text += " " + job.error;
    p.textContent = text;
    $("topics-progress").max = job.total;
    $("topics-progress").value = job.done;
  }

  function pollTopicsJob() {
    if (topicsTimer) { window.clearTimeout(topicsTimer); topicsTimer = null; }
    api("GET", "/admin/api/topics/job").then(function (job) {
      showJob(job);
      if (job.state === "running") topicsTimer = window.setTimeout(pollTopicsJob, 1000);
      else if (job.state === "done" && job.scope === topicsScope) loadTopics();
    }).catch(showError);
  }

  $("topics-scope").addEventListener("change", function () { topicsScope = $("topics-scope").value; loadTopics(); });
  $("topics-recluster").addEventListener("click", function () {
    api("POST", "/admin/api/topics/recluster", { scope: topicsScope }).then(function (job) {
      showJob(job);
      pollTopicsJob();
    }).catch(showError);
  });

  // ------------------------------------------------------------------ views, start

  function currentView() { return location.hash === "#models" ? "models" : location.hash === "#topics" ? "topics" : "inbox"; }

  var loaded = { inbox: false };

  function route() {
    var view = currentView();
    $("view-inbox").hidden = view !== "inbox";
    $("view-models").hidden = view !== "models";
    $("view-topics").hidden = view !== "topics";
    [["inbox", "nav-inbox"], ["models", "nav-models"], ["topics", "nav-topics"]].forEach(function (pair) {
      if (pair[0] === view) $(pair[1]).setAttribute("aria-current", "page");
      else $(pair[1]).removeAttribute("aria-current");
    });
    document.title = (view === "models" ? "Models" : view === "topics" ? "Topics" : "NLU inbox") + " \u00b7 Lead console";
    if (!me) return;
    if (view === "topics") {
      loadTopics();
      pollTopicsJob();
    } else if (view === "models") {
      loadLabels();
      loadConvTests();
      loadModels();
    } else {
      if (pollTimer) { window.clearTimeout(pollTimer); pollTimer = null; }
      if (!loaded.inbox) { loaded.inbox = true; loadGroups(); }
    }
  }

  window.addEventListener("hashchange", function () { clearError(); route(); });

  ConsoleKit.wireLogout(api);

  function start() {
    route();
    ConsoleKit.signedIn(api).then(function (data) {
      me = data.user || {};
      $("me").textContent = (me.name || me.display_name || me.username || "") + (me.role === "lead" ? " (lead)" : "");
      if (me.role && me.role !== "lead") showError({ message: "This console is for support leads; your account is an agent account." });
      route();
    }).catch(showError);
  }

  start();
})();
