// Causeway dashboard: reads <base>api/topologies once, then one
// Server-Sent Events stream (<base>events), and redraws each topology.
// Plain JavaScript and SVG; no dependencies.
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base") || "./";
  var SVGNS = "http://www.w3.org/2000/svg";
  var maxPoints = 300;
  var state = { topologies: [], panels: [], history: {} }; // history by topology name

  // ---- formatting ----
  function int(n) { return Math.round(n || 0).toLocaleString("en-US"); }
  function rate(n) {
    n = n || 0;
    if (n >= 100) return int(n) + "/s";
    return (Math.round(n * 10) / 10).toFixed(1) + "/s";
  }
  function dur(s) {
    if (!s) return "0";
    if (s < 1e-3) return (s * 1e6).toFixed(0) + "µs";
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + "ms";
    return s.toFixed(2) + "s";
  }
  function nanos(ns) { return dur((ns || 0) / 1e9); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function shortType(t) { return String(t || "").replace(/[\w./-]*\//g, "").replace(/\[.*\]$/, ""); }

  // ---- data ----
  function absorb(set, withHistory) {
    state.time = set.time;
    state.interval = set.interval_ms || 1000;
    state.topologies = set.topologies || [];
    state.panels = set.panels || [];
    state.topologies.forEach(function (t) {
      var h = state.history[t.name] || [];
      if (withHistory && t.history) h = t.history.slice();
      else if (t.point && (!h.length || h[h.length - 1].t < t.point.t)) h.push(t.point);
      if (h.length > maxPoints) h = h.slice(h.length - maxPoints);
      state.history[t.name] = h;
    });
    render();
  }

  // Concurrency text with whatever limits Stats carries (for example
  // MinConcurrency and MaxConcurrency once concurrency adapts).
  function concurrency(st) {
    var s = "concurrency " + int(st.Concurrency);
    var lim = [];
    Object.keys(st).forEach(function (k) {
      if (k !== "Concurrency" && /Concurrency/.test(k) && typeof st[k] === "number") lim.push(k.replace("Concurrency", "").toLowerCase() + " " + int(st[k]));
    });
    return lim.length ? s + " (" + lim.join(", ") + ")" : s;
  }

  // ---- the graph ----
  function el(name, attrs, text) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function node(svg, x, y, w, h, lines, cls, key) {
    var g = el("g", { "class": "node " + (cls || ""), "data-stage": key });
    g.appendChild(el("rect", { "class": "box", x: x, y: y, width: w, height: h, rx: 6 }));
    lines.forEach(function (ln, i) {
      if (ln.bar) {
        var bw = w - 20, fill = ln.cap > 0 ? Math.min(1, ln.value / ln.cap) : 0;
        g.appendChild(el("rect", { "class": "bar-bg", x: x + 10, y: y + 12 + i * 16, width: bw, height: 6 }));
        g.appendChild(el("rect", { "class": "bar" + (fill >= 0.99 ? " full" : ""), x: x + 10, y: y + 12 + i * 16, width: Math.max(0, bw * fill), height: 6 }));
        return;
      }
      var t = el("text", { x: x + 10, y: y + 18 + i * 16, "class": ln.cls || "" }, ln.text);
      if (ln.k) t.setAttribute("data-k", ln.k);
      g.appendChild(t);
    });
    svg.appendChild(g);
  }
  function edge(svg, x1, y1, x2, y2, label) {
    var mx = (x1 + x2) / 2;
    svg.appendChild(el("path", { "class": "edge", d: "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + (x2 - 4) + "," + y2 }));
    if (label) svg.appendChild(el("text", { "class": "edge-label", x: mx - 22, y: (y1 + y2) / 2 - 5 }, label));
  }
  function graph(t) {
    var d = t.description, st = t.stats, p = t.point || {};
    var bs = st.Batchers || [], bd = d.Batchers || [];
    var W = 220, H = 124, gap = 40, colX = [10, 290, 570, 850];
    var rows = Math.max(1, bs.length), height = rows * (H + 16) + 10;
    var svg = el("svg", { "class": "graph", viewBox: "0 0 1080 " + height, role: "img", "aria-label": "topology " + t.name });
    var defs = el("defs");
    var m = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
    m.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8da2c0" }));
    defs.appendChild(m); svg.appendChild(defs);
    var midY = height / 2 - H / 2;
    var pr = st.Producer, pp = p.producer || {};
    node(svg, colX[0], midY, W, H, [
      { text: "producer", cls: "title" },
      { text: shortType(d.Producer.Type) + " ×" + d.Producer.Concurrency, cls: "sub" },
      { text: "in " + rate(pp.in) + " · out " + rate(pp.out) },
      { text: "buffer " + int(pr.Buffered) + " / " + int(pr.Capacity), k: "buffered" },
      { bar: true, value: pr.Buffered, cap: pr.Capacity },
      { text: "dropped " + int(pr.Dropped) + " (" + rate(pp.dropped) + ")", k: "producer-dropped" },
      { text: "emitted " + int(pr.Emitted) + " · demand " + int(pr.Demand), k: "emitted" }
    ], pr.Dropped > 0 ? "warn" : "", "producer");
    var q = st.Processors, qp = p.processors || {};
    node(svg, colX[1], midY, W, H, [
      { text: "processors", cls: "title" },
      { text: concurrency(q) + " · demand " + d.Processors.MinDemand + ".." + d.Processors.MaxDemand, cls: "sub" },
      { text: "in " + rate(qp.in) + " · out " + rate(qp.out) },
      { text: "received " + int(q.Received), k: "processors-received" },
      { text: "failed " + int(q.Failed) + " · panics " + int(q.Panics), k: "processors-failed" },
      { text: "latency p50 " + dur(qp.p50) + " · p99 " + dur(qp.p99) },
      { text: "forwarded " + int(q.Forwarded) }
    ], q.Failed > 0 ? "bad" : "", "processors");
    edge(svg, colX[0] + W, midY + H / 2, colX[1], midY + H / 2, rate(pp.out));
    if (!bs.length) {
      node(svg, colX[2], midY, W, 60, [{ text: "no batchers", cls: "title" }, { text: "acknowledged after processing", cls: "sub" }], "", "none");
      edge(svg, colX[1] + W, midY + H / 2, colX[2], midY + 30, rate(p.acked));
    }
    bs.forEach(function (b, i) {
      var desc = bd.filter(function (x) { return x.Name === b.Name; })[0] || {};
      var bp = (p.batchers || []).filter(function (x) { return x.name === b.Name; })[0] || {};
      var y = 10 + i * (H + 16);
      var status = b.Blocked ? "blocked: retrying a batch" : "";
      if (b.Spill) status = (b.Spill.SinkDown ? "sink down · " : "") + "spill " + int(b.Spill.Records) + (b.Spill.Full ? " (full)" : "");
      node(svg, colX[2], y, W, H, [
        { text: "batcher " + b.Name, cls: "title" },
        { text: "size " + int(desc.BatchSize) + " " + (desc.SizedBy || "") + " or " + nanos(desc.BatchTimeout), cls: "sub" },
        { text: "received " + int(b.Received) + " · in " + rate(bp.in), k: "batcher-received-" + b.Name },
        { text: "pending " + int(b.Pending) },
        { text: "batch size ~" + int(bp.batch_size) + " · batches " + int(b.Batches) },
        { text: concurrency(b) },
        { text: status || (desc.RetryAttempts > 1 ? desc.RetryAttempts + " attempts" : " "), cls: "sub" }
      ], b.Blocked || (b.Spill && b.Spill.SinkDown) ? "warn" : "", "batcher-" + b.Name);
      node(svg, colX[3], y, W, H, [
        { text: "sink " + b.Name, cls: "title" },
        { text: "handleBatch", cls: "sub" },
        { text: "out " + rate(bp.out) + " · failed " + rate(bp.failed) },
        { text: "acked " + int(b.Acked), k: "sink-acked-" + b.Name },
        { text: "failed " + int(b.Failed) + " · batches failed " + int(b.BatchesFailed), k: "sink-failed-" + b.Name },
        { text: "retries " + int(b.Retries) + " · missing " + int(b.Missing) },
        { text: "latency p50 " + dur(bp.p50) + " · p99 " + dur(bp.p99) }
      ], b.Failed > 0 || b.BatchesFailed > 0 ? "bad" : "", "sink-" + b.Name);
      edge(svg, colX[1] + W, midY + H / 2, colX[2], y + H / 2, rate(bp.in));
      edge(svg, colX[2] + W, y + H / 2, colX[3], y + H / 2, "");
    });
    return svg;
  }

  // ---- plots ----
  var colors = ["#2f6fd0", "#2f8f46", "#c62828", "#a05cc0", "#d08a00"];
  function plot(title, hist, series, fmt) {
    var w = 260, h = 70, box = document.createElement("div");
    box.className = "plot";
    var mx = 0;
    series.forEach(function (s) { hist.forEach(function (pt) { var v = s.get(pt); if (v > mx) mx = v; }); });
    var last = series.map(function (s) { return hist.length ? s.get(hist[hist.length - 1]) : 0; });
    var span = hist.length > 1 ? Math.round((hist[hist.length - 1].t - hist[0].t) / 1000) : 0;
    box.innerHTML = '<div class="t">' + esc(title) + " · last " + span + "s · max " + esc(fmt(mx)) + "</div>";
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
    svg.appendChild(el("line", { x1: 0, y1: h - 1, x2: w, y2: h - 1, stroke: "#d0d4dc" }));
    series.forEach(function (s, i) {
      var pts = hist.map(function (pt, j) {
        var x = hist.length > 1 ? (j / (hist.length - 1)) * w : w;
        var y = h - 2 - (mx > 0 ? (s.get(pt) / mx) * (h - 6) : 0);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
      svg.appendChild(el("polyline", { points: pts, stroke: colors[i % colors.length] }));
    });
    box.appendChild(svg);
    var lg = document.createElement("div");
    lg.className = "legend";
    lg.innerHTML = series.map(function (s, i) {
      return '<span style="color:' + colors[i % colors.length] + '">■ ' + esc(s.name) + " " + esc(fmt(last[i])) + "</span>";
    }).join("");
    box.appendChild(lg);
    return box;
  }
  function plots(t) {
    var hist = state.history[t.name] || [], div = document.createElement("div");
    div.className = "plots";
    div.appendChild(plot("messages per second", hist, [
      { name: "in", get: function (p) { return p.producer.in; } },
      { name: "acked", get: function (p) { return p.acked; } },
      { name: "failed", get: function (p) { return p.failed; } },
      { name: "dropped", get: function (p) { return p.producer.dropped; } }
    ], rate));
    div.appendChild(plot("buffer fill", hist, [
      { name: "buffered", get: function (p) { return p.producer.buffered; } }
    ], int));
    div.appendChild(plot("processor latency", hist, [
      { name: "p50", get: function (p) { return p.processors.p50; } },
      { name: "p99", get: function (p) { return p.processors.p99; } }
    ], dur));
    (t.stats.Batchers || []).forEach(function (b) {
      function bp(p) { return (p.batchers || []).filter(function (x) { return x.name === b.Name; })[0] || {}; }
      div.appendChild(plot("batch size " + b.Name, hist, [
        { name: "mean", get: function (p) { return bp(p).batch_size || 0; } }
      ], int));
      div.appendChild(plot("handler latency " + b.Name, hist, [
        { name: "p50", get: function (p) { return bp(p).p50 || 0; } },
        { name: "p99", get: function (p) { return bp(p).p99 || 0; } }
      ], dur));
    });
    return div;
  }

  // ---- tables ----
  function flat(obj, prefix, out) {
    Object.keys(obj || {}).forEach(function (k) {
      var v = obj[k];
      if (v && typeof v === "object" && !Array.isArray(v)) {
        if ("Bounds" in v && "Counts" in v) {
          out.push([prefix + k + ".Count", v.Count]);
          return;
        }
        flat(v, prefix + k + ".", out);
      } else if (!Array.isArray(v)) out.push([prefix + k, v]);
    });
    return out;
  }
  function kvTable(rows) {
    return "<table>" + rows.map(function (r) {
      var v = r[1], n = typeof v === "number";
      return "<tr><th>" + esc(r[0]) + '</th><td class="' + (n ? "n" : "") + '">' + esc(n ? int(v) : v) + "</td></tr>";
    }).join("") + "</table>";
  }
  function details(t) {
    var st = t.stats, parts = [];
    parts.push("<div><h3>producer</h3>" + kvTable(flat(st.Producer, "", [])) + "</div>");
    parts.push("<div><h3>processors</h3>" + kvTable(flat(st.Processors, "", [])) + "</div>");
    (st.Batchers || []).forEach(function (b) { parts.push("<div><h3>batcher " + esc(b.Name) + "</h3>" + kvTable(flat(b, "", [])) + "</div>"); });
    return '<details><summary>every counter of Stats()</summary><div class="stage-tables">' + parts.join("") + "</div></details>";
  }
  function errorsHTML(t) {
    var es = t.errors || [];
    if (!es.length) return '<h3>latest errors</h3><p class="none">none</p>';
    return '<h3>latest errors</h3><table class="errors"><tr><th>time</th><th>stage</th><th>count</th><th>error</th></tr>' +
      es.map(function (e) {
        return "<tr><td>" + esc(new Date(e.time).toLocaleTimeString()) + "</td><td>" + esc(e.stage) + '</td><td class="n">' + int(e.count) +
          '</td><td class="msg">' + esc(e.message) + "</td></tr>";
      }).join("") + "</table>";
  }
  // avg is the mean of the last n points' acked and failed rates: acks
  // come in batches, so one interval alone jumps between 0 and twice the rate.
  function avg(hist, n) {
    var pts = hist.slice(-n), a = 0, f = 0;
    pts.forEach(function (p) { a += p.acked; f += p.failed; });
    return pts.length ? { acked: a / pts.length, failed: f / pts.length } : {};
  }
  function totals(t) {
    var c = t.conservation, p = avg(state.history[t.name] || [], 5);
    function cell(k, label, v, bad) {
      return '<div><div class="v' + (bad ? " bad-text" : "") + '" data-k="' + k + '">' + int(v) + '</div><div class="l">' + label + "</div></div>";
    }
    return '<div class="totals">' +
      cell("emitted", "emitted", c.emitted) + cell("acked", "acked (" + rate(p.acked) + " over 5s)", c.acked) +
      cell("failed", "failed (" + rate(p.failed) + " over 5s)", c.failed, c.failed > 0) + cell("dropped", "dropped", c.dropped, c.dropped > 0) +
      cell("inflight", "in flight", c.in_flight) + "</div>" +
      '<div class="conservation" data-k="conservation">emitted ' + int(c.emitted) + " = acked " + int(c.acked) + " + failed " + int(c.failed) +
      " + dropped " + int(c.dropped) + " + in flight " + int(c.in_flight) + " · " +
      (c.holds ? '<span class="ok">✓ holds</span>' : '<span class="off">✗ ' + esc(c.text) + "</span>") + "</div>";
  }

  // ---- panels ----
  function panelHTML(data) {
    if (data === null || data === undefined) return "<p>—</p>";
    if (Array.isArray(data)) {
      if (!data.length) return '<p class="none">none yet</p>';
      if (typeof data[0] === "object") {
        var cols = Object.keys(data[0]);
        return "<table><tr>" + cols.map(function (c) { return "<th>" + esc(c) + "</th>"; }).join("") + "</tr>" +
          data.map(function (r) {
            return "<tr>" + cols.map(function (c) {
              var v = r[c]; return '<td class="' + (typeof v === "number" ? "n" : "") + '">' + esc(typeof v === "number" ? int(v) : (typeof v === "object" ? JSON.stringify(v) : v)) + "</td>";
            }).join("") + "</tr>";
          }).join("") + "</table>";
      }
      return "<p>" + esc(data.join(", ")) + "</p>";
    }
    if (typeof data === "object") return kvTable(flat(data, "", []));
    return "<p>" + esc(data) + "</p>";
  }
  // Custom renderers by panel name: window.causewayPanels[name] = function (data, element) {...}.
  var renderers = window.causewayPanels = window.causewayPanels || {};

  // ---- the station map (panel kind "station-map") ----
  // Stations are placed by an equirectangular projection (longitude scaled
  // by the cosine of the middle latitude), fitted to the box: no tiles.
  function num(v) { return typeof v === "number" && isFinite(v); }
  function inService(s) { return s.installed !== false && s.renting !== false; }
  // fillOf is bikes over capacity (or over bikes + docks), from 0 to 1.
  function fillOf(s) {
    var cap = s.capacity > 0 ? s.capacity : (s.bikes || 0) + (s.docks || 0);
    return cap > 0 ? Math.max(0, Math.min(1, (s.bikes || 0) / cap)) : 0;
  }
  function stationColor(s) {
    if (!inService(s)) return "#9aa0a8";
    return "hsl(" + Math.round(120 * fillOf(s)) + ", 72%, 42%)"; // red (empty) to green (full)
  }
  function stationTitle(s) {
    var lines = [(s.name || s.station_id || "station") + (s.name && s.station_id ? " (" + s.station_id + ")" : "")];
    lines.push("bikes " + int(s.bikes) + (s.capacity > 0 ? " of " + int(s.capacity) : "") + " · docks " + int(s.docks));
    if (!inService(s)) {
      lines.push("out of service:" + (s.installed === false ? " not installed" : "") + (s.renting === false ? " not renting" : ""));
    } else if (s.returning === false) lines.push("not returning");
    if (s.last_reported) lines.push("reported " + new Date(s.last_reported).toLocaleString());
    return lines.join("\n");
  }
  // niceKm rounds a distance down to 1, 2 or 5 times a power of ten.
  function niceKm(km) {
    var p = Math.pow(10, Math.floor(Math.log10(km))), m = km / p;
    return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
  }
  function stationMap(data, box) {
    var st = (Array.isArray(data) ? data : []).filter(function (s) { return s && num(s.lat) && num(s.lon); });
    if (!st.length) { box.innerHTML = '<p class="none">no station located yet</p>'; return; }
    var minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
    st.forEach(function (s) {
      minLat = Math.min(minLat, s.lat); maxLat = Math.max(maxLat, s.lat);
      minLon = Math.min(minLon, s.lon); maxLon = Math.max(maxLon, s.lon);
    });
    var k = Math.cos((minLat + maxLat) / 2 * Math.PI / 180);
    var spanX = (maxLon - minLon) * k, spanY = maxLat - minLat;
    var W = 800, pad = 16;
    var H = spanX > 0 ? Math.max(240, Math.min(600, Math.round(W * spanY / spanX) + 2 * pad)) : 400;
    var scale = Math.min(spanX > 0 ? (W - 2 * pad) / spanX : Infinity, spanY > 0 ? (H - 2 * pad) / spanY : Infinity);
    if (!isFinite(scale)) scale = 0; // one place: every station in the middle
    var offX = (W - spanX * scale) / 2, offY = (H - spanY * scale) / 2;
    var r = Math.max(2.5, Math.min(9, Math.sqrt(W * H / st.length) / 6));
    var svg = el("svg", { "class": "station-map", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "map of " + st.length + " stations" });
    svg.appendChild(el("rect", { "class": "map-bg", x: 0, y: 0, width: W, height: H }));
    var sum = { bikes: 0, empty: 0, full: 0, off: 0 };
    st.forEach(function (s) {
      var x = offX + (s.lon - minLon) * k * scale, y = H - offY - (s.lat - minLat) * scale;
      var c = el("circle", { "class": "station", cx: x.toFixed(1), cy: y.toFixed(1), r: r.toFixed(1), fill: stationColor(s) });
      if (s.station_id !== undefined) c.setAttribute("data-station", s.station_id);
      c.appendChild(el("title", {}, stationTitle(s)));
      svg.appendChild(c);
      sum.bikes += s.bikes || 0;
      if (!inService(s)) sum.off++;
      else if (fillOf(s) === 0) sum.empty++;
      else if (fillOf(s) === 1) sum.full++;
    });
    if (scale > 0) { // a scale bar: one degree of latitude is about 111.32 km
      var pxKm = scale / 111.32, km = niceKm(W / 5 / pxKm), len = km * pxKm;
      var g = el("g", { "class": "scale" });
      g.appendChild(el("path", { d: "M" + pad + "," + (H - 10) + " h" + len.toFixed(1) }));
      g.appendChild(el("text", { x: pad, y: H - 14 }, km >= 1 ? km + " km" : Math.round(km * 1000) + " m"));
      svg.appendChild(g);
    }
    box.textContent = "";
    box.appendChild(svg);
    var lg = document.createElement("div");
    lg.className = "map-legend";
    lg.innerHTML = '<span class="ramp"></span> empty → full (bikes available of capacity) ' +
      '<span class="swatch" style="background:#9aa0a8"></span> out of service' +
      '<span class="map-sum" data-k="map-stations">' + int(st.length) + " stations · " + int(sum.bikes) + " bikes · " +
      int(sum.empty) + " empty · " + int(sum.full) + " full · " + int(sum.off) + " out of service</span>";
    box.appendChild(lg);
  }
  // Drawings by panel kind (Panel.Kind in Go).
  var kinds = { "station-map": stationMap };
  var drawn = {}; // by panel name: the data last drawn, and its drawing

  // ---- the page ----
  function render() {
    var main = document.getElementById("topologies");
    main.textContent = "";
    state.topologies.forEach(function (t) {
      var sec = document.createElement("section");
      sec.className = "topology";
      sec.setAttribute("data-topology", t.name);
      sec.innerHTML = "<h2>topology " + esc(t.name) + "</h2>";
      sec.appendChild(graph(t));
      var info = document.createElement("div");
      info.innerHTML = totals(t);
      sec.appendChild(info);
      sec.appendChild(plots(t));
      var rest = document.createElement("div");
      rest.innerHTML = errorsHTML(t) + details(t);
      sec.appendChild(rest);
      main.appendChild(sec);
    });
    var ps = document.getElementById("panels");
    ps.textContent = "";
    state.panels.forEach(function (p) {
      var sec = document.createElement("section");
      sec.className = "panel";
      sec.setAttribute("data-panel", p.name);
      sec.innerHTML = "<h2>" + esc(p.title) + "</h2>";
      var body = document.createElement("div");
      var draw = renderers[p.name] || (p.kind && kinds[p.kind]);
      if (p.error) body.innerHTML = '<p class="bad-text">' + esc(p.error) + "</p>";
      else if (draw) {
        // A drawing is redrawn only when its data changed, so that a
        // tooltip being read stays up.
        var json = JSON.stringify(p.data), prev = drawn[p.name];
        if (prev && prev.json === json && prev.draw === draw) body = prev.body;
        else {
          try { draw(p.data, body); } catch (e) { body.innerHTML = '<p class="bad-text">drawing failed: ' + esc(e.message) + "</p>"; }
          drawn[p.name] = { json: json, draw: draw, body: body };
        }
      } else body.innerHTML = panelHTML(p.data);
      sec.appendChild(body);
      ps.appendChild(sec);
    });
    document.getElementById("clock").textContent = state.time ? new Date(state.time).toLocaleTimeString() : "";
    document.body.setAttribute("data-updated", state.time || "");
  }

  function setStatus(text, cls) {
    var s = document.getElementById("status");
    s.textContent = text;
    s.className = "status " + cls;
  }

  function load() {
    return fetch(base + "api/topologies", { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      return r.json();
    });
  }
  // One event stream per page. Headless Chromium's virtual time
  // (--virtual-time-budget, used to dump or screenshot the page) stands
  // still while a stream is open, so a headless browser reads the JSON
  // once per interval instead, unless the address asks for ?live=sse.
  function stream() {
    var es = new EventSource(base + "events");
    es.addEventListener("sample", function (ev) { absorb(JSON.parse(ev.data), false); setStatus("live", "live"); });
    es.onerror = function () { setStatus("reconnecting", "down"); };
    window.addEventListener("pagehide", function () { es.close(); });
  }
  function poll() {
    setTimeout(function () {
      load().then(function (set) { absorb(set, false); setStatus("live (polling)", "live"); })
        .catch(function (e) { setStatus("no data: " + e.message, "down"); }).then(poll);
    }, state.interval || 1000);
  }
  var headless = /HeadlessChrome/.test(navigator.userAgent) && !/[?&]live=sse\b/.test(location.search);
  load().then(function (set) { absorb(set, true); })
    .catch(function (e) { setStatus("no data: " + e.message, "down"); })
    .then(headless ? poll : stream);
})();
