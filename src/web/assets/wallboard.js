// The wallboard's live updates (the page is whole without them): follows
// /qc/wallboard/events (Server-Sent Events) and puts each board's cells,
// already formatted by the server, into the table in place. While the
// stream is down it says so and reconnects (the browser retries by itself;
// a refused stream, e.g. 503, is retried here after a pause).
document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("wallboard");
  if (!table || !window.EventSource) return;
  var status = document.getElementById("wb-status");
  var conn = document.getElementById("wb-conn");
  var at = document.getElementById("wb-at");
  var day = document.getElementById("wb-day");
  var pause = 2000;

  function state(name, text) {
    status.setAttribute("data-state", name);
    conn.textContent = text;
  }

  function show(b) {
    var cells = {};
    b.queues.forEach(function (q) { cells[q.queue] = q.cells; });
    table.querySelectorAll("tr[data-queue]").forEach(function (tr) {
      var key = tr.getAttribute("data-queue");
      var row = key === "" ? b.total.cells : cells[key];
      if (!row) return;
      tr.querySelectorAll("td[data-f]").forEach(function (td) {
        var v = row[td.getAttribute("data-f")];
        if (v !== undefined && td.textContent !== v) td.textContent = v;
      });
    });
    at.textContent = b.at_local;
    if (day && b.day) day.textContent = b.day;
  }

  function connect() {
    var es = new EventSource(table.getAttribute("data-events"));
    es.addEventListener("open", function () {
      pause = 2000;
      state("live", "live 实时");
    });
    es.addEventListener("board", function (e) {
      try {
        show(JSON.parse(e.data));
      } catch (err) {
        return;
      }
      state("live", "live 实时");
    });
    es.addEventListener("error", function () {
      state("lost", "connection lost, reconnecting… 连接中断，正在重连");
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(connect, pause);
        pause = Math.min(pause * 2, 60000);
      }
    });
  }
  connect();
});
