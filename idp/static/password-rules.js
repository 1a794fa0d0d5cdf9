/* The new-password block (templates/_new_password.html): ticks the password rules as they are met,
   neutral until the person types; and a show-password toggle for each field.
   Progressive enhancement only: the rules list is rendered by the server and the
   server checks every rule again (including the ones this cannot: common words, history). */
(function () {
  "use strict";

  var toggles = document.querySelectorAll(".password-toggle[aria-controls]");
  for (var t = 0; t < toggles.length; t++) {
    (function (button) {
      var input = document.getElementById(button.getAttribute("aria-controls"));
      if (!input) { return; }
      var hidden = button.querySelector(".visually-hidden");
      var rest = hidden ? hidden.textContent : "";
      button.hidden = false;
      // A <button>: Enter and Space work by themselves; aria-pressed tells a screen reader its state.
      button.addEventListener("click", function () {
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        button.setAttribute("aria-pressed", show ? "true" : "false");
        button.firstChild.nodeValue = show ? "Hide" : "Show";
        if (hidden) { hidden.textContent = rest; }
      });
      // Never submit a visible password field (some browsers then offer to save it in plain autofill).
      if (input.form) {
        input.form.addEventListener("submit", function () { input.type = "password"; });
      }
    }(toggles[t]));
  }

  var list = document.getElementById("password-rules");
  if (!list) { return; }
  var password = document.getElementById(list.getAttribute("data-password"));
  var confirm = document.getElementById(list.getAttribute("data-confirm"));
  if (!password) { return; }
  var email = (list.getAttribute("data-email") || "").toLowerCase();
  var local = email.split("@")[0];
  var minLength = parseInt(list.getAttribute("data-min-length"), 10) || 8;
  var unicode = (function () { try { return new RegExp("\\p{Lu}", "u"); } catch (e) { return null; } }());

  var checks = {
    length: function (v) { return Array.from(v).length >= minLength; },
    capital: function (v) { return unicode ? /\p{Lu}/u.test(v) : /[A-Z]/.test(v); },
    number: function (v) { return unicode ? /\p{Nd}/u.test(v) : /[0-9]/.test(v); },
    special: function (v) { return unicode ? /[^\p{L}\p{N}\s]/u.test(v) : /[^A-Za-z0-9\s]/.test(v); },
    email: function (v) {
      var lower = v.toLowerCase();
      if (!v) { return false; }
      if (email && lower.indexOf(email) !== -1) { return false; }
      return !(local.length >= 4 && lower.indexOf(local) !== -1);
    },
    match: function (v) { return v.length > 0 && !!confirm && v === confirm.value; }
  };

  var items = list.querySelectorAll("li[data-rule]");
  function update() {
    // Nothing typed yet: neutral marks, not a list of red crosses.
    var typed = password.value.length > 0;
    list.classList.toggle("rules--neutral", !typed);
    for (var i = 0; i < items.length; i++) {
      var check = checks[items[i].getAttribute("data-rule")];
      if (!check) { continue; }
      var met = typed && check(password.value);
      items[i].classList.toggle("met", met);
      items[i].classList.toggle("unmet", typed && !met);
      var note = items[i].querySelector(".visually-hidden");
      if (note) { note.textContent = typed ? (met ? " (done)" : " (not yet)") : ""; }
    }
  }
  password.addEventListener("input", update);
  if (confirm) { confirm.addEventListener("input", update); }
  if (password.value) { update(); }
}());
