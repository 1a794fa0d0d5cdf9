/* Recovery codes page: copy the codes, download them as a .txt file, or print them (a print
   stylesheet leaves only the codes). Without JavaScript the buttons stay hidden; the codes
   can still be selected, copied and printed by hand. */
(function () {
  "use strict";
  var actions = document.getElementById("recovery-actions");
  var list = document.getElementById("recovery-codes");
  if (!actions || !list) { return; }
  var status = document.getElementById("recovery-actions-status");
  var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (c) { return c.textContent.trim(); });
  var text = actions.getAttribute("data-heading") + "\n\n" + codes.join("\n") +
    "\n\nEach code works once. Keep them somewhere safe.\n";

  function say(message) { if (status) { status.textContent = message; } }

  function copyByHand() {
    // Older browsers: select the list so the person can press Ctrl+C themselves.
    var range = document.createRange();
    range.selectNodeContents(list);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(copied ? "The codes were copied." : "The codes are selected: press Ctrl+C (or Cmd+C) to copy them.");
  }

  var handlers = {
    copy: function () {
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(codes.join("\n")).then(function () { say("The codes were copied."); }, copyByHand);
      } else {
        copyByHand();
      }
    },
    download: function () {
      var blob = new Blob([text], { type: "text/plain;charset=utf-8" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = actions.getAttribute("data-filename") || "recovery-codes.txt";
      document.body.appendChild(link);
      link.click();
      document.body.removeChild(link);
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
      say("The codes were downloaded as " + link.download + ".");
    },
    print: function () { window.print(); }
  };

  var buttons = actions.querySelectorAll("button[data-action]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", handlers[buttons[i].getAttribute("data-action")]);
  }
  actions.hidden = false;
}());
