// Overview: the flow of DESIGN.md as this node runs it — sources, streams,
// enrich, pipelines and sinks — with rates, lag and errors, redrawn from
// GET /api/v1/status every few seconds; and a chart of the event rates.
"use strict";
(() => {
  const { api, svg, el, num, chart } = sluice;
  const W = 178, H = 58, GX = 222, GY = 72, PAD = 10;
  const history = { t: [], collector: [], enrich: [], archived: [] };
  let plot = null;

  // layers places each node (streams and components) in a column: one
  // further right than the furthest thing that feeds it.
  function layers(nodes, edges) {
    const layer = new Map(nodes.map(n => [n.id, 0]));
    for (let i = 0; i < nodes.length; i++) {
      let changed = false;
      for (const [a, b] of edges) {
        if (layer.get(b) < layer.get(a) + 1 && layer.get(a) + 1 < nodes.length) { layer.set(b, layer.get(a) + 1); changed = true; }
      }
      if (!changed) break;
    }
    return layer;
  }

  function draw(st) {
    const streams = new Set(st.streams.map(s => s.name));
    const nodes = [], edges = [];
    for (const s of st.streams) nodes.push({ id: "s:" + s.name, stream: s });
    for (const c of st.components) {
      nodes.push({ id: "c:" + c.name, comp: c });
      for (const f of c.from || []) if (streams.has(f)) edges.push(["s:" + f, "c:" + c.name]);
      for (const t of c.to || []) if (streams.has(t)) edges.push(["c:" + c.name, "s:" + t]);
    }
    const layer = layers(nodes, edges);
    const cols = [];
    for (const n of nodes) (cols[layer.get(n.id)] = cols[layer.get(n.id)] || []).push(n);
    const pos = new Map();
    const box = document.getElementById("flow");
    // A narrow screen gets one column in flow order, the edges as arcs on
    // its left; a wide one a column per step of the flow.
    const narrow = box.clientWidth < 600;
    let width, height;
    if (narrow) {
      const left = 16 + 6 * Math.min(edges.length, 12);
      cols.flat().forEach((n, i) => pos.set(n.id, { x: left, y: PAD + i * GY }));
      width = left + W + PAD;
      height = PAD * 2 + (nodes.length - 1) * GY + H;
    } else {
      cols.forEach((col, x) => col.forEach((n, y) => pos.set(n.id, { x: PAD + x * GX, y: PAD + y * GY })));
      width = PAD * 2 + (cols.length - 1) * GX + W;
      height = PAD * 2 + (Math.max(...cols.map(c => c.length)) - 1) * GY + H;
    }
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    edges.forEach(([a, b], i) => {
      const p = pos.get(a), q = pos.get(b);
      let d;
      if (narrow) {
        const x = p.x, bend = x - 10 - 6 * (i % 12), y1 = p.y + H / 2, y2 = q.y + H / 2;
        d = `M${x},${y1} C${bend},${y1} ${bend},${y2} ${x},${y2}`;
      } else {
        const x1 = p.x + W, y1 = p.y + H / 2, x2 = q.x, y2 = q.y + H / 2, mx = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      }
      root.append(svg("path", { class: "edge", d }));
    });
    for (const n of nodes) {
      const p = pos.get(n.id);
      const g = svg("g", { class: "node", transform: `translate(${p.x},${p.y})`, "data-id": n.id });
      let name, line1, line2 = "";
      if (n.stream) {
        g.classList.add("stream");
        name = "[" + n.stream.name + "]";
        line1 = num(n.stream.rate) + " msg/s in";
        line2 = num(n.stream.messages, 0) + " held";
      } else {
        const c = n.comp;
        g.classList.add(c.kind);
        if (c.errors > 0) g.classList.add("erring");
        name = c.name + (c.type ? " (" + c.type + ")" : "");
        line1 = c.has_total ? num(c.rate) + "/s · " + num(c.total, 0) + " total" : (c.to || []).join(", ");
        const parts = [];
        if (c.lag !== undefined && c.lag !== null) parts.push("lag " + num(c.lag, 0));
        if (c.has_total) parts.push(num(c.errors, 0) + " errors");
        const sinks = (c.to || []).filter(t => !streams.has(t));
        if (c.has_total && sinks.length) parts.push("→ " + sinks.join(", "));
        line2 = parts.join(" · ");
      }
      // The whole of what the box may cut short, on hover.
      g.append(svg("title", {}, [name, line1, line2].filter(Boolean).join("\n")));
      g.append(svg("rect", { width: W, height: H, rx: 6 }));
      g.append(svg("text", { class: "name", x: 8, y: 17 }, name.length > 26 ? name.slice(0, 25) + "…" : name));
      g.append(svg("text", { class: "stats", x: 8, y: 34 }, line1.length > 32 ? line1.slice(0, 31) + "…" : line1));
      g.append(svg("text", { class: "stats", x: 8, y: 49 }, line2.length > 32 ? line2.slice(0, 31) + "…" : line2));
      root.append(g);
    }
    box.replaceChildren(root);
  }

  function record(st) {
    const rate = name => (st.components.find(c => c.name === name) || {}).rate || 0;
    history.t.push(new Date(st.time).getTime() / 1000);
    history.collector.push(rate("collector"));
    history.enrich.push(rate("enrich"));
    history.archived.push(st.components.filter(c => c.name.startsWith("archive ")).reduce((s, c) => s + c.rate, 0));
    for (const k in history) if (history[k].length > 200) history[k].shift();
    const series = [
      { label: "collected /s", values: history.collector },
      { label: "enriched /s", values: history.enrich },
      { label: "archived rows /s", values: history.archived },
    ];
    // Rates need two answers; a chart needs two points.
    if (history.t.length < 3) {
      document.getElementById("rate-chart").textContent = "Measuring…";
      return;
    }
    if (!plot) plot = chart(document.getElementById("rate-chart"), history.t, series);
    else plot.setData([history.t, history.collector, history.enrich, history.archived]);
  }

  sluice.every(3000, async () => {
    try {
      const st = await api("GET", "/api/v1/status");
      draw(st);
      record(st);
    } catch (e) {
      document.getElementById("flow").replaceChildren(el("p", { class: "error" }, "Status unavailable: " + e.message));
    }
  });
})();
