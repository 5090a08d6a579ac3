// Explore: pick an explore's dimensions, measures and filters (GET
// /api/v1/explores), run the query (POST /api/v1/explore) and show the answer
// as a table — a pivot table when dimensions are pivoted — and a chart, with
// the SQL it compiled to. The whole selection lives in the URL's query
// string, so a link shows the same answer.
"use strict";
(() => {
  const { api, el, status } = sluice;
  const viz = sluiceViz;
  const $ = id => document.getElementById(id);
  const nameSel = $("explore-name"), sortSel = $("explore-sort"), vizSel = $("explore-viz");
  let explores = [], operators = [], plot = null;

  const current = () => explores.find(e => e.name === nameSel.value);
  const fieldsOf = e => e ? e.views.flatMap(v => v.fields.filter(f => !f.hidden)) : [];
  const noValue = op => op === "is null" || op === "is not null";
  const manyValues = op => op === "in" || op === "not in" || op === "between";

  // The selection as a query string: explore, fields (comma-separated),
  // pivots (comma-separated), f (one per filter: field|op|value, values
  // comma-separated), sort, desc, limit, viz.
  function state() {
    const p = new URLSearchParams();
    p.set("explore", nameSel.value);
    const fields = selected();
    if (fields.length) p.set("fields", fields.join(","));
    const pivots = chosenPivots();
    if (pivots.length) p.set("pivots", pivots.join(","));
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
    choices(new Set((p.get("pivots") || "").split(",").filter(Boolean)));
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
          el("input", { type: "checkbox", value: f.name, onchange: () => choices() }), " ", f.label || f.name)));
    })).filter(Boolean));
    choices();
  }

  // choices offers the selected fields to sort by and the selected
  // dimensions to pivot on, keeping what was chosen (or the pivots given).
  function choices(pivots) {
    const keep = sortSel.value;
    sortSel.replaceChildren(el("option", { value: "" }, "default"), ...selected().map(f => el("option", { value: f }, label(f))));
    if ([...sortSel.options].some(o => o.value === keep)) sortSel.value = keep;
    const want = pivots || new Set(chosenPivots());
    const dims = selected().filter(f => (fieldsOf(current()).find(x => x.name === f) || {}).kind === "dimension");
    $("explore-pivots").replaceChildren(...dims.map(f => el("label", {}, el("input", { type: "checkbox", value: f, checked: want.has(f) }), " ", label(f))));
    $("explore-pivot-bar").hidden = !dims.length;
  }

  function chosenPivots() {
    return [...document.querySelectorAll("#explore-pivots input:checked")].map(c => c.value);
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
    const pivots = chosenPivots();
    if (pivots.length) q.pivots = pivots;
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
      const size = res.pivot ? `${res.pivot.rows.length} rows × ${res.pivot.values.length} values` : `${res.rows.length} rows`;
      status("explore-status", `${size} in ${Math.round(performance.now() - t0)} ms`);
    } catch (e) {
      status("explore-status", e.message, true);
    }
  }

  function table(res) {
    if (!res.pivot) {
      $("explore-result").replaceChildren(viz.table(res, "explore-table"));
      return;
    }
    $("explore-result").replaceChildren(...viz.pivotNotes(res).map(n => el("p", { class: "notice" }, n)), viz.pivotTable(res, "explore-table"));
  }

  // kind picks the chart: a time dimension first draws lines, other
  // dimensions bars, measures alone one number. A pivot's own dimensions
  // do not count: over time it draws a line per pivot value.
  function kind(res) {
    if (vizSel.value !== "auto") return vizSel.value;
    const pivoted = new Set(res.pivot ? res.pivot.fields : []);
    const dims = res.columns.filter(c => c.kind === "dimension" && !pivoted.has(c.name));
    if (!dims.length) return "number";
    return dims[0].type === "time" ? "line" : "bar";
  }

  function draw(res) {
    if (plot) plot.destroy();
    plot = viz.draw($("explore-chart"), res, kind(res));
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
