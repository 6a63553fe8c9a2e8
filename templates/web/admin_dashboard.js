// The dashboard's running sends, kept live from /admin/events (Server-Sent Events).
// Progressive: without this script the page shows the numbers as of loading, and a reload link.
(function () {
  "use strict";
  var box = document.getElementById("running-sends");
  if (!box || !window.EventSource) { return; }
  var list = box.querySelector("ul");
  var none = box.querySelector(".admin-none");
  var root = box.getAttribute("data-events").replace(/\/events$/, "");

  function field(item, name, value) {
    var node = item.querySelector('[data-field="' + name + '"]');
    if (node) { node.textContent = String(value); }
  }

  function span(name) {
    var node = document.createElement("span");
    node.setAttribute("data-field", name);
    return node;
  }

  function make(send) {
    var item = document.createElement("li");
    item.id = "send-" + send.id;
    var link = document.createElement("a");
    link.id = item.id + "-key";
    link.href = root + "/sends/" + send.id;
    link.textContent = send.key;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("aria-labelledby", link.id);
    var count = document.createElement("span");
    count.className = "admin-count";
    count.append(span("percent"), " %: ", span("sent"), " of ", span("planned"), " sent, ",
      span("failed"), " failed");
    item.append(link, " ", bar, " ", count);
    list.prepend(item);
    return item;
  }

  function show(send) {
    var item = document.getElementById("send-" + send.id) || make(send);
    item.querySelector("progress").value = send.percent;
    item.querySelector("progress").textContent = send.percent + " %";
    ["percent", "sent", "planned", "failed"].forEach(function (name) { field(item, name, send[name]); });
    item.setAttribute("data-status", send.status);
  }

  new EventSource(box.getAttribute("data-events")).addEventListener("progress", function (event) {
    var sends = JSON.parse(event.data).sends;
    sends.forEach(show);
    if (none) { none.hidden = list.children.length > 0; }
  });
})();
