/* Live hint for the set-password page: ticks the password rules as they are met.
   Progressive enhancement only: the rules list is rendered by the server and the
   server checks every rule again (including the ones this cannot: common words, history). */
(function () {
  "use strict";
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
    for (var i = 0; i < items.length; i++) {
      var check = checks[items[i].getAttribute("data-rule")];
      if (check) { items[i].classList.toggle("met", check(password.value)); }
    }
  }
  password.addEventListener("input", update);
  if (confirm) { confirm.addEventListener("input", update); }
  update();
}());
