// The console's own script: the live event table and the drift charts. No inline
// script anywhere (the Content-Security-Policy forbids it); pages mark what to
// enhance with data- attributes.
"use strict";

(function () {
  const MAX_ROWS = 200;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function startEvents(table) {
    const body = table.querySelector("tbody");
    const status = document.getElementById("stream-status");
    const source = new EventSource(table.dataset.stream);
    source.onopen = function () { if (status) status.textContent = "live"; };
    source.onerror = function () { if (status) status.textContent = "reconnecting…"; };
    // The console's stream sends every event unnamed, so all of them reach onmessage.
    source.onmessage = show;
    const seen = new Set();
    function show(message) {
      if (seen.has(message.lastEventId)) return;
      seen.add(message.lastEventId);
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      const row = document.createElement("tr");
      row.className = "event";
      row.dataset.type = event.type || "";
      row.appendChild(cell(new Date().toLocaleTimeString()));
      row.appendChild(cell(event.type));
      row.appendChild(cell(event.subject));
      row.appendChild(cell(event.source));
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    }
  }

  function drawCharts() {
    const data = document.getElementById("drift-data");
    if (!data || typeof window.Chart === "undefined") return;
    const charts = JSON.parse(data.textContent);
    const style = getComputedStyle(document.body);
    const text = style.color || "#333";
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      const c = charts[Number(canvas.dataset.index)];
      if (!c) return;
      const common = { animation: false, responsive: true, maintainAspectRatio: true, aspectRatio: 2,
        plugins: { legend: { labels: { color: text } } },
        scales: { x: { ticks: { color: text } }, y: { ticks: { color: text }, beginAtZero: true } } };
      if (canvas.dataset.chart === "distribution") {
        new window.Chart(canvas, { type: "bar", options: common, data: { labels: c.labels, datasets: [
          { label: "reference", data: c.reference, backgroundColor: "#1f6feb" },
          { label: "current", data: c.current, backgroundColor: "#d9480f" }] } });
      } else {
        const datasets = [{ label: "score", data: c.scores, borderColor: "#d9480f", backgroundColor: "#d9480f", spanGaps: true }];
        if (c.threshold != null) datasets.push({ label: "threshold", data: c.times.map(function () { return c.threshold; }), borderColor: "#555", borderDash: [6, 4], pointRadius: 0 });
        new window.Chart(canvas, { type: "line", options: common, data: { labels: c.times.map(function (t) { return t.slice(0, 16).replace("T", " "); }), datasets: datasets } });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const events = document.getElementById("events");
    if (events && events.dataset.stream) startEvents(events);
    drawCharts();
  });
})();
