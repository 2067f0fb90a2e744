/*
 * Agent inbox: live queue over /ws/agent, the conversation with its context packet, and the
 * ticket actions (claim, transfer, note, reply, resolve) as JSON POSTs with the CSRF header.
 * Everything that comes from shoppers or tickets is rendered with textContent / createElement.
 */
(function () {
  "use strict";

  var $ = ConsoleKit.$, el = ConsoleKit.el, svg = ConsoleKit.svg, clear = ConsoleKit.clear;
  var api = ConsoleKit.client({ loginUrl: "/agent/login" });
  var REASONS = ConsoleKit.HANDOFF_REASONS;

  var me = null;            // {id, username, role, name}
  var tickets = {};         // id -> queue row
  var agents = [];          // for the transfer menu
  var namesByUsername = {}; // username -> display name, for message authors
  var current = null;       // the watched ticket in full
  var ws = null;
  var attempt = 0;

  function reasonLabel(reason) { return REASONS[reason] || String(reason || "").replace(/_/g, " "); }

  function signed(x) {
    if (typeof x !== "number" || !isFinite(x)) return "";
    return (x > 0 ? "+" : x < 0 ? "\u2212" : "") + Math.abs(x).toFixed(2);
  }

  function moodClass(x) { return typeof x !== "number" ? "" : x <= -0.05 ? "neg" : x >= 0.05 ? "pos" : ""; }

  function minutesSince(iso) {
    var t = Date.parse(iso || "");
    return isFinite(t) ? Math.max(0, Math.floor((Date.now() - t) / 60000)) : 0;
  }

  function waitText(row) {
    if (row.status !== "queued") return "";
    var m = minutesSince(row.created_at);
    return m < 1 ? "just now" : m + " min waiting";
  }

  function timeText(iso) {
    var t = Date.parse(iso || "");
    if (!isFinite(t)) return "";
    return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function money(value, currency) {
    if (typeof value !== "number") return "";
    try {
      if (currency && /^[A-Z]{3}$/.test(currency)) {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(value);
      }
    } catch (e) { /* fall through */ }
    return value.toFixed(2) + (currency ? " " + currency : "");
  }

  function nameOf(username) {
    if (!username) return "Agent";
    if (me && username === me.username) return "You";
    return namesByUsername[username] || username;
  }

  function who(row) {
    return row.customer_name || "Guest";
  }

  function notice(text, info) {
    var n = $("notice");
    n.textContent = text || "";
    n.className = "notice" + (info ? " info" : "");
    n.hidden = !text;
  }

  // ------------------------------------------------------------------ queue

  function sortedRows() {
    return Object.keys(tickets).map(function (k) { return tickets[k]; }).sort(function (a, b) {
      if (b.sort_key !== a.sort_key) return b.sort_key - a.sort_key;
      if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
      return a.id - b.id;
    });
  }

  function renderQueue(freshId) {
    var list = $("queue");
    var focusedId = document.activeElement && document.activeElement.getAttribute("data-ticket-id");
    clear(list);
    var rows = sortedRows();
    var waiting = 0;
    rows.forEach(function (row) {
      if (row.status === "queued") waiting++;
      var li = el("li");
      var btn = el("button", "ticket-btn");
      btn.type = "button";
      btn.setAttribute("data-ticket-id", String(row.id));
      btn.setAttribute("data-testid", "ticket-" + row.id);
      if (current && current.id === row.id) { btn.classList.add("selected"); btn.setAttribute("aria-current", "true"); }
      if (freshId === row.id) btn.classList.add("fresh");

      var top = el("span", "ticket-top");
      top.appendChild(el("span", null, who(row)));
      top.appendChild(el("span", "muted", waitText(row) || (row.status === "claimed" ? "in progress" : "")));
      btn.appendChild(top);
      btn.appendChild(el("span", "ticket-reason", reasonLabel(row.reason) + (row.reason_detail ? ": " + row.reason_detail : "")));
      if (row.last_message) btn.appendChild(el("span", "ticket-last", "\u201c" + row.last_message + "\u201d"));

      var tags = el("span", "ticket-tags");
      tags.appendChild(el("span", "tag prio", "priority " + row.priority));
      if (row.segment) tags.appendChild(el("span", "tag", row.segment));
      if (typeof row.mood === "number") tags.appendChild(el("span", "tag " + moodClass(row.mood), "mood " + signed(row.mood)));
      if (row.status === "queued") tags.appendChild(el("span", "tag waiting", "waiting"));
      else if (row.assignee_id === me.id) tags.appendChild(el("span", "tag mine", "yours"));
      else tags.appendChild(el("span", "tag", "with " + (row.assignee_name || "an agent")));
      btn.appendChild(tags);

      btn.setAttribute("aria-label", who(row) + ", " + reasonLabel(row.reason) + ", priority " + row.priority +
        (row.status === "queued" ? ", " + waitText(row) : row.assignee_id === me.id ? ", yours" : ", with " + (row.assignee_name || "an agent")));
      btn.addEventListener("click", function () { watch(row.id); });
      li.appendChild(btn);
      list.appendChild(li);
    });
    $("queue-empty").hidden = rows.length > 0;
    $("queue-count").textContent = waiting ? String(waiting) : "";
    document.title = (waiting ? "(" + waiting + ") " : "") + "Agent inbox";
    if (focusedId) {
      var again = list.querySelector('[data-ticket-id="' + focusedId.replace(/[^0-9]/g, "") + '"]');
      if (again) again.focus();
    }
  }

  function upsert(row, kind) {
    if (!row || typeof row.id !== "number") return;
    var isNew = !tickets[row.id];
    if (row.status === "resolved") delete tickets[row.id];
    else tickets[row.id] = row;
    renderQueue(isNew && kind === "ticket_opened" ? row.id : null);
    if (isNew && row.status === "queued") {
      $("announce").textContent = "New ticket: " + who(row) + ", " + reasonLabel(row.reason) + ".";
    }
    if (current && current.id === row.id) {
      Object.keys(row).forEach(function (k) { current[k] = row[k]; });
      renderHead();
    }
  }

  // Arrow keys move between tickets; Enter/Space open (buttons do that already).
  $("queue").addEventListener("keydown", function (ev) {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    var buttons = Array.prototype.slice.call($("queue").querySelectorAll(".ticket-btn"));
    if (!buttons.length) return;
    var i = buttons.indexOf(document.activeElement);
    var next = ev.key === "ArrowDown" ? Math.min(buttons.length - 1, i + 1) : Math.max(0, i - 1);
    buttons[next].focus();
    ev.preventDefault();
  });

  // ------------------------------------------------------------------ conversation

  function watch(id) {
    notice("");
    current = tickets[id] ? Object.assign({}, tickets[id], { messages: [], context: null }) : { id: id };
    send({ type: "watch", ticket_id: id });
    renderQueue();
  }

  function send(frame) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
  }

  function mine() { return current && current.status === "claimed" && current.assignee_id === me.id; }
  function isLead() { return me && me.role === "lead"; }

  function renderHead() {
    if (!current) return;
    $("placeholder").hidden = true;
    $("chat").hidden = false;
    $("chat-title").textContent = who(current) + " \u2014 ticket #" + current.id;
    var meta = reasonLabel(current.reason) + (current.reason_detail ? ": " + current.reason_detail : "") +
      " \u00b7 priority " + current.priority;
    if (current.status === "queued") meta += " \u00b7 waiting (" + waitText(current) + ")";
    else if (current.status === "claimed") meta += " \u00b7 " + (mine() ? "yours" : "with " + (current.assignee_name || "an agent"));
    else meta += " \u00b7 resolved" + (current.rating ? ", rated " + current.rating + "/5" : "");
    $("chat-meta").textContent = meta;

    var open = current.status !== "resolved";
    $("claim").disabled = current.status !== "queued";
    $("claim").hidden = current.status !== "queued";
    var canMove = open && (mine() || (isLead() && open));
    $("transfer").disabled = !canMove;
    $("transfer-to").disabled = !canMove;
    $("resolve").disabled = !(open && (mine() || current.status === "queued" || isLead()));
    var note = $("as-note").checked;
    $("send").disabled = !(note || mine());
    $("reply-text").placeholder = note ? "Internal note for other agents…" :
      mine() ? "Write to the shopper… (Enter sends, Shift+Enter for a new line)" :
      current.status === "queued" ? "Claim the ticket to reply (or tick \u201cInternal note\u201d)." : "Only the agent holding the ticket can reply.";
    renderTransferMenu();
    renderSaveTest();
  }

  // A lead can save the ticket's conversation as a conversation test (a lead-only route: agents see no button).
  function renderSaveTest() {
    var btn = $("save-test");
    if (!btn) {
      btn = el("button", null, "Save as test");
      btn.type = "button";
      btn.id = "save-test";
      btn.setAttribute("data-testid", "save-test");
      btn.addEventListener("click", function () {
        if (!current || !current.conversation_id) return;
        var name = window.prompt("Name of the conversation test:", "");
        if (name === null || !name.trim()) return;
        api("POST", "/admin/api/conversation-tests",
          { conversation_id: current.conversation_id, name: name.trim(), origin: "agent-inbox" })
          .then(function (saved) { notice("Saved the conversation as test \u201c" + saved.name + "\u201d (" + saved.turns.length + (saved.turns.length === 1 ? " turn)." : " turns)."), true); })
          .catch(function (err) { notice(err.message); });
      });
      $("resolve").parentNode.appendChild(btn);
    }
    btn.hidden = !(isLead() && current && current.conversation_id);
  }

  function renderTransferMenu() {
    var select = $("transfer-to");
    var keep = select.value;
    clear(select);
    var back = el("option", null, "Back to the queue");
    back.value = "";
    select.appendChild(back);
    agents.forEach(function (a) {
      if (current && a.id === current.assignee_id) return;
      var o = el("option", null, a.name + (a.role === "lead" ? " (lead)" : ""));
      o.value = String(a.id);
      select.appendChild(o);
    });
    if (keep && select.querySelector('option[value="' + keep.replace(/[^0-9]/g, "") + '"]')) select.value = keep;
  }

  function messageItem(m, fromTranscript) {
    var role = m.role === "shopper" || m.role === "bot" || m.role === "agent" || m.role === "note" ? m.role : "system";
    var li = el("li", "msg " + role);
    if (role === "system") {
      li.textContent = m.text + (m.created_at ? " \u00b7 " + timeText(m.created_at) : "");
      return li;
    }
    var meta = el("span", "msg-meta");
    var label = role === "shopper" ? "Shopper" : role === "bot" ? "Assistant" :
      role === "note" ? "Note by " + nameOf(m.author) : nameOf(m.author);
    meta.appendChild(document.createTextNode(label));
    var at = timeText(m.created_at || m.at);
    if (at) meta.appendChild(document.createTextNode(" \u00b7 " + at));
    if (fromTranscript && m.intent) {
      meta.appendChild(el("span", "chip", m.intent + (typeof m.confidence === "number" ? " " + m.confidence.toFixed(2) : "")));
    }
    if (role === "shopper" && m.clicked === true) meta.appendChild(el("span", "chip", "clicked a button"));
    if (role === "shopper" && typeof m.sentiment === "number") {
      meta.appendChild(el("span", "chip " + moodClass(m.sentiment), "sentiment " + signed(m.sentiment)));
    }
    li.appendChild(meta);
    li.appendChild(document.createTextNode(m.text || ""));
    return li;
  }

  function renderMessages() {
    var list = $("messages");
    clear(list);
    var ctx = current.context || {};
    (ctx.transcript || []).forEach(function (m) { list.appendChild(messageItem(m, true)); });
    var divider = el("li", "divider", "Handed over: " + reasonLabel(current.reason) +
      (current.created_at ? " at " + timeText(current.created_at) : ""));
    list.appendChild(divider);
    (current.messages || []).forEach(function (m) { list.appendChild(messageItem(m, false)); });
    list.scrollTop = list.scrollHeight;
  }

  function showConversation(ticket) {
    if (!current || current.id !== ticket.id) return;
    current = ticket;
    if (ticket.status !== "resolved") tickets[ticket.id] = Object.assign({}, tickets[ticket.id] || {}, ticket, { context: undefined, messages: undefined });
    renderHead();
    renderMessages();
    renderContext();
    renderQueue();
  }

  function addMessage(ticketId, m) {
    if (!current || current.id !== ticketId || !current.messages) return;
    if (current.messages.some(function (x) { return x.id === m.id; })) return;
    current.messages.push(m);
    var list = $("messages");
    list.appendChild(messageItem(m, false));
    list.scrollTop = list.scrollHeight;
    if (m.role === "shopper") renderMoodSection();
  }

  // ------------------------------------------------------------------ context packet

  function facts(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(el("dt", null, p[0]));
      dl.appendChild(el("dd", null, p[1]));
    });
    return dl;
  }

  function section(title, content, testid) {
    var s = el("section");
    if (testid) s.setAttribute("data-testid", testid);
    s.appendChild(el("h3", null, title));
    s.appendChild(content);
    return s;
  }

  // Per-message sentiment of the shopper (dots) and the running mood (line), -1..+1.
  function moodChart(trajectory, points) {
    var W = 300, H = 110, L = 26, R = 8, T = 8, B = 16;
    var n = Math.max(trajectory.length, points.length, 2);
    function x(i) { return L + (W - L - R) * (n === 1 ? 0 : i / (n - 1)); }
    function y(v) { return T + (H - T - B) * (1 - (Math.max(-1, Math.min(1, v)) + 1) / 2); }
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "mood-chart", role: "img",
      "aria-labelledby": "mood-title", "data-testid": "mood-chart" });
    var title = svg("title", { id: "mood-title" });
    var last = trajectory.length ? trajectory[trajectory.length - 1] : null;
    title.textContent = "Mood over the conversation" + (last !== null ? ", now " + signed(last) : "") +
      " (" + points.length + " shopper messages)";
    chart.appendChild(title);
    chart.appendChild(svg("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), "class": "mood-zero" }));
    [[1, "+1"], [0, "0"], [-1, "\u22121"]].forEach(function (a) {
      var t = svg("text", { x: 2, y: y(a[0]) + 3, "class": "mood-axis" });
      t.textContent = a[1];
      chart.appendChild(t);
    });
    if (trajectory.length > 1) {
      chart.appendChild(svg("polyline", { "class": "mood-line", points: trajectory.map(function (v, i) {
        return x(i).toFixed(1) + "," + y(v).toFixed(1);
      }).join(" ") }));
    }
    points.forEach(function (p, i) {
      var dot = svg("circle", { cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 3.5,
        "class": "mood-dot " + moodClass(p.value) + (p.live ? " live" : "") });
      var tip = svg("title");
      tip.textContent = signed(p.value) + ": " + (p.text || "").slice(0, 80);
      dot.appendChild(tip);
      chart.appendChild(dot);
    });
    return chart;
  }

  function moodSection() {
    var ctx = current.context || {};
    var trajectory = (ctx.mood_trajectory || []).filter(function (v) { return typeof v === "number"; });
    var points = [];
    (ctx.transcript || []).forEach(function (m) {
      if (m.role === "shopper" && typeof m.sentiment === "number") points.push({ value: m.sentiment, text: m.text });
    });
    (current.messages || []).forEach(function (m) {
      if (m.role === "shopper" && typeof m.sentiment === "number") points.push({ value: m.sentiment, text: m.text, live: true });
    });
    var box = el("div");
    box.appendChild(moodChart(trajectory, points));
    var mood = typeof ctx.mood === "number" ? ctx.mood : current.mood;
    box.appendChild(el("p", "muted", "Mood at handover " + (typeof mood === "number" ? signed(mood) : "unknown") +
      "; dots are single messages, outlined ones came after the handover."));
    var s = section("Mood", box, "mood");
    s.id = "mood-section";
    return s;
  }

  function renderMoodSection() {
    var old = $("mood-section");
    if (old && current) old.parentNode.replaceChild(moodSection(), old);
  }

  function renderContext() {
    var pane = $("context");
    var body = $("context-body");
    clear(body);
    pane.hidden = false;
    var ctx = current.context || {};
    body.appendChild(section("Why", facts([
      ["Reason", reasonLabel(ctx.reason || current.reason)],
      ["Detail", ctx.reason_detail || current.reason_detail],
      ["Signals", ctx.decision && ctx.decision.signals && ctx.decision.signals.length ?
        ctx.decision.signals.join(", ").replace(/_/g, " ") + (typeof ctx.decision.score === "number" ?
          " (score " + ctx.decision.score.toFixed(2) + ", threshold " + Number(ctx.decision.threshold).toFixed(2) + ")" : "") : ""],
      ["Summary", ctx.summary]
    ]), "why"));

    var c = ctx.customer;
    body.appendChild(section("Customer", c ? facts([
      ["Name", c.name], ["Email", c.email], ["Phone", c.phone],
      ["Segment", c.segment_label || c.segment],
      ["Lifetime value", typeof c.lifetime_value === "number" ? money(c.lifetime_value, (ctx.orders && ctx.orders[0] && ctx.orders[0].currency) || "") : ""],
      ["Orders", c.orders_count], ["Last order", c.last_order_at ? new Date(c.last_order_at).toLocaleDateString() : ""]
    ]) : el("p", "muted", "Guest: not signed in."), "customer"));

    body.appendChild(moodSection());

    var orders = ctx.orders || [];
    var olist = el("ul", "plain-list");
    orders.forEach(function (o) {
      var items = (o.items || []).map(function (i) { return (i.quantity > 1 ? i.quantity + "\u00d7 " : "") + i.title; }).join(", ");
      olist.appendChild(el("li", null, (o.number || "order") + " \u00b7 " + (o.status_label || o.status || "") +
        (typeof o.total === "number" ? " \u00b7 " + money(o.total, o.currency) : "") + (items ? " \u2014 " + items : "") +
        (o.tracking_number ? " \u00b7 tracking " + o.tracking_number : "")));
    });
    body.appendChild(section("Recent orders", orders.length ? olist : el("p", "muted", "None that the shopper proved are theirs."), "orders"));

    var cart = ctx.cart;
    var clist = el("ul", "plain-list");
    ((cart && cart.items) || []).forEach(function (i) {
      clist.appendChild(el("li", null, i.quantity + "\u00d7 " + i.title + (i.size ? " (" + i.size + ")" : "") +
        (typeof i.total === "number" ? " \u00b7 " + money(i.total, cart.currency) : "")));
    });
    body.appendChild(section("Cart", cart && cart.items && cart.items.length ? clist : el("p", "muted", "Empty."), "cart"));

    var search = ctx.last_search;
    body.appendChild(section("Last search", search ? facts([
      ["Query", search.query], ["Filters", search.filters && Object.keys(search.filters).length ? JSON.stringify(search.filters) : ""]
    ]) : el("p", "muted", "No search."), "search"));

    var slots = ctx.slots || {};
    var names = Object.keys(slots);
    body.appendChild(section("Filled slots", names.length ? facts(names.map(function (k) {
      var v = slots[k];
      return [k, typeof v === "string" ? v : JSON.stringify(v)];
    })) : el("p", "muted", "None."), "slots"));
  }

  // ------------------------------------------------------------------ actions

  function act(path, body, done) {
    notice("");
    return api("POST", path, body).then(function (data) {
      if (data && data.ticket) showConversation(data.ticket);
      if (done) done(data);
      return data;
    }).catch(function (err) { notice(err.message); });
  }

  $("claim").addEventListener("click", function () {
    if (!current) return;
    act("/agent/api/tickets/" + current.id + "/claim", {}, function (data) {
      if (data.paused === false) notice("Claimed, but the assistant could not be paused: it may still answer.", true);
      $("reply-text").focus();
    });
  });

  $("transfer").addEventListener("click", function () {
    if (!current) return;
    var to = $("transfer-to").value;
    act("/agent/api/tickets/" + current.id + "/transfer", { to_agent_id: to ? Number(to) : null });
  });

  $("resolve").addEventListener("click", function () {
    if (!current) return;
    act("/agent/api/tickets/" + current.id + "/resolve", {}, function () {
      notice("Resolved: the assistant has the conversation again and asked for a rating.", true);
    });
  });

  $("as-note").addEventListener("change", function () {
    $("composer").classList.toggle("note-mode", $("as-note").checked);
    renderHead();
  });

  $("composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!current) return;
    var box = $("reply-text");
    var text = box.value.trim();
    if (!text) return;
    var note = $("as-note").checked;
    if (!note && !mine()) { notice(current.status === "queued" ? "Claim the ticket before you reply." : "This ticket is not yours."); return; }
    $("send").disabled = true;
    api("POST", "/agent/api/tickets/" + current.id + (note ? "/notes" : "/replies"), { text: text }).then(function (data) {
      box.value = "";
      notice(data && data.widgets === 0 ? "Sent. The shopper's chat is not open right now; they will see it in the transcript." : "", true);
      if (data && data.message) addMessage(current.id, data.message);
    }).catch(function (err) { notice(err.message); }).then(function () { renderHead(); box.focus(); });
  });

  $("reply-text").addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });

  ConsoleKit.wireLogout(api);

  // ------------------------------------------------------------------ live connection

  function setConnection(text, live) {
    var c = $("connection");
    c.textContent = text;
    c.className = "conn" + (live ? " live" : "");
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent";
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () {
      attempt = 0;
      setConnection("Live", true);
      if (current) send({ type: "watch", ticket_id: current.id });
    };
    sock.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg !== "object") return;
      switch (msg.type) {
        case "queue": {
          var fresh = {};
          (msg.tickets || []).forEach(function (row) { fresh[row.id] = row; });
          tickets = fresh;
          renderQueue();
          if (typeof msg.agents_online === "number") {
            $("online").textContent = msg.agents_online + (msg.agents_online === 1 ? " agent" : " agents") + " online";
          }
          if (current && tickets[current.id]) upsert(tickets[current.id]);
          break;
        }
        case "ticket_opened":
        case "ticket_updated":
        case "ticket_resolved":
          upsert(msg.ticket, msg.type);
          break;
        case "conversation":
          if (msg.ticket) showConversation(msg.ticket);
          break;
        case "message":
          if (msg.message) addMessage(msg.ticket_id, msg.message);
          break;
        case "error":
          notice(String(msg.text || "Something went wrong."));
          break;
        default:
          break;
      }
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === 4401) { window.location.assign("/agent/login"); return; }
      setConnection("Reconnecting…", false);
      var delay = Math.min(10000, 500 * Math.pow(2, attempt++)) * (0.75 + Math.random() * 0.5);
      setTimeout(connect, delay);
    };
  }

  function loadAgents() {
    return api("GET", "/agent/api/agents").then(function (data) {
      (data.agents || []).forEach(function (a) { namesByUsername[a.username] = a.name; });
      agents = (data.agents || []).filter(function (a) { return a.id !== me.id; });
      if (current) renderMessages();
      if (current) renderTransferMenu();
    });
  }

  function start() {
    ConsoleKit.signedIn(api).then(function (data) {
      me = data.user;
      $("me").textContent = me.name + (me.role === "lead" ? " (lead)" : "");
      connect();
      return loadAgents();
    }).catch(function (err) { setConnection(err.message, false); });
    // Waiting times tick on between server updates.
    setInterval(function () { if (me) { renderQueue(); if (current) renderHead(); } }, 30000);
  }

  start();
})();
