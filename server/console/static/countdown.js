// countdown.js: the console's only script. It ticks the live 72-hour
// countdowns (elements with data-deadline); without it the server-rendered
// text stays and is correct when the page was rendered.
"use strict";
(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var els = document.querySelectorAll("[data-deadline]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var ms = Date.parse(el.getAttribute("data-deadline")) - Date.now();
      var mins = Math.round(Math.abs(ms) / 60000);
      var text = Math.floor(mins / 60) + "h " + pad(mins % 60) + "m";
      if (ms < 0) {
        el.textContent = "overdue by " + text;
        el.className = el.className.replace(/\b(ok|warn)\b/g, "bad");
      } else {
        el.textContent = text + " left";
      }
    }
  }
  tick();
  setInterval(tick, 30000);
})();
