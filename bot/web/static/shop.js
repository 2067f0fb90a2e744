/* The demo shop's page (index.html): example prompts and the demo sign-in. */
// Example prompts: open the widget and send the prompt.
(function () {
  function withAssistant(fn) {
    if (window.ShopAssistant) { fn(window.ShopAssistant); return; }
    // widget.js is deferred; wait for it if the visitor is very quick.
    var tries = 0;
    var t = setInterval(function () {
      if (window.ShopAssistant || ++tries > 50) {
        clearInterval(t);
        if (window.ShopAssistant) fn(window.ShopAssistant);
      }
    }, 100);
  }
  document.addEventListener("click", function (ev) {
    var target = ev.target.closest ? ev.target.closest("[data-prompt],[data-open-assistant]") : null;
    if (!target) return;
    ev.preventDefault();
    var prompt = target.getAttribute("data-prompt");
    withAssistant(function (sa) {
      sa.open();
      if (prompt) sa.send(prompt);
    });
  });
})();

// Demo sign-in: the gateway issues a signed token for a demo customer (only in demo mode), and the
// page hands it to the widget, as a real shop's page would for its signed-in customer.
(function () {
  var bar = document.querySelector("[data-testid=demo-signin]");
  var select = document.getElementById("demo-customer");
  var who = document.querySelector("[data-testid=demo-who]");
  var KEY = "demo.signin";
  var names = {};

  function stored() {
    try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }
  function withAssistant(fn) {
    if (window.ShopAssistant) { fn(window.ShopAssistant); return; }
    var tries = 0;
    var t = setInterval(function () {
      if (window.ShopAssistant || ++tries > 100) {
        clearInterval(t);
        if (window.ShopAssistant) fn(window.ShopAssistant);
      }
    }, 50);
  }
  function show(id) {
    select.value = id ? String(id) : "";
    who.textContent = id && names[id] ? "Signed in as " + names[id] : "";
  }
  function signOut() {
    localStorage.removeItem(KEY);
    show(null);
    withAssistant(function (sa) { sa.setToken(null); });
  }
  function signIn(id) {
    fetch("/api/demo/token", { method: "POST", headers: { "content-type": "application/json" },
                               body: JSON.stringify({ customer_id: Number(id) }) })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        localStorage.setItem(KEY, JSON.stringify({ id: data.customer.id, token: data.token }));
        show(data.customer.id);
        withAssistant(function (sa) { sa.setToken(data.token); });
      })
      .catch(function () { signOut(); who.textContent = "Sign-in failed"; });
  }
  select.addEventListener("change", function () {
    if (select.value) signIn(select.value); else signOut();
  });
  window.addEventListener("shopassistant:identity", function (ev) {
    if (ev.detail && !ev.detail.signedIn && ev.detail.reason && stored()) {
      localStorage.removeItem(KEY); // expired or refused: the widget carries on as a guest
      show(null);
    }
  });
  fetch("/api/demo/customers").then(function (r) {
    if (!r.ok) throw new Error("no demo mode");
    return r.json();
  }).then(function (data) {
    if (!data.customers || !data.customers.length) return; // no demo customers loaded
    data.customers.forEach(function (c) {
      names[c.id] = c.name;
      var o = document.createElement("option");
      o.value = String(c.id);
      o.textContent = c.name + (c.note ? " (" + c.note + ")" : "");
      select.appendChild(o);
    });
    bar.hidden = false;
    var saved = stored();
    if (saved && names[saved.id]) {
      show(saved.id);
      withAssistant(function (sa) { sa.setToken(saved.token); });
    } else if (saved) {
      localStorage.removeItem(KEY);
    }
  }).catch(function () { /* not in demo mode: no switch */ });

  // The header's cart count follows the cart in the chat.
  window.addEventListener("shopassistant:cart", function (ev) {
    var n = ev.detail && typeof ev.detail.itemCount === "number" ? ev.detail.itemCount : 0;
    var button = document.querySelector("[data-cart-button]");
    button.querySelector(".cart-count").textContent = String(n);
    button.setAttribute("aria-label", "Cart, " + n + (n === 1 ? " item" : " items"));
  });
})();
