// Explore: pick an explore's dimensions, measures and filters (GET
// /api/v1/explores), run the query (POST /api/v1/explore) and show the answer
// as a table and a chart, with the SQL it compiled to. The whole selection
// lives in the URL's query string, so a link shows the same answer.
"use strict";
(() => {
  const { api, el, svg, num, status } = sluice;
  const $ = id => document.getElementById(id);
  const nameSel = $("explore-name"), sortSel = $("explore-sort"), vizSel = $("explore-viz");
  let explores = [], operators = [], plot = null;

  const current = () => explores.find(e => e.name === nameSel.value);
  const fieldsOf = e => e ? e.views.flatMap(v => v.fields.filter(f => !f.hidden)) : [];
  const noValue = op => op === "is null" || op === "is not null";
  const manyValues = op => op === "in" || op === "not in" || op === "between";

  // The selection as a query string: explore, fields (comma-separated),
  // f (one per filter: field|op|value, values comma-separated), sort, desc,
  // limit, viz.
  function state() {
    const p = new URLSearchParams();
    p.set("explore", nameSel.value);
    const fields = selected();
    if (fields.length) p.set("fields", fields.join(","));
    for (const f of filters()) p.append("f", [f.field, f.op, f.text].join("|"));
    if (sortSel.value) p.set("sort", sortSel.value);
    if ($("explore-desc-sort").checked) p.set("desc", "1");
    p.set("limit", $("explore-limit").value || "500");
    if (vizSel.value !== "auto") p.set("viz", vizSel.value);
    return p;
  }

  function restore(p) {
    if (p.get("explore") && explores.some(e => e.name === p.get("explore"))) nameSel.value = p.get("explore");
    drawFields();
    const want = new Set((p.get("fields") || "").split(",").filter(Boolean));
    for (const c of document.querySelectorAll("#explore-fields input")) c.checked = want.has(c.value);
    $("explore-filters").replaceChildren();
    for (const f of p.getAll("f")) {
      const [field, op, ...rest] = f.split("|");
      addFilter(field, op, rest.join("|"));
    }
    sorts();
    if (p.get("sort")) sortSel.value = p.get("sort");
    $("explore-desc-sort").checked = p.get("desc") === "1";
    if (p.get("limit")) $("explore-limit").value = p.get("limit");
    vizSel.value = p.get("viz") || "auto";
  }

  function selected() {
    return [...document.querySelectorAll("#explore-fields input:checked")].map(c => c.value);
  }

  function drawFields() {
    const e = current();
    $("explore-desc").textContent = e ? (e.description || e.label || "") : "";
    $("explore-fields").replaceChildren(...(e ? e.views : []).flatMap(v => ["dimension", "measure"].map(kind => {
      const fs = v.fields.filter(f => f.kind === kind && !f.hidden);
      if (!fs.length) return null;
      return el("fieldset", {}, el("legend", {}, `${v.label || v.name} · ${kind}s`),
        fs.map(f => el("label", { class: kind, title: f.description || f.name },
          el("input", { type: "checkbox", value: f.name, onchange: sorts }), " ", f.label || f.name)));
    })).filter(Boolean));
    sorts();
  }

  function sorts() {
    const keep = sortSel.value;
    sortSel.replaceChildren(el("option", { value: "" }, "default"), ...selected().map(f => el("option", { value: f }, label(f))));
    if ([...sortSel.options].some(o => o.value === keep)) sortSel.value = keep;
  }

  function label(name) {
    const f = fieldsOf(current()).find(x => x.name === name);
    return f ? (f.label || f.name) : name;
  }

  function addFilter(field, op, text) {
    const fieldSel = el("select", { "aria-label": "filter field", class: "filter-field" },
      fieldsOf(current()).map(f => el("option", { value: f.name }, `${f.label || f.name} (${f.kind})`)));
    const opSel = el("select", { "aria-label": "operator", class: "filter-op" }, operators.map(o => el("option", { value: o }, o)));
    const input = el("input", { "aria-label": "value", class: "filter-value", placeholder: "value" });
    if (field) fieldSel.value = field;
    if (op) opSel.value = op;
    input.value = text || "";
    const hint = () => {
      input.hidden = noValue(opSel.value);
      input.placeholder = opSel.value === "between" ? "low, high" : manyValues(opSel.value) ? "a, b, c" : opSel.value === "in the past" ? "7 days" : "value";
    };
    opSel.addEventListener("change", hint);
    hint();
    const row = el("div", { class: "filter-row" }, fieldSel, opSel, input,
      el("button", { type: "button", class: "secondary", "aria-label": "remove filter", onclick: () => row.remove() }, "×"));
    $("explore-filters").append(row);
  }

  function filters() {
    return [...document.querySelectorAll("#explore-filters .filter-row")].map(r => ({
      field: r.querySelector(".filter-field").value, op: r.querySelector(".filter-op").value, text: r.querySelector(".filter-value").value,
    })).filter(f => f.field);
  }

  // value turns what was typed into the JSON the API expects: numbers for
  // numeric fields, a list for in / not in / between.
  function request() {
    const all = fieldsOf(current());
    const typed = (field, s) => {
      const f = all.find(x => x.name === field);
      s = s.trim();
      return f && f.type === "number" && s !== "" && !Number.isNaN(Number(s)) ? Number(s) : s;
    };
    const q = {
      explore: nameSel.value, fields: selected(),
      filters: filters().map(f => {
        if (noValue(f.op)) return { field: f.field, op: f.op };
        if (manyValues(f.op)) return { field: f.field, op: f.op, values: f.text.split(",").map(s => typed(f.field, s)) };
        return { field: f.field, op: f.op, value: typed(f.field, f.text) };
      }),
      limit: Number($("explore-limit").value) || 500,
    };
    if (sortSel.value) q.sorts = [{ field: sortSel.value, desc: $("explore-desc-sort").checked }];
    return q;
  }

  async function run() {
    const q = request();
    history.replaceState(null, "", "/explore?" + state().toString());
    if (!q.fields.length) { status("explore-status", "Pick a dimension or a measure."); return; }
    status("explore-status", "running…");
    try {
      const t0 = performance.now();
      const res = await api("POST", "/api/v1/explore", q);
      $("explore-sql").textContent = res.sql;
      table(res);
      draw(res);
      status("explore-status", `${res.rows.length} rows in ${Math.round(performance.now() - t0)} ms`);
    } catch (e) {
      status("explore-status", e.message, true);
    }
  }

  function cell(c, v) {
    if (v === null || v === undefined) return "null";
    if (c.type === "time") return String(v).replace("T", " ").replace(/(:00)?Z$/, "").replace(/ 00:00$/, "");
    if (typeof v === "number") return num(v, 2);
    return String(v);
  }

  function table(res) {
    $("explore-result").replaceChildren(el("table", { id: "explore-table", class: "table grid" },
      el("thead", {}, el("tr", {}, res.columns.map(c => el("th", { "data-field": c.name, class: c.kind === "measure" ? "num" : undefined }, c.label || c.name)))),
      el("tbody", {}, res.rows.map(r => el("tr", {}, r.map((v, i) => el("td", { class: res.columns[i].kind === "measure" ? "num" : undefined }, cell(res.columns[i], v))))))));
  }

  // kind picks the chart: a time dimension first draws lines, other
  // dimensions bars, measures alone one number.
  function kind(res) {
    if (vizSel.value !== "auto") return vizSel.value;
    const dims = res.columns.filter(c => c.kind === "dimension");
    if (!dims.length) return "number";
    return dims[0].type === "time" ? "line" : "bar";
  }

  function draw(res) {
    const box = $("explore-chart");
    box.replaceChildren();
    plot = null;
    const measures = res.columns.map((c, i) => ({ c, i })).filter(x => x.c.kind === "measure");
    const dim = res.columns.findIndex(c => c.kind === "dimension");
    const k = kind(res);
    if (k === "table" || !measures.length || !res.rows.length) return;
    if (k === "number") {
      const m = measures[0];
      box.append(el("div", { class: "big-number" }, num(res.rows[0][m.i], 2), el("small", {}, m.c.label || m.c.name)));
      return;
    }
    if (k === "bar" || dim < 0) { bars(box, res, dim < 0 ? null : dim, measures[0]); return; }
    // Lines and areas: x is the time, or the row's position for other
    // dimensions (labelled with the dimension's values).
    const rows = res.columns[dim].type === "time"
      ? [...res.rows].sort((a, b) => String(a[dim]).localeCompare(String(b[dim]))) : res.rows;
    const isTime = res.columns[dim].type === "time";
    const xs = rows.map((r, i) => isTime ? new Date(r[dim]).getTime() / 1000 : i);
    plot = lines(box, xs, measures, rows, isTime ? null : rows.map(r => cell(res.columns[dim], r[dim])), k === "area");
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
    addEventListener("resize", () => { if (plot === u) u.setSize({ width: Math.max(box.clientWidth - 4, 200), height: 260 }); });
    return u;
  }

  // bars draws the first measure by the first dimension as horizontal SVG
  // bars (at most 50), which keep long labels readable.
  function bars(box, res, dim, m) {
    const rows = res.rows.slice(0, 50);
    const vals = rows.map(r => Number(r[m.i]) || 0);
    const max = Math.max(...vals.map(Math.abs), 1e-9);
    const w = Math.max(box.clientWidth - 4, 240), rowH = 22, labelW = Math.min(220, Math.round(w * 0.4)), numW = 70;
    const s = svg("svg", { class: "bars", width: w, height: rows.length * rowH + 4, viewBox: `0 0 ${w} ${rows.length * rowH + 4}`, role: "img", "aria-label": m.c.label || m.c.name });
    rows.forEach((r, i) => {
      const y = i * rowH + 2;
      const text = dim === null ? "" : cell(res.columns[dim], r[dim]);
      const barW = Math.max(1, Math.abs(vals[i]) / max * (w - labelW - numW - 8));
      s.append(svg("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, text.length > 32 ? text.slice(0, 31) + "…" : text),
        svg("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 6, rx: 2 }),
        svg("text", { x: labelW + barW + 4, y: y + 15 }, num(vals[i], 2)));
    });
    box.append(s);
  }

  nameSel.addEventListener("change", () => { drawFields(); $("explore-filters").replaceChildren(); });
  $("explore-add-filter").addEventListener("click", () => addFilter());
  $("explore-run").addEventListener("click", run);
  vizSel.addEventListener("change", run);

  (async () => {
    try {
      const res = await api("GET", "/api/v1/explores");
      explores = res.explores || [];
      operators = res.operators || [];
      nameSel.replaceChildren(...explores.map(e => el("option", { value: e.name }, e.label ? `${e.label} (${e.name})` : e.name)));
      if (!explores.length) { status("explore-status", "No models: add a semantic section (semantic: {models: ./models}) to sluice.yaml; docs/semantic.md explains the format."); return; }
      const p = new URLSearchParams(location.search);
      restore(p);
      if (p.get("fields")) await run();
    } catch (e) {
      status("explore-status", e.message, true);
    }
  })();
})();
