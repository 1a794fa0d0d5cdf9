/* GOV.UK error summary: move focus to it when a form comes back with errors, so
   keyboard and screen-reader users start at the list of problems. Its links are
   plain #field anchors and work without this script. */
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }
}());
