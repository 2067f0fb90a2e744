/*
 * What the consoles (lead console, analytics, agent inbox) share: DOM helpers that render text only with
 * textContent / createElement, and the JSON client (CSRF header on every state change, a 401 goes to the
 * login page) with the signed-in user and the log-out button. Loaded before each console's own script,
 * which uses it through the one global `ConsoleKit`.
 */
/* exported ConsoleKit */
var ConsoleKit = (function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var LOGIN = "/agent/login";
  var csrf = "";
  /* Why a conversation was handed to a person (the ticket's reason), as the consoles show it. */
  var HANDOFF_REASONS = {
    explicit_request: "Asked for a person",
    negative_mood: "Negative mood",
    very_negative_message: "Very negative message",
    repeated_fallback: "Bot kept misunderstanding",
    vip_negative_mood: "VIP, negative mood",
    gave_up: "Giving up",
    service_complaint: "Says the bot is not helping",
    repeated_request: "Asked the same thing again",
    bot_not_understanding: "Bot kept failing"
  };

  function $(id) { return document.getElementById(id); }

  /* A new element with a class and a text (set as text, never parsed as HTML). */
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null && text !== "") n.textContent = String(text);
    return n;
  }

  /* A new SVG element with its attributes and an optional text. */
  function svg(tag, attrs, text) {
    var n = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /* A table's head: one row of column headers; from numericFrom on (when given) the columns are numbers. */
  function thead(headers, numericFrom) {
    var row = el("tr");
    headers.forEach(function (h, i) {
      var th = el("th", numericFrom !== undefined && i >= numericFrom ? "num" : null, h);
      th.scope = "col";
      row.appendChild(th);
    });
    var head = el("thead");
    head.appendChild(row);
    return head;
  }

  /* A failed request: the message to show, the HTTP status (0: the server was not reached) and the detail object. */
  function ApiError(message, status, detail) {
    this.message = message;
    this.status = status;
    this.detail = detail || {};
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;
  ApiError.prototype.name = "ApiError";

  function failure(status, data, forbidden) {
    var d = data && data.detail;
    var isObject = d && typeof d === "object" && !Array.isArray(d);
    var msg = isObject && d.message ? d.message :
      typeof d === "string" ? d :
      Array.isArray(d) && d[0] && d[0].msg ? d[0].msg : "That did not work (HTTP " + status + ").";
    if (status === 403 && forbidden && !(isObject && d.message)) msg = forbidden;
    return new ApiError(msg, status, isObject ? d : {});
  }

  /*
   * A JSON client for one console: api(method, path, body) resolves with the answer's JSON or rejects with an
   * ApiError. options.loginUrl: where a 401 sends the browser; options.forbidden: the message for a bare 403.
   */
  function client(options) {
    var opts = options || {};
    var loginUrl = opts.loginUrl || LOGIN;
    return function api(method, path, body) {
      var init = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
      if (method !== "GET") {
        init.headers["Content-Type"] = "application/json";
        init.headers["X-CSRF-Token"] = csrf;
        init.body = JSON.stringify(body || {});
      }
      return fetch(path, init).catch(function () {
        throw new ApiError("The console cannot reach the server. Check your connection and try again.", 0);
      }).then(function (r) {
        if (r.status === 401) {
          window.location.assign(loginUrl);
          throw new ApiError("Your session has ended. Log in again.", 401);
        }
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw failure(r.status, data, opts.forbidden);
          return data;
        });
      });
    };
  }

  /* The signed-in user: GET /agent/api/me, keeping its CSRF token for the state changes that follow. */
  function signedIn(api) {
    return api("GET", "/agent/api/me").then(function (data) {
      csrf = data.csrf_token || data.csrf || "";
      return data;
    });
  }

  /* The top bar's "Log out" button (#logout): log out, then the login page. */
  function wireLogout(api) {
    $("logout").addEventListener("click", function () {
      api("POST", "/agent/logout", {}).catch(function () { /* logged out anyway */ }).then(function () {
        window.location.assign(LOGIN);
      });
    });
  }

  return {
    $: $, el: el, svg: svg, clear: clear, thead: thead, HANDOFF_REASONS: HANDOFF_REASONS,
    ApiError: ApiError, client: client, signedIn: signedIn, wireLogout: wireLogout
  };
})();
