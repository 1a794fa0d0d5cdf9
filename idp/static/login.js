/* The login page's account-type switch keeps the email address already typed: the links carry it
   as login_hint (the server fills the field in). Without JavaScript the links still switch. */
(function () {
  "use strict";
  var email = document.getElementById("email");
  if (!email) { return; }
  var links = document.querySelectorAll("a[data-keeps-email]");
  function carry() {
    var value = email.value.trim();
    for (var i = 0; i < links.length; i++) {
      var url = new URL(links[i].href, window.location.href);
      if (value) { url.searchParams.set("login_hint", value); } else { url.searchParams.delete("login_hint"); }
      links[i].href = url.pathname + url.search;
    }
  }
  email.addEventListener("input", carry);
  carry();
}());
