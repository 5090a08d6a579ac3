// Dashboards: the list (GET /api/v1/dashboards) and, at /dashboards/{name},
// a dashboard's tiles, each its explore query (POST /api/v1/explore) under
// the chosen date range — the last hours or days, or from one day to
// another — refreshed every refresh interval. The range is in the URL:
// ?range=7+days, or ?from=2026-11-01&to=2026-11-07 (UTC days, both whole).
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

  // isDay tells whether s is a day as date inputs write it (2026-11-25).
  const isDay = s => /^\d{4}-\d{2}-\d{2}$/.test(s || "");

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
    const range = $("dash-range"), from = $("dash-from"), to = $("dash-to");
    const spans = [d.date_filter.default, ...(d.date_filter.options || []).filter(o => o !== d.date_filter.default)];
    range.replaceChildren(...spans.map(s => el("option", { value: s }, "Last " + s)), el("option", { value: "dates" }, "Dates…"));
    const p = new URLSearchParams(location.search);
    if (p.get("range") && spans.includes(p.get("range"))) range.value = p.get("range");
    if (isDay(p.get("from")) || isDay(p.get("to"))) {
      range.value = "dates";
      from.value = isDay(p.get("from")) ? p.get("from") : "";
      to.value = isDay(p.get("to")) ? p.get("to") : "";
    }
    $("dash-dates").hidden = range.value !== "dates";
    const tiles = d.tiles.map((t, i) => {
      const body = el("div", { class: "tile-body" });
      const box = el("section", { class: `card tile w${t.width} tile-${t.type}`, "data-tile": i }, el("h2", {}, t.title), body);
      return { t, box, body, plot: null };
    });
    $("tiles").replaceChildren(...tiles.map(x => x.box));
    // A refresh draws only while it is the latest: an answer to an
    // earlier range that comes late is dropped.
    let latest = 0;
    const refresh = async () => {
      const mine = ++latest;
      await Promise.all(tiles.map(async x => {
        const q = { ...x.t.query, filters: [...(x.t.query.filters || [])] };
        if (x.t.date_filter !== false && x.t.time_field) q.filters.push(...dates(x.t.time_field));
        try {
          const res = await api("POST", "/api/v1/explore", q);
          if (mine !== latest) return;
          if (x.plot) x.plot.destroy();
          x.body.replaceChildren();
          if (x.t.type === "table") x.body.append(viz.table(res));
          else if (x.t.type === "pivot") x.body.append(...viz.pivotNotes(res).map(n => el("p", { class: "notice" }, n)), viz.pivotTable(res));
          else x.plot = viz.draw(x.body, res, x.t.type);
          if (!res.rows.length) x.body.append(el("p", { class: "hint" }, "no rows"));
          x.box.classList.remove("failed");
        } catch (e) {
          if (mine !== latest) return;
          x.box.classList.add("failed");
          x.body.replaceChildren(el("p", { class: "error" }, e.message));
        }
      }));
      status("dash-status", `updated ${new Date().toLocaleTimeString()}, every ${d.refresh}`);
    };
    // dates is the date range as filters on a tile's time field: "in the
    // past" a span, or between two days, the second one whole (between
    // includes both ends; times have microseconds); one day alone is an
    // open range.
    const dates = field => {
      if (range.value !== "dates") return [{ field, op: "in the past", value: range.value }];
      const end = day => day + " 23:59:59.999999";
      if (from.value && to.value) return [{ field, op: "between", values: [from.value, end(to.value)] }];
      if (from.value) return [{ field, op: ">=", value: from.value }];
      if (to.value) return [{ field, op: "<=", value: end(to.value) }];
      return [];
    };
    const changed = () => {
      if (range.value === "dates" && !from.value && !to.value) {
        // Start with the last 7 days (UTC), for the user to change.
        const today = new Date();
        to.value = today.toISOString().slice(0, 10);
        from.value = new Date(today.getTime() - 6 * 86400e3).toISOString().slice(0, 10);
      }
      if (from.value && to.value && from.value > to.value) [from.value, to.value] = [to.value, from.value];
      $("dash-dates").hidden = range.value !== "dates";
      const q = new URLSearchParams();
      if (range.value !== "dates") q.set("range", range.value);
      else {
        if (from.value) q.set("from", from.value);
        if (to.value) q.set("to", to.value);
      }
      history.replaceState(null, "", location.pathname + "?" + q.toString());
      refresh();
    };
    for (const e of [range, from, to]) e.addEventListener("change", changed);
    sluice.every(seconds(d.refresh) * 1000, refresh);
  }

  (name ? show() : list()).catch(e => {
    $("dash-empty").hidden = false;
    $("dash-empty").textContent = e.message;
    $("dash-empty").classList.add("error");
  });
})();
