// Streams: each stream on the bus with its size, rate, and the stages that
// read it with their lag (GET /api/v1/status); and a live tail of a stream
// (GET /api/v1/tap, NDJSON read as it comes).
"use strict";
(() => {
  const { api, request, el, num, bytes, status } = sluice;
  const select = document.getElementById("tail-stream");
  const out = document.getElementById("tail");
  const start = document.getElementById("tail-start"), stop = document.getElementById("tail-stop");
  let tap = null;

  async function refresh() {
    const st = await api("GET", "/api/v1/status");
    const rows = st.streams.map(s => {
      const readers = st.components.filter(c => (c.from || []).includes(s.name))
        .map(c => c.name + (c.lag !== undefined && c.lag !== null ? " (" + num(c.lag, 0) + ")" : ""));
      return el("tr", { "data-stream": s.name }, el("td", {}, el("a", { href: "#", onclick: e => { e.preventDefault(); select.value = s.name; } }, s.name)),
        el("td", { class: "num" }, num(s.messages, 0)), el("td", { class: "num" }, bytes(s.bytes)),
        el("td", { class: "num" }, num(s.rate)), el("td", {}, readers.join(", ")));
    });
    document.querySelector("#streams tbody").replaceChildren(...rows);
    if (!select.options.length) {
      select.replaceChildren(...st.streams.map(s => el("option", { value: s.name }, s.name)));
      select.value = st.streams.some(s => s.name === "events") ? "events" : (st.streams[0] || {}).name;
    }
  }

  async function tail() {
    const q = new URLSearchParams({ stream: select.value, from: document.getElementById("tail-from").value });
    const filter = document.getElementById("tail-filter").value.trim();
    if (filter) q.set("filter", filter);
    tap = new AbortController();
    start.disabled = true; stop.disabled = false;
    out.textContent = "";
    let lines = 0;
    status("tail-status", "connecting…");
    try {
      const res = await request("GET", "/api/v1/tap?" + q, undefined, tap.signal);
      if (!res.ok) throw new Error((await res.json()).error);
      // The tap has fixed where it starts (Sluice-Tap-From) once it answers.
      status("tail-status", "waiting for events on " + q.get("stream") + " from sequence " + res.headers.get("Sluice-Tap-From") + "…");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        const parts = buf.split("\n");
        buf = parts.pop();
        for (const line of parts) {
          if (!line) continue;
          out.append(line + "\n");
          lines++;
        }
        while (out.childNodes.length > 500) out.firstChild.remove();
        out.scrollTop = out.scrollHeight;
        status("tail-status", num(lines, 0) + " events");
      }
      status("tail-status", num(lines, 0) + " events; the tap ended");
    } catch (e) {
      if (e.name === "AbortError") status("tail-status", num(lines, 0) + " events; stopped");
      else status("tail-status", e.message, true);
    } finally {
      start.disabled = false; stop.disabled = true;
    }
  }

  start.addEventListener("click", tail);
  stop.addEventListener("click", () => tap && tap.abort());
  sluice.every(3000, refresh);
})();
