// Rollups: each rollup's definition (GET /api/v1/rollups) and a chart of
// one metric over time (POST /api/v1/rollups/{name}/query, timeseries).
"use strict";
(() => {
  const { api, el, status, chart } = sluice;
  const nameSel = document.getElementById("rollup-name"), metricSel = document.getElementById("rollup-metric"), rangeSel = document.getElementById("rollup-range");
  let rollups = [], plot = null, shown = "";

  function metrics() {
    const r = rollups.find(x => x.name === nameSel.value);
    const keep = metricSel.value;
    metricSel.replaceChildren(...(r ? r.metrics : []).map(m => el("option", { value: m.name }, m.name)));
    if (keep && [...metricSel.options].some(o => o.value === keep)) metricSel.value = keep;
  }

  // seconds reads a Go duration ("1h0m0s", "1m0s", "30s").
  function seconds(d) {
    let s = 0;
    for (const [, n, unit] of d.matchAll(/([\d.]+)(h|ms|m|s)/g)) s += Number(n) * { h: 3600, m: 60, s: 1, ms: 0.001 }[unit];
    return s || 60;
  }

  async function draw() {
    const r = rollups.find(x => x.name === nameSel.value);
    if (!r || !metricSel.value) return;
    const secs = Number(rangeSel.value);
    // About 120 points whatever the range: buckets of a multiple of the
    // rollup's grain (a Go duration such as "1m0s").
    const grain = seconds(r.granularity);
    const bucket = Math.max(1, Math.ceil(secs / 120 / grain)) * grain;
    const granularity = bucket === grain ? "none" : bucket + "s";
    const now = Date.now();
    try {
      const res = await api("POST", `/api/v1/rollups/${encodeURIComponent(r.name)}/query`, {
        queryType: "timeseries", granularity,
        from: new Date(now - secs * 1000).toISOString(), to: new Date(now + 60000).toISOString(), metrics: [metricSel.value] });
      const times = res.map(p => new Date(p.timestamp).getTime() / 1000);
      const values = res.map(p => { const v = p.event ? p.event[metricSel.value] : null; return typeof v === "number" ? v : null; });
      const key = r.name + "/" + metricSel.value + "/" + secs;
      if (!plot || shown !== key) { plot = chart(document.getElementById("rollup-chart"), times, [{ label: metricSel.value, values }]); shown = key; }
      else plot.setData([times, values]);
      status("rollup-status", `${res.length} buckets`);
    } catch (e) {
      status("rollup-status", e.message, true);
    }
  }

  async function refresh() {
    rollups = await api("GET", "/api/v1/rollups");
    document.querySelector("#rollups tbody").replaceChildren(...rollups.map(r => el("tr", {},
      el("td", {}, r.name), el("td", {}, r.granularity), el("td", {}, (r.dimensions || []).join(", ")),
      el("td", {}, r.metrics.map(m => `${m.name} = ${m.aggregate}(${m.field || ""})`).join(", ")))));
    if (!nameSel.options.length) {
      nameSel.replaceChildren(...rollups.map(r => el("option", { value: r.name }, r.name)));
      metrics();
    }
    if (!rollups.length) status("rollup-status", "No rollups are configured (rollups: in sluice.yaml).");
    await draw();
  }

  nameSel.addEventListener("change", () => { metrics(); draw(); });
  metricSel.addEventListener("change", draw);
  rangeSel.addEventListener("change", draw);
  sluice.every(5000, async () => {
    try { await refresh(); } catch (e) { status("rollup-status", e.message, true); }
  });
})();
