// Dashboards: the list (GET /api/v1/dashboards) and, at /dashboards/{name},
// a dashboard's tiles, each its explore query (POST /api/v1/explore) under
// the chosen date range, refreshed every refresh interval.
"use strict";
(() => {
  const { api, el, status } = sluice;
  const viz = sluiceViz;
  const $ = id => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.replace(/^\/dashboards\/?/, ""));

  async function list() {
    const res = await api("GET", "/api/v1/dashboards");
    if (!res.dashboards.length) { $("dash-empty").hidden = false; return; }
    $("dash-list").hidden = false;
    document.querySelector("#dashboards tbody").replaceChildren(...res.dashboards.map(d => el("tr", {},
      el("td", {}, el("a", { href: "/dashboards/" + encodeURIComponent(d.name) }, d.title)), el("td", { class: "num" }, d.tiles), el("td", {}, d.description || ""))));
  }

  // seconds reads a Go duration ("10s", "1m", "1h30m").
  function seconds(d) {
    let s = 0;
    for (const [, n, unit] of d.matchAll(/([\d.]+)(h|ms|m|s)/g)) s += Number(n) * { h: 3600, m: 60, s: 1, ms: 0.001 }[unit];
    return s || 60;
  }

  async function show() {
    const d = await api("GET", "/api/v1/dashboards/" + encodeURIComponent(name));
    document.title = d.title + " · Sluice";
    $("dash").hidden = false;
    $("dash-title").textContent = d.title;
    $("dash-desc").textContent = d.description || "";
    const range = $("dash-range");
    const spans = [d.date_filter.default, ...(d.date_filter.options || []).filter(o => o !== d.date_filter.default)];
    range.replaceChildren(...spans.map(s => el("option", { value: s }, s)));
    const p = new URLSearchParams(location.search);
    if (p.get("range") && spans.includes(p.get("range"))) range.value = p.get("range");
    const tiles = d.tiles.map((t, i) => {
      const body = el("div", { class: "tile-body" });
      const box = el("section", { class: `card tile w${t.width} tile-${t.type}`, "data-tile": i }, el("h2", {}, t.title), body);
      return { t, box, body, plot: null };
    });
    $("tiles").replaceChildren(...tiles.map(x => x.box));
    const refresh = async () => {
      await Promise.all(tiles.map(async x => {
        const q = { ...x.t.query, filters: [...(x.t.query.filters || [])] };
        if (x.t.date_filter !== false && x.t.time_field) q.filters.push({ field: x.t.time_field, op: "in the past", value: range.value });
        try {
          const res = await api("POST", "/api/v1/explore", q);
          if (x.plot) x.plot.destroy();
          x.body.replaceChildren();
          if (x.t.type === "table") x.body.append(viz.table(res));
          else if (x.t.type === "pivot") x.body.append(...viz.pivotNotes(res).map(n => el("p", { class: "notice" }, n)), viz.pivotTable(res));
          else x.plot = viz.draw(x.body, res, x.t.type);
          if (!res.rows.length) x.body.append(el("p", { class: "hint" }, "no rows"));
          x.box.classList.remove("failed");
        } catch (e) {
          x.box.classList.add("failed");
          x.body.replaceChildren(el("p", { class: "error" }, e.message));
        }
      }));
      status("dash-status", `updated ${new Date().toLocaleTimeString()}, every ${d.refresh}`);
    };
    range.addEventListener("change", () => {
      history.replaceState(null, "", location.pathname + "?range=" + encodeURIComponent(range.value));
      refresh();
    });
    sluice.every(seconds(d.refresh) * 1000, refresh);
  }

  (name ? show() : list()).catch(e => {
    $("dash-empty").hidden = false;
    $("dash-empty").textContent = e.message;
    $("dash-empty").classList.add("error");
  });
})();
