/*!
 * shop-assistant chat widget
 *
 * Embed on any page with:
 *   <script src="https://assistant.example.com/widget.js" defer></script>
 *
 * Optional data attributes on the <script> tag:
 *   data-title  header title (default "Shop assistant")
 *   data-token  signed customer token (JWT from the shop); sent in the socket's
 *               "hello" frame, never in the URL. Also: ShopAssistant.setToken(t)
 *               (null signs out).
 *   data-open   "true" to start with the panel open
 *
 * Plain ES2019, no dependencies. All message content is rendered with
 * textContent / createElement; innerHTML is only used for static icons.
 */
(function () {
  "use strict";

  if (window.ShopAssistant && window.ShopAssistant.__sa) {
    return; // already loaded on this page
  }

  // ---------------------------------------------------------------------------
  // Configuration (must be read synchronously while currentScript is set)
  // ---------------------------------------------------------------------------

  var SCRIPT = document.currentScript || findScriptTag();

  function findScriptTag() {
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (/\/widget\.js(\?|#|$)/.test(scripts[i].src || "")) return scripts[i];
    }
    return null;
  }

  function scriptOrigin() {
    try {
      if (SCRIPT && SCRIPT.src) return new URL(SCRIPT.src, window.location.href).origin;
    } catch (e) { /* fall through */ }
    return window.location.origin;
  }

  function attr(name) {
    return SCRIPT ? SCRIPT.getAttribute(name) : null;
  }

  var ORIGIN = scriptOrigin();
  var TITLE = (attr("data-title") || "").trim() || "Shop assistant";
  var token = (attr("data-token") || "").trim();
  var START_OPEN = (attr("data-open") || "").trim().toLowerCase() === "true";

  var KEY_CONV = "sa.conversation_id";
  var KEY_TRANSCRIPT_PREFIX = "sa.transcript.";
  var KEY_OPEN = "sa.open";
  var KEY_IDENTITY = "sa.identity"; // customer id ("sub") of the last signed-in shopper, "" for a guest
  var MAX_TRANSCRIPT = 200;
  var MAX_QUEUE = 50;
  var MAX_INPUT = 1000;
  var MAX_PRODUCTS = 24;
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var TYPING_SAFETY_MS = 60000;
  // Close codes after which we do not retry on our own (bad/expired token,
  // policy violation). The next send or open() tries again.
  var FATAL_CLOSE_CODES = [1008, 4401, 4403];
  // 4403: the assistant does not accept this page's origin (SHOP_ALLOWED_ORIGINS). Retrying cannot help,
  // so the widget says so and stops, instead of "Reconnecting…" forever.
  var REFUSED_CLOSE_CODE = 4403;
  var REFUSED_TEXT = "Sorry, the chat isn't available on this website: the shop's assistant doesn't accept " +
    "connections from this page. Please contact the shop another way.";
  var REFUSED_STATUS = "Not available on this page";

  // ---------------------------------------------------------------------------
  // Storage helpers (storage may be unavailable or full: never throw)
  // ---------------------------------------------------------------------------

  function storageGet(store, key) {
    try { return window[store].getItem(key); } catch (e) { return null; }
  }
  function storageSet(store, key, value) {
    try { window[store].setItem(key, value); } catch (e) { /* ignore */ }
  }
  function storageRemove(store, key) {
    try { window[store].removeItem(key); } catch (e) { /* ignore */ }
  }

  function randomId() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try { return c.randomUUID(); } catch (e) { /* insecure context */ }
    }
    var bytes = new Array(16);
    if (c && typeof c.getRandomValues === "function") {
      var arr = new Uint8Array(16);
      c.getRandomValues(arr);
      for (var i = 0; i < 16; i++) bytes[i] = arr[i];
    } else {
      for (var j = 0; j < 16; j++) bytes[j] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = bytes.map(function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function loadConversationId() {
    var id = storageGet("localStorage", KEY_CONV);
    if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
      id = randomId();
      storageSet("localStorage", KEY_CONV, id);
    }
    return id;
  }

  var conversationId = loadConversationId();
  var transcript = [];
  var entrySeq = 0;

  function transcriptKey() { return KEY_TRANSCRIPT_PREFIX + conversationId; }

  function loadTranscript() {
    var raw = storageGet("localStorage", transcriptKey());
    if (!raw) return [];
    try {
      var data = JSON.parse(raw);
      if (!Array.isArray(data)) return [];
      return data.map(sanitizeEntry).filter(Boolean).slice(-MAX_TRANSCRIPT);
    } catch (e) {
      return [];
    }
  }

  function saveTranscript() {
    if (transcript.length > MAX_TRANSCRIPT) transcript = transcript.slice(-MAX_TRANSCRIPT);
    storageSet("localStorage", transcriptKey(), JSON.stringify(transcript));
  }

  function newEntryId() {
    entrySeq += 1;
    return Date.now().toString(36) + "-" + entrySeq.toString(36) + "-" +
      Math.floor(Math.random() * 1e6).toString(36);
  }

  // ---------------------------------------------------------------------------
  // Data sanitizing: everything stored / rendered goes through these
  // ---------------------------------------------------------------------------

  function str(v, max) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") return "";
    var s = String(v);
    return max && s.length > max ? s.slice(0, max) : s;
  }

  function num(v) {
    if (typeof v === "number") return isFinite(v) ? v : null;
    if (typeof v === "string" && v.trim() !== "" && isFinite(Number(v))) return Number(v);
    return null;
  }

  // Only http(s) URLs or relative URLs (resolved against the widget origin,
  // since the widget may be embedded on another site) are accepted.
  function hasControlChar(s) {
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c < 0x20 || c === 0x7f) return true;
    }
    return false;
  }

  function safeUrl(u) {
    if (typeof u !== "string") return null;
    var s = u.trim();
    if (!s || s.length > 2048 || hasControlChar(s)) return null;
    var hasScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s);
    if (hasScheme && !/^https?:/i.test(s)) return null;
    try {
      var url = new URL(s, ORIGIN + "/");
      if (url.protocol !== "http:" && url.protocol !== "https:") return null;
      return url.href;
    } catch (e) {
      return null;
    }
  }

  function sanitizeButtons(list) {
    if (!Array.isArray(list)) return [];
    var out = [];
    for (var i = 0; i < list.length && out.length < 12; i++) {
      var b = list[i];
      if (!b || typeof b !== "object") continue;
      var title = str(b.title, 200).trim();
      var payload = str(b.payload, 1000);
      if (!title && !payload) continue;
      out.push({ title: title || payload, payload: payload });
    }
    return out;
  }

  function sanitizeProduct(p) {
    if (!p || typeof p !== "object") return null;
    var title = str(p.title, 300).trim();
    if (!title) return null;
    return {
      id: str(p.id, 200),
      title: title,
      brand: str(p.brand, 200),
      price: num(p.price),
      currency: str(p.currency, 8).trim().toUpperCase(),
      rating: num(p.rating),
      stock: typeof p.stock === "boolean" ? p.stock : num(p.stock),
      image: safeUrl(p.image),
      reason: str(p.reason, 500),
      url: safeUrl(p.url),
      buttons: sanitizeButtons(p.buttons)
    };
  }

  function sanitizeLineButtons(list) {
    return sanitizeButtons(list).map(function (b, i) {
      var text = str(list[i] && list[i].text, 300).trim();
      return { title: b.title, payload: b.payload, text: text || b.title };
    });
  }

  function sanitizeCart(c) {
    if (!c || typeof c !== "object" || !Array.isArray(c.lines)) return null;
    var lines = [];
    for (var i = 0; i < c.lines.length && lines.length < 50; i++) {
      var l = c.lines[i];
      if (!l || typeof l !== "object") continue;
      var title = str(l.title, 300).trim();
      var qty = num(l.quantity);
      if (!title || qty === null) continue;
      lines.push({
        product_id: str(l.product_id, 64),
        title: title,
        variant: str(l.variant, 200),
        quantity: Math.max(0, Math.floor(qty)),
        total: num(l.total),
        total_label: str(l.total_label, 40),
        image: safeUrl(l.image),
        url: safeUrl(l.url),
        buttons: Array.isArray(l.buttons) ? sanitizeLineButtons(l.buttons) : []
      });
    }
    var count = num(c.item_count);
    return {
      type: "cart",
      item_count: count === null ? 0 : Math.max(0, Math.floor(count)),
      currency: str(c.currency, 8).trim().toUpperCase(),
      total: num(c.total),
      total_label: str(c.total_label, 40),
      shipping_note: str(c.shipping_note, 500),
      checkout_url: safeUrl(c.checkout_url),
      lines: lines
    };
  }

  // Turn one Rasa REST-channel output object into a transcript entry (or null).
  function entryFromBotMessage(m) {
    if (!m || typeof m !== "object") return null;
    var e = { id: newEntryId(), role: "bot" };
    var text = str(m.text, 20000);
    if (text) e.text = text;
    var buttons = sanitizeButtons(m.buttons);
    if (buttons.length) { e.buttons = buttons; e.used = false; }
    var image = safeUrl(m.image);
    if (image) e.image = image;
    var c = m.custom;
    if (c && typeof c === "object" && c.type === "product_cards" && Array.isArray(c.products)) {
      var products = c.products.slice(0, MAX_PRODUCTS).map(sanitizeProduct).filter(Boolean);
      if (products.length) e.products = products;
    }
    if (c && typeof c === "object" && c.type === "cart") {
      var cartData = sanitizeCart(c);
      if (cartData) e.cart = cartData;
    }
    // Unknown custom types (and empty messages) are ignored.
    if (!e.text && !e.buttons && !e.image && !e.products && !e.cart) return null;
    return e;
  }

  function sanitizeEntry(e) {
    if (!e || typeof e !== "object") return null;
    if (e.role === "user" || e.role === "system") {
      var t = str(e.text, 20000);
      return t ? { id: str(e.id, 64) || newEntryId(), role: e.role, text: t } : null;
    }
    if (e.role === "agent") return agentEntry(e);
    if (e.role === "rating") return ratingEntry(e);
    if (e.role === "bot") {
      var out = entryFromBotMessage({
        text: e.text,
        buttons: e.buttons,
        image: e.image,
        custom: Array.isArray(e.products) ? { type: "product_cards", products: e.products } :
          (e.cart && typeof e.cart === "object" ? Object.assign({}, e.cart, { type: "cart" }) : null)
      });
      if (!out) return null;
      out.id = str(e.id, 64) || out.id;
      if (out.buttons) out.used = e.used === true;
      return out;
    }
    return null;
  }

  // A person's message (live handoff): text and the agent's name.
  function agentEntry(m) {
    var text = str(m && m.text, 20000);
    if (!text) return null;
    return { id: str(m.id, 64) || newEntryId(), role: "agent", text: text, name: str(m.name, 120).trim() || "Agent" };
  }

  // The 1-5 rating request after an agent resolved the chat; `rated` is the chosen number (0: not yet).
  function ratingEntry(m) {
    var ticket = num(m && m.ticket_id);
    if (ticket === null || ticket < 1) return null;
    var rated = num(m.rated);
    return {
      id: str(m.id, 64) || newEntryId(), role: "rating", ticket_id: Math.floor(ticket),
      text: str(m.text, 500).trim() || "How did we do? Rate this chat from 1 (poor) to 5 (great).",
      rated: rated !== null && rated >= 1 && rated <= 5 ? Math.floor(rated) : 0
    };
  }

  // ---------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------

  function locale() {
    return (document.documentElement && document.documentElement.lang) ||
      (navigator.languages && navigator.languages[0]) || navigator.language || "en-US";
  }

  function formatPrice(price, currency) {
    if (price === null || price === undefined) return "";
    if (currency && /^[A-Z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(locale(), { style: "currency", currency: currency }).format(price);
      } catch (e) { /* unknown locale or currency: fall back */ }
    }
    return price.toFixed(2) + (currency ? " " + currency : "");
  }

  function stockInfo(stock) {
    if (stock === null || stock === undefined) return null;
    if (stock === true) return { text: "In stock", cls: "sa-stock-in" };
    if (stock === false || stock <= 0) return { text: "Out of stock", cls: "sa-stock-out" };
    if (stock <= 5) return { text: "Only " + Math.floor(stock) + " left", cls: "sa-stock-low" };
    return { text: "In stock", cls: "sa-stock-in" };
  }

  // ---------------------------------------------------------------------------
  // CSS (static, no data)
  // ---------------------------------------------------------------------------

  // The stylesheet is /widget.css next to this script: a strict Content-Security-Policy allows no inline styles.
  var CSS_URL = ORIGIN + "/widget.css";

  // Static icons (no data).
  var ICON_CHAT = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"/><path d="M8.5 10.5h7M8.5 13.5h4.5"/></svg>';
  var ICON_CLOSE = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" aria-hidden="true" focusable="false"><path d="M6 6l12 12M18 6L6 18"/></svg>';
  var ICON_SEND = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M5 12h13M12 5l7 7-7 7"/></svg>';
  var ICON_BAG = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M6 7h12l-1 13H7L6 7z"/><path d="M9 7a3 3 0 0 1 6 0"/></svg>';

  // ---------------------------------------------------------------------------
  // DOM helpers
  // ---------------------------------------------------------------------------

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null && text !== "") n.textContent = text;
    return n;
  }

  function setAttrs(n, attrs) {
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) n.setAttribute(k, attrs[k]);
    }
    return n;
  }

  // Append text to a node, turning bare http(s) URLs into safe links.
  function appendLinkified(node, text) {
    var re = /https?:\/\/[^\s<>"']+/g;
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      var raw = m[0];
      var trail = raw.match(/[).,;:!?\]]+$/);
      if (trail) raw = raw.slice(0, raw.length - trail[0].length);
      var href = safeUrl(raw);
      if (!href) continue;
      if (m.index > last) node.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el("a", null, raw);
      setAttrs(a, { href: href, target: "_blank", rel: "noopener noreferrer nofollow" });
      node.appendChild(a);
      last = m.index + raw.length;
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  // ---------------------------------------------------------------------------
  // Widget state
  // ---------------------------------------------------------------------------

  var ui = null;           // DOM references, set by build()
  var isOpen = false;
  var ws = null;
  var connected = false;
  var everTried = false;
  var attempt = 0;
  var reconnectTimer = null;
  var autoReconnect = true;
  var refused = false;     // the gateway refused this page's origin (close 4403): no more attempts
  var outbox = [];
  var typingTimer = null;
  var pending = [];        // API calls made before the DOM was ready
  var handoffStatus = "";  // "Waiting for a person…" / "Chatting with NAME" while a person handles the chat
  var handoffState = "bot"; // "bot" | "queued" | "agent"

  // ---------------------------------------------------------------------------
  // Build DOM
  // ---------------------------------------------------------------------------

  function build() {
    var root = el("div", "sa-root");
    root.id = "sa-root";
    if (!document.getElementById("sa-style")) {
      var style = document.createElement("link");
      style.id = "sa-style";
      style.rel = "stylesheet";
      style.href = CSS_URL;
      root.hidden = true; // shown once styled (or if the stylesheet cannot load)
      style.addEventListener("load", function () { root.hidden = false; });
      style.addEventListener("error", function () { root.hidden = false; });
      (document.head || document.documentElement).appendChild(style);
    }

    // Bubble
    var bubble = el("button", "sa-bubble");
    setAttrs(bubble, {
      type: "button",
      "data-testid": "sa-bubble",
      "aria-label": "Open " + TITLE + " chat",
      "aria-expanded": "false",
      "aria-controls": "sa-panel",
      "aria-haspopup": "dialog"
    });
    bubble.innerHTML = ICON_CHAT.replace("<svg", '<svg class="sa-icon-chat"') +
      ICON_CLOSE.replace("<svg", '<svg class="sa-icon-close"');
    var badge = el("span", "sa-badge");
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    bubble.appendChild(badge);

    // Panel
    var panel = el("div", "sa-panel");
    panel.id = "sa-panel";
    panel.hidden = true;
    setAttrs(panel, { role: "dialog", "aria-label": TITLE, "aria-modal": "false", "data-testid": "sa-panel" });

    var header = el("div", "sa-header");
    var avatar = el("span", "sa-avatar");
    avatar.innerHTML = ICON_BAG;
    avatar.setAttribute("aria-hidden", "true");
    var heading = el("div", "sa-heading");
    var title = el("h2", "sa-title", TITLE);
    var status = el("span", "sa-status");
    setAttrs(status, { role: "status", "aria-live": "polite", "data-testid": "sa-status" });
    heading.appendChild(title);
    heading.appendChild(status);
    var closeBtn = el("button", "sa-close");
    setAttrs(closeBtn, { type: "button", "aria-label": "Close chat", "data-testid": "sa-close" });
    closeBtn.innerHTML = ICON_CLOSE;
    header.appendChild(avatar);
    header.appendChild(heading);
    header.appendChild(closeBtn);

    var log = el("div", "sa-log");
    setAttrs(log, { role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Conversation", "data-testid": "sa-log" });

    var empty = el("div", "sa-empty");
    empty.appendChild(el("strong", null, "Hi there!"));
    empty.appendChild(el("span", null, "Tell me what you're looking for and I'll find products that fit."));

    var typingWrap = el("div", "sa-typing-wrap");
    var typing = el("div", "sa-typing");
    typing.hidden = true;
    setAttrs(typing, { "data-testid": "sa-typing", role: "status", "aria-label": "Assistant is typing" });
    typing.appendChild(el("span", "sa-dot"));
    typing.appendChild(el("span", "sa-dot"));
    typing.appendChild(el("span", "sa-dot"));
    typing.appendChild(el("span", "sa-sr", "Assistant is typing…"));
    typingWrap.appendChild(typing);

    var form = el("form", "sa-form");
    form.setAttribute("novalidate", "");
    var input = el("input", "sa-input");
    setAttrs(input, {
      type: "text",
      "data-testid": "sa-input",
      "aria-label": "Message " + TITLE,
      placeholder: "Ask about products…",
      autocomplete: "off",
      maxlength: String(MAX_INPUT),
      enterkeyhint: "send"
    });
    var send = el("button", "sa-send");
    setAttrs(send, { type: "submit", "data-testid": "sa-send", "aria-label": "Send message" });
    send.innerHTML = ICON_SEND;
    form.appendChild(input);
    form.appendChild(send);

    panel.appendChild(header);
    panel.appendChild(log);
    panel.appendChild(typingWrap);
    panel.appendChild(form);

    root.appendChild(panel);
    root.appendChild(bubble);
    document.body.appendChild(root);

    ui = {
      root: root, bubble: bubble, badge: badge, panel: panel, status: status, closeBtn: closeBtn,
      log: log, empty: empty, typing: typing, form: form, input: input, send: send
    };

    bubble.addEventListener("click", function () {
      if (isOpen) closePanel(true); else openPanel(true);
    });
    closeBtn.addEventListener("click", function () { closePanel(true); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      submitInput();
    });
    root.addEventListener("keydown", function (ev) {
      if ((ev.key === "Escape" || ev.key === "Esc") && isOpen) {
        ev.preventDefault();
        ev.stopPropagation();
        closePanel(true);
      }
    });
    window.addEventListener("storage", onStorage);
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") reconnectNow();
    });
  }

  // ---------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------

  function renderAll() {
    var log = ui.log;
    while (log.firstChild) log.removeChild(log.firstChild);
    if (!transcript.length) {
      log.appendChild(ui.empty);
      return;
    }
    for (var i = 0; i < transcript.length; i++) log.appendChild(renderEntry(transcript[i]));
    scrollToBottom(true);
  }

  function renderEntry(e) {
    if (e.role === "user") {
      var urow = el("div", "sa-row sa-row-user");
      urow.appendChild(el("div", "sa-msg sa-msg-user", e.text));
      return urow;
    }
    if (e.role === "system") {
      var srow = el("div", "sa-row sa-row-system");
      srow.appendChild(el("div", "sa-msg sa-msg-system", e.text));
      return srow;
    }
    if (e.role === "agent") {
      var arow = el("div", "sa-row sa-row-agent");
      arow.appendChild(el("div", "sa-agent-name", e.name));
      var abubble = el("div", "sa-msg sa-msg-agent");
      appendLinkified(abubble, e.text);
      arow.appendChild(abubble);
      return arow;
    }
    if (e.role === "rating") return renderRating(e);
    var row = el("div", "sa-row sa-row-bot");
    row.setAttribute("data-entry", e.id);
    if (e.text) {
      var bubble = el("div", "sa-msg sa-msg-bot");
      appendLinkified(bubble, e.text);
      row.appendChild(bubble);
    }
    if (e.image) {
      var img = el("img", "sa-msg-image");
      setAttrs(img, { src: e.image, alt: "Image from the assistant", loading: "lazy", referrerpolicy: "no-referrer" });
      img.addEventListener("error", function () { img.hidden = true; });
      row.appendChild(img);
    }
    if (e.products) row.appendChild(renderCarousel(e.products));
    if (e.cart) row.appendChild(renderCart(e.cart, e.id === latestCartId()));
    if (e.buttons) row.appendChild(renderQuickReplies(e));
    return row;
  }

  // "How did we do?" with five buttons; the choice goes to the gateway over the socket.
  function renderRating(e) {
    var box = el("div", "sa-row sa-rating");
    setAttrs(box, { role: "group", "aria-label": "Rate this chat", "data-testid": "sa-rating", "data-entry": e.id });
    box.appendChild(el("div", null, e.text));
    var group = el("div", "sa-rating-buttons");
    var buttons = [];
    for (var n = 1; n <= 5; n++) {
      (function (value) {
        var btn = el("button", "sa-rating-btn" + (e.rated === value ? " sa-chosen" : ""), String(value));
        btn.type = "button";
        setAttrs(btn, { "aria-label": "Rate " + value + " out of 5", "aria-pressed": e.rated === value ? "true" : "false" });
        btn.disabled = e.rated > 0;
        btn.addEventListener("click", function () {
          if (e.rated) return;
          e.rated = value;
          saveTranscript();
          buttons.forEach(function (b, i) {
            b.disabled = true;
            if (i + 1 === value) { b.classList.add("sa-chosen"); b.setAttribute("aria-pressed", "true"); }
          });
          transmit({ type: "rating", ticket_id: e.ticket_id, rating: value });
        });
        buttons.push(btn);
        group.appendChild(btn);
      })(n);
    }
    box.appendChild(group);
    return box;
  }

  function latestCartId() {
    for (var i = transcript.length - 1; i >= 0; i--) {
      if (transcript[i].cart) return transcript[i].id;
    }
    return null;
  }

  function itemsText(n) { return n === 1 ? "1 item" : n + " items"; }

  // The cart card. Only the newest one has working buttons: an older card's quantities are stale.
  function renderCart(c, live) {
    var box = el("div", "sa-cart");
    setAttrs(box, { "data-testid": "sa-cart", role: "group", "aria-label": "Your cart" });
    var head = el("div", "sa-cart-head");
    head.appendChild(el("span", null, "Your cart"));
    head.appendChild(el("span", "sa-cart-count", itemsText(c.item_count)));
    box.appendChild(head);
    if (!c.lines.length) {
      box.appendChild(el("div", "sa-cart-note", "Your cart is empty."));
      return box;
    }
    var list = el("ul", "sa-cart-lines");
    c.lines.forEach(function (l) {
      var li = el("li", "sa-cart-line");
      if (l.product_id) li.setAttribute("data-product-id", l.product_id);
      if (l.image) {
        var img = el("img", "sa-cart-img");
        setAttrs(img, { src: l.image, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
        img.addEventListener("error", function () { img.hidden = true; });
        li.appendChild(img);
      }
      var info = el("div", "sa-cart-info");
      var title;
      if (l.url) {
        title = el("a", "sa-cart-title", l.title);
        setAttrs(title, { href: l.url, target: "_blank", rel: "noopener noreferrer" });
      } else {
        title = el("span", "sa-cart-title", l.title);
      }
      info.appendChild(title);
      if (l.variant) info.appendChild(el("span", "sa-cart-variant", l.variant));
      info.appendChild(el("span", "sa-cart-qty", "Qty " + l.quantity));
      if (l.buttons.length) {
        var actions = el("div", "sa-cart-actions");
        l.buttons.forEach(function (b) {
          var btn = el("button", "sa-cart-btn", b.title);
          btn.type = "button";
          btn.setAttribute("aria-label", b.text);
          btn.disabled = !live;
          btn.addEventListener("click", function () {
            disableCartButtons();
            sendMessage(b.text, b.payload);
          });
          actions.appendChild(btn);
        });
        info.appendChild(actions);
      }
      li.appendChild(info);
      li.appendChild(el("span", "sa-cart-line-total", formatPrice(l.total, c.currency) || l.total_label));
      list.appendChild(li);
    });
    box.appendChild(list);
    var total = el("div", "sa-cart-total");
    total.appendChild(el("span", null, "Total"));
    total.appendChild(el("span", "sa-cart-total-value", formatPrice(c.total, c.currency) || c.total_label));
    box.appendChild(total);
    if (c.shipping_note) box.appendChild(el("div", "sa-cart-note", c.shipping_note));
    if (c.checkout_url) {
      var a = el("a", "sa-cart-checkout", "Checkout");
      setAttrs(a, { href: c.checkout_url, target: "_blank", rel: "noopener noreferrer", "data-testid": "sa-cart-checkout" });
      box.appendChild(a);
    }
    return box;
  }

  function disableCartButtons() {
    if (!ui) return;
    var buttons = ui.log.querySelectorAll(".sa-cart-btn");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
  }

  // Tell the page how many items the cart holds (the demo shop shows it in its header).
  function announceCart(c) {
    try {
      window.dispatchEvent(new CustomEvent("shopassistant:cart", { detail: { itemCount: c.item_count } }));
    } catch (e) { /* old browsers: no event */ }
  }

  function renderQuickReplies(e) {
    var group = el("div", "sa-quick-replies");
    setAttrs(group, { role: "group", "aria-label": "Suggested replies" });
    var buttons = [];
    e.buttons.forEach(function (b) {
      var btn = el("button", "sa-quick-reply", b.title);
      btn.type = "button";
      btn.setAttribute("aria-label", "Reply: " + b.title);
      if (e.used) btn.disabled = true;
      btn.addEventListener("click", function () {
        if (e.used) return;
        e.used = true;
        buttons.forEach(function (x) { x.disabled = true; });
        saveTranscript();
        sendMessage(b.title, b.payload);
        if (ui.input) ui.input.focus();
      });
      buttons.push(btn);
      group.appendChild(btn);
    });
    return group;
  }

  function renderCarousel(products) {
    var list = el("ul", "sa-carousel");
    setAttrs(list, { "aria-label": "Suggested products", tabindex: "0" });
    products.forEach(function (p) { list.appendChild(renderCard(p)); });
    return list;
  }

  function renderCard(p) {
    var card = el("li", "sa-card");
    if (p.id) card.setAttribute("data-product-id", p.id);

    if (p.image) {
      var img = el("img", "sa-card-img");
      setAttrs(img, { src: p.image, alt: p.title, loading: "lazy", referrerpolicy: "no-referrer" });
      img.addEventListener("error", function () {
        var ph = el("div", "sa-card-noimg");
        ph.innerHTML = ICON_BAG;
        if (img.parentNode) img.parentNode.replaceChild(ph, img);
      });
      card.appendChild(img);
    } else {
      var ph = el("div", "sa-card-noimg");
      ph.innerHTML = ICON_BAG;
      card.appendChild(ph);
    }

    var body = el("div", "sa-card-body");
    var title = el("h3", "sa-card-title");
    if (p.url) {
      var a = el("a", null, p.title);
      setAttrs(a, { href: p.url, target: "_blank", rel: "noopener noreferrer" });
      title.appendChild(a);
    } else {
      title.textContent = p.title;
    }
    if (p.brand) body.appendChild(el("div", "sa-card-brand", p.brand));
    body.appendChild(title);

    var meta = el("div", "sa-card-meta");
    var price = formatPrice(p.price, p.currency) || "Price on request";
    meta.appendChild(el("span", "sa-card-price" + (p.price === null ? " sa-card-price-none" : ""), price));
    if (p.rating !== null && p.rating !== undefined) {
      var r = el("span", "sa-card-rating", "★ " + p.rating.toFixed(1));
      r.setAttribute("aria-label", "Rated " + p.rating.toFixed(1) + " out of 5");
      meta.appendChild(r);
    }
    if (meta.firstChild) body.appendChild(meta);

    var stock = stockInfo(p.stock);
    if (stock) body.appendChild(el("div", "sa-card-stock " + stock.cls, stock.text));
    if (p.reason) body.appendChild(el("div", "sa-card-reason", p.reason));

    if (p.buttons && p.buttons.length) {
      var actions = el("div", "sa-card-actions");
      p.buttons.forEach(function (b) {
        var btn = el("button", "sa-card-btn", b.title);
        btn.type = "button";
        btn.setAttribute("aria-label", b.title + ": " + p.title);
        btn.addEventListener("click", function () {
          sendMessage(b.title, b.payload);
        });
        actions.appendChild(btn);
      });
      body.appendChild(actions);
    }
    card.appendChild(body);
    return card;
  }

  function scrollToBottom(instant) {
    var log = ui.log;
    if (instant) {
      var prev = log.style.scrollBehavior;
      log.style.scrollBehavior = "auto";
      log.scrollTop = log.scrollHeight;
      log.style.scrollBehavior = prev;
    } else {
      log.scrollTop = log.scrollHeight;
    }
  }

  function addEntry(e) {
    if (e.cart) {
      disableCartButtons();
      announceCart(e.cart);
    }
    transcript.push(e);
    if (transcript.length > MAX_TRANSCRIPT) {
      transcript = transcript.slice(-MAX_TRANSCRIPT);
      saveTranscript();
      renderAll();
      return;
    }
    saveTranscript();
    if (ui.empty.parentNode) ui.empty.parentNode.removeChild(ui.empty);
    ui.log.appendChild(renderEntry(e));
    scrollToBottom(false);
  }

  function setTyping(on) {
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    ui.typing.hidden = !on;
    if (on) {
      typingTimer = setTimeout(function () { ui.typing.hidden = true; }, TYPING_SAFETY_MS);
      scrollToBottom(false);
    }
  }

  function setStatus(text) {
    if (ui && ui.status.textContent !== text) ui.status.textContent = text;
  }

  // Live handoff state: "queued" (waiting for a person), "agent" (a person is chatting), "bot".
  function setHandoff(state, name) {
    handoffState = state === "queued" || state === "agent" ? state : "bot";
    if (state === "queued") handoffStatus = "Waiting for a person to reply…";
    else if (state === "agent") handoffStatus = "Chatting with " + (str(name, 120).trim() || "an agent");
    else handoffStatus = "";
    if (connected) setStatus(handoffStatus);
    if (handoffState === "agent") retireBotButtons();
  }

  // A person took over: the bot's earlier quick replies ("Email me", "Keep chatting with the bot") and
  // cart buttons would only reach the agent as words, so they stop working (kept so after a reload).
  function retireBotButtons() {
    var changed = false;
    for (var i = 0; i < transcript.length; i++) {
      if (transcript[i].role === "bot" && transcript[i].buttons && !transcript[i].used) {
        transcript[i].used = true;
        changed = true;
      }
    }
    if (changed) saveTranscript();
    if (!ui) return;
    var buttons = ui.log.querySelectorAll(".sa-quick-reply, .sa-cart-btn");
    for (var j = 0; j < buttons.length; j++) buttons[j].disabled = true;
  }

  function notify() {
    if (!isOpen && ui) ui.badge.hidden = false;
  }

  // Another tab of the same site updated the transcript: re-render.
  function onStorage(ev) {
    if (!ev || ev.storageArea !== window.localStorage) return;
    if (ev.key === transcriptKey()) {
      transcript = loadTranscript();
      renderAll();
    }
  }

  // ---------------------------------------------------------------------------
  // Open / close
  // ---------------------------------------------------------------------------

  function openPanel(focusInput) {
    if (!ui) return;
    isOpen = true;
    ui.panel.hidden = false;
    ui.root.classList.add("sa-is-open");
    ui.bubble.setAttribute("aria-expanded", "true");
    ui.bubble.setAttribute("aria-label", "Close " + TITLE + " chat");
    ui.badge.hidden = true;
    storageSet("sessionStorage", KEY_OPEN, "1");
    scrollToBottom(true);
    ensureConnected();
    if (focusInput) {
      try { ui.input.focus({ preventScroll: true }); } catch (e) { ui.input.focus(); }
    }
  }

  function closePanel(returnFocus) {
    if (!ui) return;
    var hadFocus = ui.panel.contains(document.activeElement) || document.activeElement === ui.bubble;
    isOpen = false;
    ui.panel.hidden = true;
    ui.root.classList.remove("sa-is-open");
    ui.bubble.setAttribute("aria-expanded", "false");
    ui.bubble.setAttribute("aria-label", "Open " + TITLE + " chat");
    storageSet("sessionStorage", KEY_OPEN, "0");
    if (returnFocus || hadFocus) ui.bubble.focus();
  }

  // ---------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------

  function submitInput() {
    var text = ui.input.value;
    if (sendMessage(text)) ui.input.value = "";
    ui.input.focus();
  }

  // Show `text` as the shopper's message and send it (or `payload` instead).
  function sendMessage(text, payload) {
    var shown = str(text, MAX_INPUT * 4).trim();
    var pl = payload === undefined || payload === null ? "" : str(payload, 2000);
    if (!shown && !pl) return false;
    if (refused) { showRefused(); return false; } // what was typed stays in the input
    if (shown) addEntry({ id: newEntryId(), role: "user", text: shown });
    var frame = { type: "message", text: shown };
    if (pl) frame.payload = pl;
    if (handoffState !== "agent") setTyping(true); // a person answers in their own time, the bot at once
    transmit(frame);
    return true;
  }

  function transmit(frame) {
    var data = JSON.stringify(frame);
    if (ws && connected && ws.readyState === 1) {
      try { ws.send(data); return; } catch (e) { /* queue below */ }
    }
    outbox.push(data);
    if (outbox.length > MAX_QUEUE) outbox.shift();
    autoReconnect = true;
    ensureConnected();
  }

  function flushOutbox() {
    while (outbox.length && ws && ws.readyState === 1) {
      var data = outbox[0];
      try { ws.send(data); } catch (e) { return; }
      outbox.shift();
    }
  }

  // ---------------------------------------------------------------------------
  // WebSocket transport
  // ---------------------------------------------------------------------------

  function socketUrl() {
    var u = new URL(ORIGIN);
    var proto = u.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + u.host + "/ws/chat?conversation_id=" + encodeURIComponent(conversationId);
  }

  // Who the connection speaks for: sent first on every connection and whenever the token changes.
  function sendHello() {
    if (!ws || !connected || ws.readyState !== 1) return;
    try { ws.send(JSON.stringify({ type: "hello", token: token || null })); } catch (e) { /* onclose follows */ }
  }

  // The "sub" claim of a JWT, read without verifying (the gateway verifies): only used to notice
  // that another shopper signed in on this browser, whose conversation must not be shown.
  function tokenSubject(t) {
    if (!t) return "";
    try {
      var part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var claims = JSON.parse(window.atob(part + "===".slice((part.length + 3) % 4)));
      return str(claims && claims.sub, 64);
    } catch (e) {
      return "";
    }
  }

  // A guest who signs in keeps the conversation (and the cart moves to their account); signing out,
  // or another customer signing in, starts a new conversation.
  function applyToken(newToken) {
    var next = str(newToken, 4096).trim();
    var before = storageGet("localStorage", KEY_IDENTITY) || "";
    var subject = tokenSubject(next);
    token = next;
    if (before && before !== subject) {
      storageSet("localStorage", KEY_IDENTITY, subject);
      resetConversation(); // reconnects, and the new connection says hello
      return;
    }
    if (subject) storageSet("localStorage", KEY_IDENTITY, subject);
    sendHello();
  }

  function ensureConnected() {
    if (ws || reconnectTimer || refused) return;
    connect();
  }

  function reconnectNow() {
    if (ws || !everTried || !autoReconnect || refused) return;
    if (reconnectTimer) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    connect();
  }

  function connect() {
    if (ws || refused) return;
    if (typeof window.WebSocket !== "function") {
      setStatus("Chat unavailable");
      addEntry({ id: newEntryId(), role: "system", text: "Your browser does not support live chat." });
      setTyping(false);
      return;
    }
    everTried = true;
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    connected = false;

    sock.onopen = function () {
      if (ws !== sock) return;
      connected = true;
      attempt = 0;
      handoffStatus = ""; // the gateway says it again after the hello when a person is involved
      handoffState = "bot";
      setStatus("");
      sendHello(); // before any queued message, so it goes out with the right identity
      if (outbox.length) {
        flushOutbox();
        setTyping(true); // queued messages are now on their way
      }
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      handleFrame(ev.data);
    };
    sock.onerror = function () { /* onclose follows */ };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      connected = false;
      if (!outbox.length) setTyping(false);
      if (ev && ev.code === REFUSED_CLOSE_CODE) {
        refused = true;
        autoReconnect = false;
        outbox = [];
        setTyping(false);
        showRefused();
        return;
      }
      if (ev && FATAL_CLOSE_CODES.indexOf(ev.code) !== -1) {
        autoReconnect = false;
        setTyping(false);
        setStatus("Disconnected");
        return;
      }
      scheduleReconnect();
    };
  }

  // Tell the shopper plainly that this page cannot use the chat (once in a row, not on every try).
  function showRefused() {
    setStatus(REFUSED_STATUS);
    var last = transcript.length ? transcript[transcript.length - 1] : null;
    if (!last || last.role !== "system" || last.text !== REFUSED_TEXT) {
      addEntry({ id: newEntryId(), role: "system", text: REFUSED_TEXT });
    }
  }

  function scheduleReconnect() {
    if (reconnectTimer || refused) return;
    setStatus("Reconnecting…");
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    attempt = Math.min(attempt + 1, 16);
    // +/-25% jitter, never above the cap.
    var delay = Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function handleFrame(data) {
    var msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "typing":
        setTyping(msg.on === true);
        break;
      case "bot": {
        setTyping(false);
        var list = Array.isArray(msg.messages) ? msg.messages : [];
        var added = 0;
        for (var i = 0; i < list.length; i++) {
          var c = list[i] && list[i].custom;
          if (c && typeof c === "object" && c.type === "handoff") {
            setHandoff(c.state === "queued" ? "queued" : "bot");
            continue;
          }
          var e = entryFromBotMessage(list[i]);
          if (e) { addEntry(e); added++; }
        }
        if (added) notify();
        break;
      }
      case "handoff": // on (re)connect: a ticket is open for this conversation
        setHandoff(msg.state === "agent" ? "agent" : "queued", msg.name);
        break;
      case "agent": {
        setTyping(false);
        var ae = agentEntry(msg);
        if (ae) { addEntry(ae); notify(); }
        if (msg.name) setHandoff("agent", msg.name);
        break;
      }
      case "agent_joined": {
        var who = str(msg.name, 120).trim() || "An agent";
        setHandoff("agent", who);
        addEntry({ id: newEntryId(), role: "system", text: who + " joined the chat." });
        notify();
        break;
      }
      case "agent_left": {
        setHandoff(msg.requeued === true ? "queued" : "bot");
        var left = str(msg.text, 500).trim();
        if (left) { addEntry({ id: newEntryId(), role: "system", text: left }); notify(); }
        break;
      }
      case "rating": {
        var re = ratingEntry(msg);
        if (re) { addEntry(re); notify(); }
        break;
      }
      case "rating_saved":
      case "rating_refused": {
        var said = str(msg.text, 500).trim();
        if (said) addEntry({ id: newEntryId(), role: "system", text: said });
        break;
      }
      case "identity": {
        if (msg.signed_in !== true && token && msg.reason) {
          token = ""; // refused (expired, tampered): carry on as a guest
          addEntry({ id: newEntryId(), role: "system",
            text: str(msg.text, 500).trim() || "Your sign-in could not be confirmed, so you're chatting as a guest." });
        }
        try {
          window.dispatchEvent(new CustomEvent("shopassistant:identity", {
            detail: { signedIn: msg.signed_in === true, reason: str(msg.reason, 64) || null } }));
        } catch (e) { /* old browsers: no event */ }
        break;
      }
      case "error": {
        setTyping(false);
        var text = str(msg.text, 2000).trim() || "Something went wrong. Please try again.";
        addEntry({ id: newEntryId(), role: "system", text: text });
        if (!isOpen) ui.badge.hidden = false;
        break;
      }
      default:
        break; // unknown frame types are ignored
    }
  }

  // ---------------------------------------------------------------------------
  // Conversation reset (extra API; not required by the page)
  // ---------------------------------------------------------------------------

  function resetConversation() {
    storageRemove("localStorage", transcriptKey());
    conversationId = randomId();
    storageSet("localStorage", KEY_CONV, conversationId);
    transcript = [];
    outbox = [];
    setTyping(false);
    renderAll();
    if (reconnectTimer) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    if (ws) {
      var old = ws;
      ws = null;
      connected = false;
      try { old.close(1000, "reset"); } catch (e) { /* ignore */ }
    }
    attempt = 0;
    autoReconnect = true;
    setStatus(refused ? REFUSED_STATUS : "");
    if (isOpen) connect();
  }

  // ---------------------------------------------------------------------------
  // Init + public API
  // ---------------------------------------------------------------------------

  function init() {
    if (ui) return;
    build();
    if (token) applyToken(token); // the page says who is signed in: another shopper's conversation is not shown
    transcript = loadTranscript();
    renderAll();
    for (var i = transcript.length - 1; i >= 0; i--) {
      if (transcript[i].cart) { announceCart(transcript[i].cart); break; }
    }
    var saved = storageGet("sessionStorage", KEY_OPEN);
    var startOpen = saved === null ? START_OPEN : saved === "1";
    // On page load we restore the open state without stealing focus.
    if (startOpen) openPanel(false);
    var calls = pending;
    pending = [];
    calls.forEach(function (fn) { fn(); });
  }

  function whenReady(fn) {
    if (ui) fn(); else pending.push(fn);
  }

  window.ShopAssistant = {
    __sa: true,
    open: function () { whenReady(function () { openPanel(true); }); },
    close: function () { whenReady(function () { closePanel(false); }); },
    send: function (text, payload) {
      if (ui) return sendMessage(text, payload);
      whenReady(function () { sendMessage(text, payload); });
      return true;
    },
    reset: function () { whenReady(resetConversation); },
    setToken: function (t) { whenReady(function () { applyToken(t); }); },
    get signedIn() { return !!token; },
    get conversationId() { return conversationId; }
  };

  if (document.body && document.readyState !== "loading") {
    init();
  } else {
    document.addEventListener("DOMContentLoaded", init);
  }
})();
