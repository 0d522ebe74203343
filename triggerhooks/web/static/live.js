// The session page follows its session: it polls the session's version and, when it
// changed, swaps in the new state of the page, keeping open details and any form being
// filled in. Written for this project; loads nothing from elsewhere.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) { return; }
  var every = Number(live.dataset.every) || 2000;

  function typing() {
    var active = document.activeElement;
    return active && active.form && live.contains(active);
  }

  function openDetails(root) {
    var names = {};
    root.querySelectorAll("details[data-name]").forEach(function (item) {
      if (item.open) { names[item.dataset.name] = true; }
    });
    return names;
  }

  function say(text, lost) {
    var status = document.getElementById("live-status");
    if (status) { status.textContent = text; status.classList.toggle("lost", !!lost); }
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
    if (!fresh) { return; }
    var open = openDetails(live);
    fresh.querySelectorAll("details[data-name]").forEach(function (item) {
      if (open[item.dataset.name]) { item.open = true; }
    });
    live.replaceWith(fresh);
    live = fresh;
    window.triggerhooksUpdates = (window.triggerhooksUpdates || 0) + 1;
    say("updated " + new Date().toLocaleTimeString());
  }

  function poll() {
    if (document.hidden || typing()) { return later(); }
    fetch(live.dataset.state, {cache: "no-store", credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (state) {
        if (state.version === live.dataset.version) { say("live"); return null; }
        return fetch(live.dataset.fragment, {cache: "no-store", credentials: "same-origin"})
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) { if (html && !typing()) { swap(html); } });
      })
      .catch(function () { say("not reachable: retrying", true); })
      .then(later);
  }

  function later() { window.setTimeout(poll, every); }

  later();
}());
