// SQL console: run a read-only query through POST /api/v1/sql, show the
// rows in a grid, download them as CSV; the last queries are kept in the
// browser (localStorage).
"use strict";
(() => {
  const { api, el, status } = sluice;
  const editor = document.getElementById("sql-editor");
  const runButton = document.getElementById("sql-run");
  const csvButton = document.getElementById("sql-csv");
  const KEY = "sluice.sql.history";
  let last = null;

  function history() {
    try { return JSON.parse(localStorage.getItem(KEY)) || []; } catch (e) { return []; }
  }

  function remember(q) {
    const h = [q].concat(history().filter(x => x !== q)).slice(0, 50);
    localStorage.setItem(KEY, JSON.stringify(h));
    showHistory();
  }

  function showHistory() {
    const list = document.getElementById("sql-history");
    list.replaceChildren(...history().map(q => el("li", { title: "Click to edit", onclick: () => { editor.value = q; editor.focus(); } }, el("code", {}, q))));
  }

  function cell(v) {
    if (v === null || v === undefined) return "";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  function grid(res) {
    const head = el("tr", {}, res.columns.map(c => el("th", {}, c.name, el("small", {}, c.type))));
    const numeric = res.columns.map(c => /INT|DOUBLE|FLOAT|DECIMAL|REAL|NUMERIC|BIGINT/i.test(c.type));
    const rows = res.rows.map(r => el("tr", {}, r.map((v, i) => el("td", { class: numeric[i] ? "num" : null }, cell(v)))));
    document.getElementById("sql-result").replaceChildren(el("table", { id: "sql-grid" }, el("thead", {}, head), el("tbody", {}, rows)));
  }

  async function run() {
    const q = editor.value.trim();
    if (!q) return;
    runButton.disabled = true;
    status("sql-status", "running…");
    const started = performance.now();
    try {
      const res = await api("POST", "/api/v1/sql", { sql: q });
      last = res;
      grid(res);
      csvButton.disabled = false;
      const ms = Math.round(performance.now() - started);
      status("sql-status", `${res.rows.length} row${res.rows.length === 1 ? "" : "s"}${res.truncated ? " (truncated)" : ""} in ${ms} ms`);
      remember(q);
    } catch (e) {
      status("sql-status", e.message, true);
    } finally {
      runButton.disabled = false;
    }
  }

  function csv() {
    if (!last) return;
    const quote = v => { const s = cell(v); return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; };
    const lines = [last.columns.map(c => quote(c.name)).join(",")].concat(last.rows.map(r => r.map(quote).join(",")));
    const a = el("a", { href: URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" })), download: "sluice-query.csv" });
    document.body.append(a);
    a.click();
    a.remove();
  }

  runButton.addEventListener("click", run);
  csvButton.addEventListener("click", csv);
  editor.addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  showHistory();
  // /sql?q=… opens a query and runs it: a link to a query is its answer.
  const q = new URLSearchParams(location.search).get("q");
  if (q) { editor.value = q; run(); }
})();
