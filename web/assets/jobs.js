// Jobs: the DAG of the jobs' requirements (GET /api/v1/jobs), their runs
// with state, attempts and logs (GET /api/v1/runs, /api/v1/runs/{id}), and
// buttons that run, backfill and cancel through the API.
"use strict";
(() => {
  const { api, request, el, svg, time, status } = sluice;
  const W = 170, H = 44, GX = 210, GY = 60, PAD = 10;
  let jobs = [];
  const rows = new Map(); // job name → its row in the table

  function dag() {
    const names = new Set(jobs.map(j => j.name));
    const nodes = jobs.map(j => j.name);
    for (const j of jobs) for (const r of j.requires || []) if (!names.has(r) && !nodes.includes(r)) nodes.push(r);
    const edges = [];
    for (const j of jobs) for (const r of j.requires || []) edges.push([r, j.name]);
    const layer = new Map(nodes.map(n => [n, 0]));
    for (let i = 0; i < nodes.length; i++) {
      let changed = false;
      for (const [a, b] of edges) if (layer.get(b) < layer.get(a) + 1 && layer.get(a) + 1 < nodes.length) { layer.set(b, layer.get(a) + 1); changed = true; }
      if (!changed) break;
    }
    const cols = [];
    for (const n of nodes) (cols[layer.get(n)] = cols[layer.get(n)] || []).push(n);
    const pos = new Map();
    cols.forEach((col, x) => col.forEach((n, y) => pos.set(n, { x: PAD + x * GX, y: PAD + y * GY })));
    const box = document.getElementById("dag");
    if (!nodes.length) { box.replaceChildren(el("p", { class: "hint" }, "No jobs are configured (jobs: in sluice.yaml).")); return; }
    const width = PAD * 2 + (cols.length - 1) * GX + W, height = PAD * 2 + (Math.max(...cols.map(c => c.length)) - 1) * GY + H;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    for (const [a, b] of edges) {
      const p = pos.get(a), q = pos.get(b);
      const x1 = p.x + W, y1 = p.y + H / 2, x2 = q.x, y2 = q.y + H / 2, mx = (x1 + x2) / 2;
      root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    }
    for (const n of nodes) {
      const j = jobs.find(x => x.name === n);
      const state = j && j.last ? j.last.state : (j ? "never run" : "external target");
      const p = pos.get(n);
      const g = svg("g", { class: "node " + state, transform: `translate(${p.x},${p.y})` },
        svg("title", {}, n), svg("rect", { width: W, height: H, rx: 6 }),
        svg("text", { class: "name", x: 8, y: 18 }, n.length > 24 ? n.slice(0, 23) + "…" : n),
        svg("text", { class: "stats", x: 8, y: 35 }, j && j.disabled ? "disabled" : state));
      root.append(g);
    }
    box.replaceChildren(root);
  }

  async function act(what, f) {
    status("jobs-status", what + "…");
    try {
      const res = await f();
      status("jobs-status", what + ": " + res);
    } catch (e) {
      status("jobs-status", what + ": " + e.message, true);
    }
    refresh();
  }

  // runJob runs a job with the parameters typed next to its button.
  function runJob(j, row) {
    act("run " + j.name, async () => {
      const params = {};
      for (const input of row.querySelectorAll("input[data-param]")) {
        if (!input.value) throw new Error(`give ${input.dataset.param}`);
        params[input.dataset.param] = input.value;
      }
      const res = await api("POST", `/api/v1/jobs/${encodeURIComponent(j.name)}/runs`, { params });
      return res.run ? "started " + res.run.id : res.message;
    });
  }

  // paramInputs are the inputs of a job's parameters ("date date", "n int").
  function paramInputs(j) {
    const yesterday = new Date(Date.now() - 864e5).toISOString().slice(0, 10);
    return (j.params || []).map(p => {
      const [name, type] = p.split(" ");
      return el("input", { "data-param": name, "aria-label": name, placeholder: name, title: `${name} (${type})`,
        type: type === "date" ? "date" : type === "int" ? "number" : "text", value: type === "date" ? yesterday : null, class: "param" });
    });
  }

  function backfill(j) {
    const from = document.getElementById("bf-from").value, to = document.getElementById("bf-to").value;
    act("backfill " + j.name, async () => {
      if (!from || !to) throw new Error("choose the dates to backfill (From and to)");
      const res = await request("POST", `/api/v1/jobs/${encodeURIComponent(j.name)}/backfill`, { from, to });
      const text = await res.text();
      if (!res.ok) throw new Error(JSON.parse(text).error);
      const last = JSON.parse(text.trim().split("\n").pop());
      return `${last.done} of ${last.total} dates done, ${last.failed} failed`;
    });
  }

  function cancel(r) {
    act("cancel " + r.id, async () => (await api("POST", `/api/v1/runs/${encodeURIComponent(r.id)}/cancel`)).state);
  }

  async function show(id) {
    const r = await api("GET", "/api/v1/runs/" + encodeURIComponent(id));
    document.getElementById("run-detail").hidden = false;
    document.getElementById("run-title").textContent = `${r.job} ${JSON.stringify(r.params || {})} — ${r.state}`;
    document.getElementById("run-attempts").replaceChildren(
      ...(r.error ? [el("p", { class: "error" }, r.error)] : []),
      ...(r.attempts || []).map(a => el("div", { class: "attempt" },
        el("strong", {}, `Attempt ${a.n}: `), el("span", { class: "state-" + a.state }, a.state), ` ${time(a.started)} → ${time(a.ended)} on ${a.owner}`,
        a.error ? el("p", { class: "error" }, a.error) : null,
        a.backoff ? el("p", { class: "hint" }, "next attempt after " + a.backoff) : null,
        el("pre", {}, a.log || "(no log)"))));
  }

  async function refresh() {
    jobs = await api("GET", "/api/v1/jobs") || [];
    dag();
    // A job's row is made once, so that refreshing keeps what was typed
    // into its parameters; its name and last run cells are updated.
    const tbody = document.querySelector("#jobs tbody");
    for (const j of jobs) {
      let row = rows.get(j.name);
      if (!row) {
        row = el("tr", { "data-job": j.name }, el("td", {}), el("td", {}, j.schedule || ""), el("td", {}),
          el("td", { class: "actions" }, paramInputs(j), el("button", { type: "button", onclick: () => runJob(j, row) }, "Run"),
            (j.params || []).includes("date date") ? el("button", { type: "button", class: "secondary", onclick: () => backfill(j) }, "Backfill") : null,
            el("button", { type: "button", class: "secondary", hidden: true, onclick: () => act("enable " + j.name, async () => (await api("POST", `/api/v1/jobs/${encodeURIComponent(j.name)}/enable`)).enabled) }, "Enable")));
        rows.set(j.name, row);
        tbody.append(row);
      }
      row.cells[0].replaceChildren(j.name, j.disabled ? el("div", { class: "error" }, "disabled: " + j.disabled) : "");
      row.cells[2].replaceChildren(j.last ? el("span", { class: "state-" + j.last.state }, j.last.state + " " + time(j.last.created)) : "never");
      row.cells[3].lastChild.hidden = !j.disabled;
    }
    const runs = await api("GET", "/api/v1/runs?limit=50");
    document.querySelector("#runs tbody").replaceChildren(...runs.map(r => el("tr", {},
      el("td", {}, el("a", { href: "#", onclick: e => { e.preventDefault(); show(r.id); } }, r.id)),
      el("td", {}, r.job), el("td", { class: "mono" }, Object.entries(r.params || {}).map(([k, v]) => k + "=" + v).join(" ")),
      el("td", { class: "state-" + r.state }, r.state), el("td", { class: "num" }, (r.attempts || []).length),
      el("td", {}, time(r.created)),
      el("td", {}, r.state === "running" || r.state === "queued" ? el("button", { type: "button", class: "secondary", onclick: () => cancel(r) }, "Cancel") : null))));
  }

  const today = new Date().toISOString().slice(0, 10);
  document.getElementById("bf-to").value = today;
  document.getElementById("bf-from").value = new Date(Date.now() - 6 * 864e5).toISOString().slice(0, 10);
  sluice.every(5000, async () => {
    try { await refresh(); } catch (e) { status("jobs-status", e.message, true); }
  });
})();
