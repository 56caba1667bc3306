// amqp1kit status page: polls api/status and redraws the tables. Plain JavaScript, no
// dependencies. Text from the fakes goes in with textContent only.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const interval = Math.max(100, Number(params.get("interval")) || 1000);
  let prev = null; // {time: ms, values: Map("table/row/col" -> number)}

  // A column: title, value (a function of the row), num for numbers, rate for a
  // counter whose per-second rate is shown.
  const col = (title, value, opts) => Object.assign({ title, value }, opts || {});
  const num = (title, value) => col(title, value, { num: true });
  const rate = (title, value) => col(title, value, { num: true, rate: true });

  const connCols = [
    num("ID", (c) => c.ID),
    col("Container", (c) => c.Container),
    col("Remote", (c) => c.Remote),
    col("User", (c) => c.User + (c.Mechanism ? " (" + c.Mechanism + ")" : "")),
    col("TLS", (c) => (c.TLS ? "yes" : "no")),
    num("Links", (c) => c.Links),
  ];
  const linkCols = [
    num("Conn", (l) => l.Conn),
    col("Container", (l) => l.Container),
    col("Name", (l) => l.Name),
    col("Role", (l) => l.Role),
    col("Address", (l) => l.Address),
    num("Credit", (l) => l.Credit),
    num("Unsettled", (l) => l.Unsettled),
  ];
  const addressCols = [
    col("Address", (a) => a.Address),
    col("Distribution", (a) => a.Distribution),
    num("Consumers", (a) => a.Consumers),
    num("Senders", (a) => a.Senders),
    num("Waiting", (a) => a.Waiting),
    num("In", (a) => a.Counts.Ingress),
    rate("In/s", (a) => a.Counts.Ingress),
    num("Out", (a) => a.Counts.Delivered),
    rate("Out/s", (a) => a.Counts.Delivered),
    num("Dropped", (a) => a.Counts.Dropped),
  ];
  const nodeCols = (topics) => [
    col("Name", (n) => n.Name),
    topics ? null : col("Topic", (n) => n.Topic || (n.Temporary ? "temporary" : "")),
    num("Depth", (n) => n.Depth),
    num("Acquired", (n) => n.Acquired),
    num("Consumers", (n) => n.Consumers),
    num("Senders", (n) => n.Senders),
    topics ? num("Received", (n) => n.Counts.Received) : null,
    num("Enqueued", (n) => n.Counts.Enqueued),
    rate("Enq/s", (n) => n.Counts.Enqueued),
    num("Dequeued", (n) => n.Dequeued),
    rate("Deq/s", (n) => n.Dequeued),
    num("Redelivered", (n) => n.Counts.Redelivered),
    num("Expired", (n) => n.Counts.Expired),
    num("Dropped", (n) => n.Counts.Dropped),
  ].filter(Boolean);

  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };

  function rateOf(values, key, v, dt) {
    values.set(key, v);
    if (!prev || dt <= 0 || !prev.values.has(key)) return "–";
    const r = (v - prev.values.get(key)) / dt;
    return r < 0 ? "–" : r.toFixed(r >= 10 ? 0 : 1);
  }

  // fill replaces the rows of table id; rowKey names a row (data-name).
  function fill(id, cols, rows, rowKey, values, dt) {
    const table = document.getElementById(id);
    const head = el("tr");
    for (const c of cols) head.appendChild(el("th", c.title));
    const body = [head];
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "none", "empty");
      td.colSpan = cols.length;
      tr.appendChild(td);
      body.push(tr);
    }
    for (const row of rows) {
      const tr = el("tr");
      const name = String(rowKey(row));
      tr.dataset.name = name;
      for (const c of cols) {
        const v = c.value(row);
        const text = c.rate ? rateOf(values, id + "/" + name + "/" + c.title, v, dt) : v;
        const td = el("td", text === undefined || text === null ? "" : text, c.num ? (c.rate ? "num rate" : "num") : "");
        td.dataset.col = c.title;
        tr.appendChild(td);
      }
      body.push(tr);
    }
    table.replaceChildren(...body);
  }

  function totals(id, pairs, values, dt) {
    const box = document.getElementById(id);
    const parts = [];
    for (const [label, v, withRate] of pairs) {
      const s = el("span");
      s.dataset.name = label;
      s.append(label + ": ", el("b", v));
      if (withRate) s.append(" (" + rateOf(values, id + "/" + label, v, dt) + "/s)");
      parts.push(s);
    }
    box.replaceChildren(...parts);
  }

  function render(s) {
    const now = Date.parse(s.Time) || Date.now();
    const dt = prev ? (now - prev.time) / 1000 : 0;
    const values = new Map();
    const r = s.Router;
    document.getElementById("router").hidden = !r;
    if (r) {
      document.getElementById("router-id").textContent = r.ID;
      document.getElementById("router-url").textContent = r.URL;
      const t = r.Totals;
      totals("router-totals", [
        ["connections", r.Connections.length], ["links", r.Links.length],
        ["ingress", t.Ingress, true], ["delivered", t.Delivered, true], ["dropped", t.Dropped, true],
        ["accepted", t.Accepted], ["released", t.Released], ["modified", t.Modified], ["rejected", t.Rejected],
      ], values, dt);
      fill("router-connections", connCols, r.Connections, (c) => c.ID, values, dt);
      fill("router-links", linkCols, r.Links, (l) => l.Conn + "/" + l.Name, values, dt);
      fill("router-addresses", addressCols, r.Addresses, (a) => a.Address, values, dt);
    }
    const b = s.Broker;
    document.getElementById("broker").hidden = !b;
    if (b) {
      document.getElementById("broker-id").textContent = b.ID;
      document.getElementById("broker-url").textContent = b.URL;
      const t = b.Totals;
      totals("broker-totals", [
        ["connections", b.Connections.length], ["links", b.Links.length],
        ["received", t.Received, true], ["enqueued", t.Enqueued, true], ["delivered", t.Delivered, true],
        ["acked", t.Acked], ["redelivered", t.Redelivered], ["expired", t.Expired], ["dropped", t.Dropped],
        ["refused", t.Refused],
      ], values, dt);
      fill("broker-connections", connCols, b.Connections, (c) => c.ID, values, dt);
      fill("broker-links", linkCols, b.Links, (l) => l.Conn + "/" + l.Name, values, dt);
      fill("broker-queues", nodeCols(false), b.Nodes.filter((n) => n.Kind !== "topic"), (n) => n.Name, values, dt);
      fill("broker-topics", nodeCols(true), b.Nodes.filter((n) => n.Kind === "topic"), (n) => n.Name, values, dt);
    }
    prev = { time: now, values };
  }

  async function poll() {
    const state = document.getElementById("state");
    try {
      const resp = await fetch("api/status", { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      const s = await resp.json();
      render(s);
      state.textContent = "updated " + new Date(s.Time).toLocaleTimeString() + " · every " + interval / 1000 + " s";
      state.className = "state";
      document.body.dataset.updated = s.Time;
    } catch (e) {
      state.textContent = "cannot read api/status: " + e.message + " (retrying)";
      state.className = "state error";
    }
    setTimeout(poll, interval);
  }
  poll();
})();
