/*
 * Lead console, analytics: reads GET /admin/api/analytics for the chosen period and draws every figure
 * as an inline SVG chart built with DOM APIs (no library), with its numbers in a table and a CSV link.
 * All data is rendered with textContent / createElement, never as HTML.
 */
(function () {
  "use strict";

  var $ = ConsoleKit.$, el = ConsoleKit.el, svg = ConsoleKit.svg;
  var api = ConsoleKit.client({ loginUrl: "/agent/login?next=/admin/analytics" });
  var REASONS = Object.assign({ unknown: "Unknown (no ticket)" }, ConsoleKit.HANDOFF_REASONS);
  var TOP_INTENTS = 12;
  var loading = 0;

  function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"; }
  function num(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function plural(n, one, many) { return num(n) + " " + (n === 1 ? one : many); }

  function alertBox(text) {
    var box = $("alert");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // ------------------------------------------------------------------ charts

  function chartSvg(width, height, label) {
    return svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": label,
                        preserveAspectRatio: "xMidYMid meet", "class": "svg-chart" });
  }

  function empty(container, text) {
    container.appendChild(el("p", "empty", text));
  }

  /* A round top for a count axis, so that its middle tick is a whole number too. */
  function countMax(items) {
    var max = Math.max.apply(null, items.map(function (i) { return i.value || 0; }).concat([1]));
    if (max <= 2) return 2;
    if (max <= 10) return Math.ceil(max / 2) * 2;
    var step = Math.pow(10, Math.floor(Math.log10(max)) - 1) * 2;
    return Math.ceil(max / step) * step;
  }

  /* Vertical bars: items [{label, value, title, cls}]; opts {max, format, label, every, width}. */
  function columns(container, items, opts) {
    // a wide chart takes the width it is given, so that its text keeps its size on small screens
    var W = opts.width ? Math.max(480, Math.min(opts.width, container.clientWidth || opts.width)) : 640;
    var H = 230, left = 44, right = 8, top = 12, bottom = 42;
    var max = opts.max || countMax(items);
    var chart = chartSvg(W, H, opts.label);
    var plotW = W - left - right, plotH = H - top - bottom;
    var slot = plotW / Math.max(items.length, 1);
    var barW = Math.max(Math.min(slot * 0.72, 48), 1);
    var format = opts.format || num;
    [0, 0.5, 1].forEach(function (f) {
      var y = top + plotH - f * plotH;
      chart.appendChild(svg("line", { x1: left, x2: W - right, y1: y, y2: y, "class": "grid" }));
      chart.appendChild(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "class": "axis" }, format(max * f)));
    });
    var every = opts.every || Math.max(1, Math.ceil(items.length / 12));
    items.forEach(function (item, i) {
      var value = item.value || 0;
      var h = max > 0 ? (value / max) * plotH : 0;
      var x = left + i * slot + (slot - barW) / 2;
      var bar = svg("rect", { x: x, y: top + plotH - h, width: barW, height: Math.max(h, value > 0 ? 1 : 0),
                              rx: 2, "class": "bar " + (item.cls || "") });
      bar.appendChild(svg("title", {}, item.title || (item.label + ": " + format(value))));
      chart.appendChild(bar);
      if (i % every === 0) {
        chart.appendChild(svg("text", { x: left + i * slot + slot / 2, y: H - bottom + 16, "text-anchor": "middle",
                                        "class": "axis" }, item.label));
      }
    });
    if (opts.caption) {
      chart.appendChild(svg("text", { x: left + plotW / 2, y: H - 6, "text-anchor": "middle", "class": "caption" },
                            opts.caption));
    }
    container.appendChild(chart);
  }

  function longest(texts) {
    return texts.reduce(function (m, t) { return Math.max(m, String(t).length); }, 0);
  }

  /* Horizontal bars: items [{label, value, text, cls}] (value relative to opts.max). */
  function bars(container, items, opts) {
    var W = 640, row = 30, top = 6;
    var labelW = Math.min(230, Math.max(90, longest(items.map(function (i) { return i.label; })) * 7.4 + 14));
    var valueW = Math.min(220, Math.max(60, longest(items.map(function (i) { return i.text; })) * 6.6 + 14));
    var H = top * 2 + row * Math.max(items.length, 1);
    var max = opts.max || Math.max.apply(null, items.map(function (i) { return i.value || 0; }).concat([1]));
    var chart = chartSvg(W, H, opts.label);
    var plotW = W - labelW - valueW;
    items.forEach(function (item, i) {
      var y = top + i * row;
      var w = max > 0 ? ((item.value || 0) / max) * plotW : 0;
      chart.appendChild(svg("text", { x: labelW - 8, y: y + row / 2 + 4, "text-anchor": "end", "class": "label" },
                            item.label));
      chart.appendChild(svg("rect", { x: labelW, y: y + 5, width: plotW, height: row - 10, rx: 3, "class": "track" }));
      var bar = svg("rect", { x: labelW, y: y + 5, width: Math.max(w, item.value > 0 ? 2 : 0), height: row - 10,
                              rx: 3, "class": "bar " + (item.cls || "") });
      bar.appendChild(svg("title", {}, item.label + ": " + item.text));
      chart.appendChild(bar);
      chart.appendChild(svg("text", { x: labelW + plotW + 8, y: y + row / 2 + 4, "class": "value" }, item.text));
    });
    container.appendChild(chart);
  }

  /* One bar split into parts [{label, value, cls}], with a legend. */
  function stacked(container, parts, label) {
    var W = 640, H = 70;
    var total = parts.reduce(function (s, p) { return s + (p.value || 0); }, 0);
    var chart = chartSvg(W, H, label);
    var x = 0;
    parts.forEach(function (p) {
      var w = total > 0 ? (p.value / total) * W : 0;
      var rect = svg("rect", { x: x, y: 4, width: w, height: 30, "class": "bar " + p.cls });
      rect.appendChild(svg("title", {}, p.label + ": " + num(p.value) + " (" + pct(total ? p.value / total : null) + ")"));
      chart.appendChild(rect);
      x += w;
    });
    var lx = 0;
    parts.forEach(function (p) {
      chart.appendChild(svg("rect", { x: lx, y: 48, width: 12, height: 12, rx: 2, "class": "bar " + p.cls }));
      var text = p.label + " " + num(p.value) + " (" + pct(total ? p.value / total : null) + ")";
      chart.appendChild(svg("text", { x: lx + 18, y: 58, "class": "label" }, text));
      lx += 30 + text.length * 7;
    });
    container.appendChild(chart);
  }

  function table(container, headers, rows) {
    var t = el("table", "numbers");
    t.appendChild(ConsoleKit.thead(headers));
    var body = el("tbody");
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (cell) { row.appendChild(el("td", null, cell)); });
      body.appendChild(row);
    });
    t.appendChild(body);
    container.appendChild(t);
  }

  // ------------------------------------------------------------------ figures

  function binLabel(b) { return b.low.toFixed(1) + "–" + b.high.toFixed(1); }
  function dayLabel(iso) { return iso.slice(5); }

  var RENDER = {
    conversations_per_day: function (f, parts) {
      parts.headline.textContent = plural(f.total, "conversation", "conversations") + " in this period";
      if (!f.total) return empty(parts.chart, "No conversations in this period.");
      columns(parts.chart, f.days.map(function (d) {
        return { label: dayLabel(d.date), value: d.conversations, title: d.date + ": " + num(d.conversations) };
      }), { label: "Conversations per day", width: 1240 });
      table(parts.table, ["Day", "Conversations"], f.days.map(function (d) { return [d.date, num(d.conversations)]; }));
    },
    containment: function (f, parts) {
      parts.headline.textContent = pct(f.rate) + " contained (" + num(f.contained) + " of " +
        plural(f.conversations, "conversation", "conversations") + ")";
      if (!f.conversations) return empty(parts.chart, "No conversations in this period.");
      stacked(parts.chart, [{ label: "Without a person", value: f.contained, cls: "good" },
                            { label: "Handed to a person", value: f.handed_off, cls: "warn" }], "Containment");
      table(parts.table, ["Conversations", "Contained", "Handed off", "Containment"],
            [[num(f.conversations), num(f.contained), num(f.handed_off), pct(f.rate)]]);
    },
    escalation: function (f, parts) {
      parts.headline.textContent = pct(f.rate) + " handed to a person (" + num(f.handed_off) + " of " +
        plural(f.conversations, "conversation", "conversations") + ")";
      if (!f.by_reason.length) return empty(parts.chart, "No handoffs in this period.");
      bars(parts.chart, f.by_reason.map(function (r) {
        return { label: REASONS[r.reason] || r.reason, value: r.rate, text: pct(r.rate) + " (" + num(r.conversations) + ")",
                 cls: r.reason === "unknown" ? "muted" : "warn" };
      }), { label: "Escalation rate by reason" });
      table(parts.table, ["Reason", "Handed-off conversations", "Rate"], f.by_reason.map(function (r) {
        return [REASONS[r.reason] ? REASONS[r.reason] + " (" + r.reason + ")" : r.reason, num(r.conversations), pct(r.rate)];
      }));
    },
    fallback: function (f, parts) {
      parts.headline.textContent = pct(f.rate) + " of " + plural(f.typed_messages, "typed message", "typed messages") +
        " not understood (" + num(f.fallback_messages) + ")";
      if (!f.typed_messages) return empty(parts.chart, "No typed messages in this period.");
      var top = Math.max.apply(null, f.days.map(function (d) { return d.rate || 0; }).concat([0.05]));
      columns(parts.chart, f.days.map(function (d) {
        return { label: dayLabel(d.date), value: d.rate || 0, cls: "warn",
                 title: d.date + ": " + pct(d.rate) + " (" + num(d.fallback_messages) + " of " + num(d.typed_messages) + ")" };
      }), { label: "Fallback rate per day", max: Math.min(1, top), format: pct });
      table(parts.table, ["Day", "Fallbacks", "Typed messages", "Rate"], f.days.map(function (d) {
        return [d.date, num(d.fallback_messages), num(d.typed_messages), pct(d.rate)];
      }));
    },
    top_intents: function (f, parts) {
      parts.headline.textContent = plural(f.intents.length, "intent", "intents") + " in " +
        plural(f.typed_messages, "typed message", "typed messages");
      if (!f.intents.length) return empty(parts.chart, "No typed messages in this period.");
      bars(parts.chart, f.intents.slice(0, TOP_INTENTS).map(function (i) {
        return { label: i.intent, value: i.count, text: num(i.count) + " (" + pct(i.share) + ")",
                 cls: i.intent === "nlu_fallback" ? "warn" : "" };
      }), { label: "Top intents" });
      table(parts.table, ["Intent", "Messages", "Share"], f.intents.map(function (i) {
        return [i.intent, num(i.count), pct(i.share)];
      }));
    },
    confidence: function (f, parts) {
      var low = f.bins.filter(function (b) { return b.high <= 0.7; }).reduce(function (s, b) { return s + b.count; }, 0);
      parts.headline.textContent = num(low) + " of " + plural(f.with_confidence, "message", "messages") +
        " below 0.7 confidence";
      if (!f.with_confidence) return empty(parts.chart, "No typed messages in this period.");
      columns(parts.chart, f.bins.map(function (b) {
        return { label: binLabel(b), value: b.count, cls: b.high <= 0.4 ? "warn" : "",
                 title: binLabel(b) + ": " + num(b.count) + " (" + pct(b.share) + ")" };
      }), { label: "Confidence distribution", every: 1, caption: "top confidence" });
      table(parts.table, ["Confidence", "Messages", "Share"], f.bins.map(function (b) {
        return [binLabel(b), num(b.count), pct(b.share)];
      }));
    },
    funnel: function (f, parts) {
      parts.headline.textContent = num(f.searches) + " searches → " + num(f.card_clicks) + " card clicks → " +
        num(f.add_to_carts) + " add-to-carts";
      if (!f.searches && !f.card_clicks && !f.add_to_carts) return empty(parts.chart, "No searches in this period.");
      var max = Math.max(f.searches, f.card_clicks, f.add_to_carts, 1);
      bars(parts.chart, [
        { label: "Searches", value: f.searches, text: num(f.searches) },
        { label: "Card clicks", value: f.card_clicks, text: num(f.card_clicks) + " (" + pct(f.click_rate) + " of searches)" },
        { label: "Add-to-carts", value: f.add_to_carts, cls: "good",
          text: num(f.add_to_carts) + " (" + pct(f.add_rate) + " of clicks)" }
      ], { label: "Search funnel", max: max });
      table(parts.table, ["Step", "Events", "Conversations", "Rate"], [
        ["Searches", num(f.searches), num(f.conversations.searched), ""],
        ["Card clicks", num(f.card_clicks), num(f.conversations.clicked), pct(f.click_rate) + " of searches"],
        ["Add-to-carts", num(f.add_to_carts), num(f.conversations.added), pct(f.add_rate) + " of clicks"],
        ["Search to cart", "", "", pct(f.search_to_cart_rate)]
      ]);
    },
    satisfaction: function (f, parts) {
      parts.headline.textContent = f.average === null ? "No rated chats in this period" :
        f.average.toFixed(2) + " / 5 from " + plural(f.rated_chats, "rated chat", "rated chats");
      if (!f.rated_chats) return empty(parts.chart, "Shoppers rate a chat after an agent resolves it.");
      columns(parts.chart, f.by_rating.map(function (r) {
        return { label: r.rating + " ★", value: r.count, cls: r.rating <= 2 ? "warn" : r.rating >= 4 ? "good" : "",
                 title: r.rating + " of 5: " + num(r.count) };
      }), { label: "Ratings", every: 1 });
      table(parts.table, ["Rating", "Chats"], f.by_rating.map(function (r) { return [r.rating + " of 5", num(r.count)]; })
        .concat([["Average", f.average.toFixed(2)]]));
    },
    sentiment: function (f, parts) {
      var neg = f.classes[0];
      parts.headline.textContent = pct(neg.share) + " negative of " + plural(f.scored, "scored message", "scored messages") +
        (f.unscored ? " (" + num(f.unscored) + " without a score)" : "");
      if (!f.scored) return empty(parts.chart, "No scored messages in this period.");
      var cls = { negative: "warn", neutral: "muted", positive: "good" };
      stacked(parts.chart, f.classes.map(function (c) {
        return { label: c.label.charAt(0).toUpperCase() + c.label.slice(1), value: c.count, cls: cls[c.label] };
      }), "Sentiment classes");
      columns(parts.chart, f.bins.map(function (b) {
        return { label: binLabel(b), value: b.count, cls: b.high <= 0 ? "warn" : b.low >= 0.2 ? "good" : "muted",
                 title: binLabel(b) + ": " + num(b.count) + " (" + pct(b.share) + ")" };
      }), { label: "Sentiment histogram", every: 1, caption: "sentiment score" });
      table(parts.table, ["Group", "Messages", "Share"], f.classes.map(function (c) {
        return [c.label, num(c.count), pct(c.share)];
      }).concat(f.bins.map(function (b) { return [binLabel(b), num(b.count), pct(b.share)]; })));
    }
  };

  function render(report) {
    var query = "?since=" + encodeURIComponent(report.since) + "&until=" + encodeURIComponent(report.until);
    Array.prototype.forEach.call(document.querySelectorAll("[data-figure]"), function (section) {
      var name = section.getAttribute("data-figure");
      var parts = {
        headline: section.querySelector("[data-role=headline]"),
        chart: section.querySelector("[data-role=chart]"),
        table: section.querySelector("[data-role=table]")
      };
      parts.chart.textContent = "";
      parts.table.textContent = "";
      var link = section.querySelector("a.csv");
      link.href = "/admin/analytics/" + name + ".csv" + query;
      link.setAttribute("download", "analytics-" + name + "-" + report.since + "-to-" + report.until + ".csv");
      link.setAttribute("aria-label", "Download " + section.querySelector("h2").textContent + " as CSV");
      if (report[name]) RENDER[name](report[name], parts);
      section.classList.add("ready");
    });
  }

  // ------------------------------------------------------------------ latest conversations
  // GET /admin/api/analytics/conversations: ids, times, counts and outcome (no message text); each row can be
  // saved as a conversation test (POST /admin/api/conversation-tests, origin "analytics").

  var RECENT = 50;

  function recentNotice(text, ok) {
    var box = $("recent-notice");
    box.textContent = text || "";
    box.className = "notice" + (ok ? " ok" : " error");
    box.hidden = !text;
  }

  function timeText(iso) { return iso ? iso.replace("T", " ").replace("Z", "") : "–"; }

  function saveAsTest(conversationId) {
    var name = window.prompt("Name of the conversation test:", "");
    if (name === null || !name.trim()) return;
    recentNotice("");
    api("POST", "/admin/api/conversation-tests", { conversation_id: conversationId, name: name.trim(), origin: "analytics" })
      .then(function (saved) {
        recentNotice("Saved the conversation as test \u201c" + saved.name + "\u201d (" +
                     plural(saved.turns.length, "turn", "turns") + ").", true);
      })
      .catch(function (err) { recentNotice(err.message); });
  }

  function renderRecent(data) {
    var box = document.querySelector("[data-role=recent]");
    box.textContent = "";
    $("recent-total").textContent = data.total > data.conversations.length ?
      num(data.conversations.length) + " of " + plural(data.total, "conversation", "conversations") :
      plural(data.total, "conversation", "conversations");
    if (!data.conversations.length) return empty(box, "No conversations in this period.");
    var t = el("table", "numbers recent");
    t.appendChild(ConsoleKit.thead(
      ["Conversation", "Started (UTC)", "Last message (UTC)", "Shopper messages", "Fallbacks", "Outcome", "Rating", ""]));
    var body = el("tbody");
    data.conversations.forEach(function (c) {
      var tr = el("tr");
      tr.setAttribute("data-testid", "conversation-row");
      tr.setAttribute("data-conversation-id", c.conversation_id);
      var id = el("td", "conversation-id", c.conversation_id);
      id.title = c.conversation_id;
      tr.appendChild(id);
      tr.appendChild(el("td", null, timeText(c.started_at)));
      tr.appendChild(el("td", null, timeText(c.last_at)));
      tr.appendChild(el("td", null, num(c.shopper_messages) + (c.typed_messages !== c.shopper_messages ?
        " (" + num(c.typed_messages) + " typed)" : "")));
      tr.appendChild(el("td", c.fallback_messages ? "warn" : null, num(c.fallback_messages)));
      var outcome = el("td", c.handed_off ? "warn" : "good",
                       c.handed_off ? "Handed off: " + (REASONS[c.reason] || c.reason) : "Contained");
      outcome.setAttribute("data-testid", "conversation-outcome");
      tr.appendChild(outcome);
      tr.appendChild(el("td", null, c.rating ? c.rating + " / 5" : "–"));
      var cell = el("td");
      var btn = el("button", null, "Save as test");
      btn.type = "button";
      btn.setAttribute("data-testid", "conversation-save-test");
      btn.setAttribute("aria-label", "Save conversation " + c.conversation_id + " as a test");
      btn.addEventListener("click", function () { saveAsTest(c.conversation_id); });
      cell.appendChild(btn);
      tr.appendChild(cell);
      body.appendChild(tr);
    });
    t.appendChild(body);
    box.appendChild(t);
  }

  function loadRecent(since, until, ticket) {
    var query = "?since=" + encodeURIComponent(since) + "&until=" + encodeURIComponent(until) + "&limit=" + RECENT;
    return api("GET", "/admin/api/analytics/conversations" + query).then(function (data) {
      if (ticket !== loading) return;
      renderRecent(data);
    }).catch(function (err) {
      if (ticket === loading) recentNotice(err.message);
    });
  }

  // ------------------------------------------------------------------ period

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  function load(since, until) {
    var ticket = ++loading;
    alertBox("");
    $("status").textContent = "Loading…";
    var query = [];
    if (since) query.push("since=" + encodeURIComponent(since));
    if (until) query.push("until=" + encodeURIComponent(until));
    return api("GET", "/admin/api/analytics" + (query.length ? "?" + query.join("&") : "")).then(function (report) {
      if (ticket !== loading) return;
      $("since").value = report.since;
      $("until").value = report.until;
      window.history.replaceState(null, "", "/admin/analytics?since=" + report.since + "&until=" + report.until);
      render(report);
      recentNotice("");
      loadRecent(report.since, report.until, ticket);
      $("status").textContent = "Showing " + report.since + " to " + report.until + " (UTC).";
      document.body.setAttribute("data-loaded", report.since + "/" + report.until);
    }).catch(function (err) {
      if (ticket !== loading) return;
      $("status").textContent = "";
      alertBox(err.message);
    });
  }

  function lastDays(n) {
    var until = new Date();
    var since = new Date(until.getTime() - (n - 1) * 86400000);
    return load(isoDay(since), isoDay(until));
  }

  function start() {
    $("period").addEventListener("submit", function (e) {
      e.preventDefault();
      var since = $("since").value, until = $("until").value;
      if (!since || !until) { alertBox("Pick both dates (From and To)."); return; }
      if (since > until) { alertBox("The From date is after the To date."); return; }
      load(since, until);
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-days]"), function (b) {
      b.addEventListener("click", function () { lastDays(Number(b.getAttribute("data-days"))); });
    });
    ConsoleKit.wireLogout(api);
    ConsoleKit.signedIn(api).then(function (data) {
      $("me").textContent = data.user && data.user.name ? data.user.name : "";
    }).catch(function (err) { alertBox(err.message); });
    var params = new URLSearchParams(window.location.search);
    load(params.get("since"), params.get("until"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
