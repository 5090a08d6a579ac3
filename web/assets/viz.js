// Drawing an explore answer ({columns, rows} of POST /api/v1/explore): a
// table, one big number, bars and funnels (SVG), lines and areas (uPlot).
// The Explore page and the dashboards draw with it.
"use strict";
const sluiceViz = (() => {
  const { el, svg, num } = sluice;

  // cell is a value of column c as text.
  function cell(c, v) {
    if (v === null || v === undefined) return "null";
    if (c.type === "time") return String(v).replace("T", " ").replace(/(:00)?Z$/, "").replace(/ 00:00$/, "");
    if (typeof v === "number") return num(v, 2);
    return String(v);
  }

  // table is the answer as a table element with the given id.
  function table(res, id) {
    return el("table", { id, class: "table grid" },
      el("thead", {}, el("tr", {}, res.columns.map(c => el("th", { "data-field": c.name, class: c.kind === "measure" ? "num" : undefined }, c.label || c.name)))),
      el("tbody", {}, res.rows.map(r => el("tr", {}, r.map((v, i) => el("td", { class: res.columns[i].kind === "measure" ? "num" : undefined }, cell(res.columns[i], v)))))));
  }

  // draw draws an explore answer in box as k (number, line, area, bar,
  // funnel; table draws nothing) and returns the uPlot, if any.
  function draw(box, res, k) {
    box.replaceChildren();
    const measures = res.columns.map((c, i) => ({ c, i })).filter(x => x.c.kind === "measure");
    const dim = res.columns.findIndex(c => c.kind === "dimension");
    if (k === "table" || !measures.length || !res.rows.length) return null;
    if (k === "number") {
      const m = measures[0];
      box.append(el("div", { class: "big-number" }, num(res.rows[0][m.i], 2), el("small", {}, m.c.label || m.c.name)));
      return null;
    }
    if (k === "bar" || k === "funnel" || dim < 0) { bars(box, res, dim < 0 ? null : dim, measures[0], k === "funnel"); return null; }
    // Lines and areas: x is the time, or the row's position for other
    // dimensions (labelled with the dimension's values).
    const rows = res.columns[dim].type === "time"
      ? [...res.rows].sort((a, b) => String(a[dim]).localeCompare(String(b[dim]))) : res.rows;
    const isTime = res.columns[dim].type === "time";
    const xs = rows.map((r, i) => isTime ? new Date(r[dim]).getTime() / 1000 : i);
    return lines(box, xs, measures, rows, isTime ? null : rows.map(r => cell(res.columns[dim], r[dim])), k === "area");
  }

  // lines draws the measures with uPlot; labels name the x positions when
  // the dimension is not a time.
  function lines(box, xs, measures, rows, labels, filled) {
    const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
    const fills = ["rgba(37,99,235,0.25)", "rgba(220,38,38,0.25)", "rgba(22,163,74,0.25)", "rgba(147,51,234,0.25)", "rgba(234,88,12,0.25)"];
    const x = labels ? { values: (u, splits) => splits.map(v => Number.isInteger(v) && labels[v] !== undefined ? labels[v] : "") } : {};
    const opts = {
      width: Math.max(box.clientWidth - 4, 200), height: 260, scales: { x: { time: !labels } },
      series: [{}].concat(measures.map((m, i) => ({ label: m.c.label || m.c.name, stroke: colors[i % 5], fill: filled ? fills[i % 5] : undefined, width: 2 }))),
      axes: [x, { size: 60 }],
    };
    const u = new uPlot(opts, [xs].concat(measures.map(m => rows.map(r => r[m.i]))), box);
    const resize = () => { if (!u.root.isConnected) removeEventListener("resize", resize); else u.setSize({ width: Math.max(box.clientWidth - 4, 200), height: 260 }); };
    addEventListener("resize", resize);
    return u;
  }

  // bars draws the first measure by the first dimension as horizontal SVG
  // bars (at most 50), which keep long labels readable; a funnel adds each
  // step's share of the first.
  function bars(box, res, dim, m, funnel) {
    const rows = res.rows.slice(0, 50);
    const vals = rows.map(r => Number(r[m.i]) || 0);
    const max = Math.max(...vals.map(Math.abs), 1e-9);
    const w = Math.max(box.clientWidth - 4, 240), rowH = 22, labelW = Math.min(220, Math.round(w * 0.4)), numW = funnel ? 110 : 70;
    const s = svg("svg", { class: "bars", width: w, height: rows.length * rowH + 4, viewBox: `0 0 ${w} ${rows.length * rowH + 4}`, role: "img", "aria-label": m.c.label || m.c.name });
    rows.forEach((r, i) => {
      const y = i * rowH + 2;
      const text = dim === null ? "" : cell(res.columns[dim], r[dim]);
      const barW = Math.max(1, Math.abs(vals[i]) / max * (w - labelW - numW - 8));
      s.append(svg("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, text.length > 32 ? text.slice(0, 31) + "…" : text),
        svg("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 6, rx: 2 }),
        svg("text", { x: labelW + barW + 4, y: y + 15 }, num(vals[i], 2) + (funnel && vals[0] ? ` (${num(100 * vals[i] / vals[0], 0)}%)` : "")));
    });
    box.append(s);
  }

  return { cell, table, draw };
})();
