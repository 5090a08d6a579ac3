// Bad rows: the bad table grouped by type and message (POST /api/v1/sql),
// sample payloads of a group, and replay of a type (POST /api/v1/bad/replay).
"use strict";
(() => {
  const { api, sql, quote, el, num, time, status } = sluice;

  async function samples(g) {
    const res = await sql(`SELECT failed_at, collector, path, payload FROM bad WHERE type = ${quote(g.type)} AND message = ${quote(g.message)} ORDER BY failed_at DESC LIMIT 5`);
    document.getElementById("bad-samples").hidden = false;
    document.getElementById("bad-payloads").replaceChildren(el("p", {}, el("strong", {}, g.type), ": " + g.message),
      ...res.rows.map(r => el("div", {}, el("p", { class: "hint" }, `${time(r[0])} · ${r[1]} ${r[2] || ""}`), el("pre", { class: "payload" }, r[3]))));
  }

  async function replay(g, dryRun) {
    status("bad-status", (dryRun ? "counting " : "replaying ") + g.type + "…");
    try {
      const res = await api("POST", "/api/v1/bad/replay", { types: [g.type], since: g.first, dry_run: dryRun });
      status("bad-status", (dryRun ? "would replay: " : "replayed: ") + JSON.stringify(res));
    } catch (e) {
      status("bad-status", e.message, true);
    }
  }

  async function refresh() {
    let res;
    try {
      res = await sql("SELECT type, message, count(*) AS n, min(failed_at) AS first, max(failed_at) AS last FROM bad GROUP BY type, message ORDER BY n DESC LIMIT 200");
    } catch (e) {
      // The bad view appears with the first archived bad row.
      if (/bad/.test(e.message) && /not exist|not found|Catalog/i.test(e.message)) { status("bad-status", "No bad rows yet."); return; }
      throw e;
    }
    const groups = res.rows.map(r => ({ type: r[0], message: r[1], n: r[2], first: r[3], last: r[4] }));
    document.querySelector("#bad tbody").replaceChildren(...groups.map(g => el("tr", {},
      el("td", {}, g.type), el("td", {}, el("a", { href: "#", onclick: e => { e.preventDefault(); samples(g); } }, g.message)),
      el("td", { class: "num" }, num(g.n, 0)), el("td", {}, time(g.last)),
      el("td", { class: "actions" }, el("button", { type: "button", class: "secondary", onclick: () => replay(g, true) }, "Dry run"),
        el("button", { type: "button", onclick: () => { if (confirm(`Replay every ${g.type} row since ${time(g.first)}?`)) replay(g, false); } }, "Replay")))));
    if (!groups.length) status("bad-status", "No bad rows.");
  }

  sluice.every(10000, async () => {
    try { await refresh(); } catch (e) { status("bad-status", e.message, true); }
  });
})();
