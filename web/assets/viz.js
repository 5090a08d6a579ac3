// Drawing an explore answer ({columns, rows} of POST /api/v1/explore): a
// table, one big number, bars and funnels (SVG), lines and areas (uPlot),
// and a pivoted answer's pivot table. The Explore page and the dashboards
// draw with it.
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

  // pivotTable is a pivoted answer's table (res.pivot): a header row per
  // pivoted field over the values' column groups, then a row per row of
  // the pivot with each value's measures (empty where the row has none)
  // and the row's totals.
  function pivotTable(res, id) {
    const p = res.pivot;
    const pivoted = new Set(p.fields);
    const rowCols = res.columns.filter(c => c.kind === "dimension" && !pivoted.has(c.name));
    const fieldCols = p.fields.map(f => res.columns.find(c => c.name === f));
    const measures = res.columns.filter(c => c.kind === "measure");
    const lead = Math.max(rowCols.length, 1), m = measures.length;
    const head = fieldCols.map((fc, i) => el("tr", {},
      el("th", { colspan: lead, class: "pivot-field" }, fc.label || fc.name),
      p.values.map(v => el("th", { colspan: m, class: "pivot-value" }, v ? cell(fc, v[i]) : "")),
      i === 0 ? el("th", { colspan: m, rowspan: fieldCols.length, class: "pivot-value total" }, "Total") : null));
    head.push(el("tr", {},
      rowCols.length ? rowCols.map(c => el("th", { "data-field": c.name }, c.label || c.name)) : el("th", {}),
      [...p.values, "total"].flatMap((v, j) => measures.map((c, i) => el("th", { class: "num" + (i === 0 ? " group" : "") + (j === p.values.length ? " total" : "") }, c.label || c.name)))));
    const num = (c, v, extra) => el("td", { class: "num" + extra }, v === undefined ? "" : cell(c, v));
    const body = p.rows.map(r => el("tr", {},
      rowCols.length ? r.dimensions.map((v, i) => el("td", {}, cell(rowCols[i], v))) : el("td", {}),
      r.cells.flatMap(cs => measures.map((c, i) => num(c, cs ? cs[i] : undefined, i === 0 ? " group" : ""))),
      measures.map((c, i) => num(c, r.totals[i], (i === 0 ? " group" : "") + " total"))));
    return el("table", { id, class: "table grid pivot" }, el("thead", {}, head), el("tbody", {}, body));
  }

  // pivotNotes says what a pivoted answer left out: values beyond the
  // pivot's 50, rows beyond the limit, an answer the server cut short.
  function pivotNotes(res) {
    const p = res.pivot, notes = [];
    const label = p.fields.map(f => { const c = res.columns.find(x => x.name === f); return c ? c.label || c.name : f; }).join(" × ");
    if (p.all_values > p.values.length) notes.push(`Showing the first ${p.values.length} of ${p.all_values} values of ${label}; the rest are cut. Filter, or pivot on a dimension with fewer values.`);
    if (p.all_rows > p.rows.length) notes.push(`Showing ${p.rows.length} of ${p.all_rows} rows (the limit).`);
    if (res.truncated) notes.push("The server's row limit cut the answer short.");
    return notes;
  }

  // totals is a pivoted answer without its pivot: the rows' dimensions and
  // totals, as a plain answer (for bars, numbers and funnels).
  function totals(res) {
    const pivoted = new Set(res.pivot.fields);
    const keep = res.columns.filter(c => c.kind === "measure" || !pivoted.has(c.name));
    return { columns: keep, rows: res.pivot.rows.map(r => [...r.dimensions, ...r.totals]) };
  }

  // pivotLines draws a pivoted answer as a line (or area) per pivot value
  // of the first measure, over the first row dimension.
  function pivotLines(box, res, filled) {
    const p = res.pivot;
    const pivoted = new Set(p.fields);
    const dim = res.columns.find(c => c.kind === "dimension" && !pivoted.has(c.name));
    const m = res.columns.find(c => c.kind === "measure");
    const fieldCols = p.fields.map(f => res.columns.find(c => c.name === f));
    const series = p.values.map((v, j) => ({ c: { label: v ? v.map((x, i) => cell(fieldCols[i], x)).join(" · ") : "" }, i: j + 1 }));
    let rows = p.rows.map(r => [r.dimensions[0], ...r.cells.map(cs => cs ? cs[0] : null)]);
    const isTime = dim.type === "time";
    if (isTime) rows = rows.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    const xs = rows.map((r, i) => isTime ? new Date(r[0]).getTime() / 1000 : i);
    const u = lines(box, xs, series, rows, isTime ? null : rows.map(r => cell(dim, r[0])), filled);
    box.prepend(el("div", { class: "hint" }, m.label || m.name));
    return u;
  }

  // draw draws an explore answer in box as k (number, line, area, bar,
  // funnel; table draws nothing) and returns the uPlot, if any. A pivoted
  // answer draws a line or area per pivot value; bars, funnels and numbers
  // show its rows' totals.
  function draw(box, res, k) {
    box.replaceChildren();
    if (res.pivot) {
      const rowDims = res.columns.filter(c => c.kind === "dimension").length - res.pivot.fields.length;
      if ((k === "line" || k === "area") && rowDims > 0 && res.pivot.rows.length && res.pivot.values.length) return pivotLines(box, res, k === "area");
      res = totals(res);
    }
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
    const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#65a30d", "#7c3aed"];
    const fills = colors.map(c => c + "40");
    const x = labels ? { values: (u, splits) => splits.map(v => Number.isInteger(v) && labels[v] !== undefined ? labels[v] : "") } : {};
    const opts = {
      width: Math.max(box.clientWidth - 4, 200), height: 260, scales: { x: { time: !labels } },
      series: [{}].concat(measures.map((m, i) => ({ label: m.c.label || m.c.name, stroke: colors[i % colors.length], fill: filled ? fills[i % colors.length] : undefined, width: 2 }))),
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

  return { cell, table, pivotTable, pivotNotes, draw };
})();
