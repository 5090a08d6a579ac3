// Shared helpers of the UI's pages: calls of the JSON API (with the CSRF
// token of the session), building DOM, formatting numbers.
"use strict";
const sluice = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // api calls the JSON API and returns the decoded answer; an error answer
  // throws an Error with the server's message.
  async function api(method, path, body) {
    const res = await request(method, path, body);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!res.ok) throw new Error((data && data.error) || res.status + " " + res.statusText);
    return data;
  }

  // request sends a request and returns the response as it is (for
  // streamed answers); a 401 sends the browser to the login page.
  async function request(method, path, body, signal) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, credentials: "same-origin" });
    if (res.status === 401) location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    return res;
  }

  // el builds an element: el("td", {class: "num"}, "12", child…).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  // svg builds an SVG element.
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function num(n, digits) {
    if (n === undefined || n === null || Number.isNaN(n)) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  function bytes(n) {
    const u = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return num(n, i ? 1 : 0) + " " + u[i];
  }

  function time(t) {
    if (!t) return "";
    const d = new Date(t);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function status(id, text, isError) {
    const s = document.getElementById(id);
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  // every runs f now and then every ms while the page is visible.
  function every(ms, f) {
    const tick = async () => {
      if (!document.hidden) {
        try { await f(); } catch (e) { console.warn(e); }
      }
      setTimeout(tick, ms);
    };
    tick();
  }

  // sql runs a read-only query through the API.
  function sql(q) { return api("POST", "/api/v1/sql", { sql: q }); }

  // quote makes s a SQL string literal.
  function quote(s) { return "'" + String(s).replace(/'/g, "''") + "'"; }

  // chart draws a time series with uPlot in parent, sized to it; series
  // are [{label, values}], times in seconds.
  function chart(parent, times, series) {
    parent.textContent = "";
    const width = Math.max(parent.clientWidth - 4, 200);
    const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
    const opts = {
      width, height: 240,
      series: [{}].concat(series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, fill: i ? undefined : "rgba(37,99,235,0.08)" }))),
      axes: [{}, { size: 60 }],
      legend: { show: true },
    };
    const u = new uPlot(opts, [times].concat(series.map(s => s.values)), parent);
    addEventListener("resize", () => u.setSize({ width: Math.max(parent.clientWidth - 4, 200), height: 240 }));
    return u;
  }

  // On a narrow screen the navigation scrolls: show the current page's link.
  const active = document.querySelector("header.top nav a.active");
  if (active) active.parentElement.scrollLeft = active.offsetLeft - active.parentElement.offsetLeft - 16;

  return { api, request, el, svg, num, bytes, time, status, every, sql, quote, chart, csrf };
})();
