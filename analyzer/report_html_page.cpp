// The HTML report's static page: style and script around the JSON payload (report_html.cpp).
// Plain DOM and SVG, no libraries and nothing fetched: the file works offline and forever.
// Script errors are counted in <body data-js-errors> and shown in a banner, so a test in a
// real browser can see them.
#include "report_html.h"

namespace heapscope::analyzer {

const char* const kHtmlPageHead = R"page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heapscope report</title>
<style>
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --bg: #f6f7f9; --card: #fff;
        --definite: #c62828; --indirect: #ef6c00; --possible: #f9a825; --reachable: #2e7d32;
        --unclassified: #6a1b9a; --live: #1565c0; --rss: #8e24aa; --alloc: #00897b; --agent: #f57c00; --mapped: #6d4c41; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header.page { padding: 16px 24px; background: #1d2330; color: #fff; }
header.page h1 { margin: 0; font-size: 20px; }
header.page p { margin: 4px 0 0; color: #c5cbd6; }
main { padding: 16px 24px 48px; max-width: 1280px; }
#js-errors { background: #ffebee; color: #b71c1c; padding: 8px 24px; font-weight: 600; }
section.process, details.process { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin-bottom: 20px; }
details.process > summary { cursor: pointer; font-weight: 600; }
h2 { font-size: 18px; margin: 0 0 4px; word-break: break-all; }
h3 { font-size: 15px; margin: 22px 0 8px; }
.sub { color: var(--muted); margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; background: #fbfcfd; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 20px; font-weight: 650; }
.card .detail { color: var(--muted); font-size: 12px; }
.card.bad .value { color: var(--definite); }
.card.good .value { color: var(--reachable); }
.note { color: var(--muted); font-size: 13px; }
.warn { color: #8a4b00; background: #fff4e0; border-radius: 4px; padding: 4px 8px; display: inline-block; }
svg text { font-size: 11px; fill: var(--muted); }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.row { cursor: pointer; }
tr.row:hover { background: #f0f4fa; }
tr.detail td { background: #fafbfc; }
ol.stack { margin: 4px 0; padding-left: 28px; font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; }
ol.stack li { word-break: break-all; }
.kind { display: inline-block; padding: 0 6px; border-radius: 9px; color: #fff; font-size: 12px; }
.kind.definite { background: var(--definite); } .kind.indirect { background: var(--indirect); }
.kind.possible { background: var(--possible); color: #222; } .kind.reachable { background: var(--reachable); }
.kind.unclassified { background: var(--unclassified); } .kind.error { background: var(--definite); }
.controls { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin-bottom: 6px; }
.controls input[type=search] { padding: 3px 6px; width: 220px; }
.flame { position: relative; overflow: hidden; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
.flame .frame { position: absolute; height: 17px; overflow: hidden; white-space: nowrap; font-size: 11px; line-height: 17px;
                padding: 0 3px; border-right: 1px solid #fff; border-bottom: 1px solid #fff; cursor: pointer; color: #1d1d1d; }
.flame .frame.match { background: #e040fb !important; color: #fff; }
.flame .frame:hover { filter: brightness(0.92); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 18px; }
</style>
</head>
<body data-js-errors="0">
<div id="js-errors" hidden></div>
<header class="page"><h1>heapscope report</h1><p id="overview"></p></header>
<main id="report"></main>
<script id="payload" type="application/json">)page";

const char* const kHtmlPageTail = R"page(</script>
<script>
"use strict";
const jsErrors = [];
function showErrors() {
  document.body.dataset.jsErrors = String(jsErrors.length);
  const box = document.getElementById("js-errors");
  box.hidden = jsErrors.length === 0;
  box.textContent = "This report's script failed: " + jsErrors.join("; ");
}
window.addEventListener("error", (event) => { jsErrors.push(String(event.message)); showErrors(); });

const SVG = "http://www.w3.org/2000/svg";
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}
// append() would print null as the text "null": skip absent parts.
function appendAll(parent, ...children) { for (const child of children) if (child !== null && child !== undefined) parent.append(child); }
function num(n) { return Number(n).toLocaleString("en-US"); }
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n), unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) { value /= 1024; ++unit; }
  return (unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)) + " " + units[unit];
}
function seconds(s) {
  if (s >= 1) return s.toFixed(2) + " s";
  if (s >= 0.001 || s === 0) return (s * 1000).toFixed(1) + " ms";
  if (s >= 1e-6) return (s * 1e6).toFixed(0) + " µs";
  return (s * 1e9).toFixed(0) + " ns";  // a run shorter than a microsecond still gets an axis
}
// A byte count for a card: rounded, with the exact count on hover.
function exactBytes(n) { return num(n) + " bytes"; }
// A frame with no function (a stripped library) is named by its module and offset in it: the
// same in every run, unlike its address.
function moduleOffset(f) { return f.module ? f.module.slice(f.module.lastIndexOf("/") + 1) + "+" + f.module_offset : null; }
function frameText(f) {
  let where = "";
  if (f.file) where = " (" + f.file + (f.line ? ":" + f.line : "") + ")";
  else if (f.module && f.function) where = " (in " + f.module + ")";
  else if (f.module) where = " (in " + f.module + "+" + f.module_offset + ")";
  return (f.function || "???") + (f.inlined ? " [inlined]" : "") + where;
}
function topFrame(stack) {
  return stack && stack.length ? (stack[0].function || moduleOffset(stack[0]) || stack[0].address) : "(no stack)";
}
function stackList(stack) {
  if (!stack || !stack.length) return el("p", {class: "note", text: "(no stack recorded)"});
  return el("ol", {class: "stack", start: "0"}, ...stack.map((f) => el("li", {text: frameText(f)})));
}
function exitText(p) {
  if (p.attach && p.still_running) return "attached " + seconds(p.attach.duration_seconds) + ", detached";
  if (p.still_running) return "still running";
  if (p.ended_by_exec) return "replaced by exec";
  if (p.exit.signal !== null) return "killed by signal " + p.exit.signal;
  if (p.exit.code !== null) return "exit code " + p.exit.code;
  return "exit unknown";
}

// A table whose rows open a detail row (stacks) when clicked.
function expandableTable(headers, rows, detailOf, className) {
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", {class: "row"}, ...row.cells);
    let detail = null;
    tr.addEventListener("click", () => {
      if (detail) { detail.remove(); detail = null; return; }
      detail = el("tr", {class: "detail"}, el("td", {colspan: String(headers.length)}, ...detailOf(row)));
      tr.after(detail);
    });
    body.append(tr);
  }
  return el("table", {class: className || ""},
            el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {class: h.num ? "num" : "", text: h.text})))), body);
}

function card(label, value, detail, tone, exact) {
  const shown = el("div", {class: "value", text: value});
  if (exact) shown.setAttribute("title", exact);
  return el("div", {class: "card " + (tone || "")}, el("div", {class: "label", text: label}), shown,
            detail ? el("div", {class: "detail", text: detail}) : null);
}

function cards(p) {
  const leaks = p.summary.leaks;
  const lost = leaks.definite.bytes + leaks.indirect.bytes + leaks.possible.bytes + leaks.unclassified.bytes;
  const kindCard = (kind, label) => card(label, bytes(leaks[kind].bytes), num(leaks[kind].blocks) + " blocks",
                                          kind === "reachable" ? "" : leaks[kind].bytes > 0 ? "bad" : "good",
                                          exactBytes(leaks[kind].bytes));
  const stats = p.statistics;
  return el("div", {class: "cards", "data-role": "summary-cards"},
    card("leaked", bytes(lost), "definite + indirect + possible" + (leaks.unclassified.blocks ? " + unclassified" : ""), lost > 0 ? "bad" : "good", exactBytes(lost)),
    kindCard("definite", "definitely lost"), kindCard("indirect", "indirectly lost"), kindCard("possible", "possibly lost"),
    kindCard("reachable", "still reachable"),
    leaks.unclassified.blocks ? kindCard("unclassified", "unclassified") : null,
    card("heap errors", num(p.summary.error_count), null, p.summary.error_count > 0 ? "bad" : "good"),
    card("peak heap", bytes(p.summary.peak_live_bytes), "live at once", "", exactBytes(p.summary.peak_live_bytes)),
    card("allocations", num(p.summary.allocations), num(p.summary.frees) + " frees, " + bytes(p.summary.bytes_allocated)),
    card("run time", seconds(stats.duration_seconds), stats.allocations_per_second ? num(Math.round(stats.allocations_per_second)) + " allocations/s" : null),
    card("exit", exitText(p), p.complete ? null : "recording incomplete"),
    p.attach ? attachCard(p.attach) : null);
}

// heapscope attach: the session (the leaks are what the process allocated during it and kept).
function attachCard(a) {
  const box = card("attached", seconds(a.duration_seconds),
                   num(a.redirected_slots) + " slots in " + num(a.redirected_modules) + " modules redirected; " +
                   num(a.frees_of_older_blocks) + " older blocks freed; ended by " + a.ended_by);
  box.setAttribute("data-role", "attach-card");
  return box;
}

function timeline(p) {
  const points = p.statistics.timeline;
  const box = el("div", {"data-role": "timeline"});
  if (!points.length) {
    box.append(el("p", {class: "note", text: "No samples: the run was shorter than --sample-ms, or sampling was off."}));
    return box;
  }
  const W = 900, H = 240, L = 70, R = 20, T = 14, B = 28;
  // heapscope's own memory (its tables, ring, quarantine, block headers) is part of the RSS it
  // samples: drawn apart, with the RSS the program would have without it.
  const shared = points.some((s) => s.agent_bytes !== undefined && s.agent_bytes !== null);
  for (const s of points)
    s.program_rss_bytes = shared && s.agent_bytes !== null ? Math.max(0, s.rss_bytes - s.agent_bytes) : null;
  const series = [
    {key: "live_bytes", label: "live heap (program)", color: "var(--live)"},
    {key: "rss_bytes", label: shared ? "RSS (whole process)" : "RSS", color: "var(--rss)"},
    ...(shared ? [{key: "program_rss_bytes", label: "RSS without heapscope's share", color: "var(--rss)", dash: "6 4"},
                  {key: "agent_bytes", label: "heapscope's share of the RSS", color: "var(--agent)"}] : []),
    {key: "allocator_bytes", label: "allocator footprint (arena + mmapped)", color: "var(--alloc)"},
    ...(points.some((s) => s.mapped_bytes) ? [{key: "mapped_bytes", label: "mapped by the program (mmap)", color: "var(--mapped)"}] : []),
  ];
  const tMax = Math.max(1e-9, ...points.map((s) => s.time_seconds));
  let yMax = p.summary.peak_live_bytes;
  for (const s of points) for (const line of series) if (s[line.key] !== null) yMax = Math.max(yMax, s[line.key]);
  yMax = Math.max(1, yMax);
  const x = (t) => L + (W - L - R) * t / tMax, y = (v) => T + (H - T - B) * (1 - v / yMax);
  const chart = svg("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "heap over time", class: "heap-chart"});
  for (let i = 0; i <= 4; ++i) {
    const v = yMax * i / 4;
    chart.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eceff3"}),
                 svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", text: bytes(Math.round(v))}));
  }
  for (let i = 0; i <= 4; ++i) {
    const t = tMax * i / 4;
    chart.append(svg("text", {x: x(t), y: H - 8, "text-anchor": "middle", text: seconds(t)}));
  }
  for (const line of series) {
    const coords = points.filter((s) => s[line.key] !== null).map((s) => `${x(s.time_seconds).toFixed(1)},${y(s[line.key]).toFixed(1)}`);
    if (coords.length) chart.append(svg("polyline", {points: coords.join(" "), fill: "none", stroke: line.color, "stroke-width": "2",
                                                     "stroke-dasharray": line.dash || "none", "data-series": line.key}));
  }
  // The exact peak (from every event, not only the samples) as a line; the highest sample marked.
  chart.append(svg("line", {x1: L, x2: W - R, y1: y(p.summary.peak_live_bytes), y2: y(p.summary.peak_live_bytes),
                            stroke: "var(--definite)", "stroke-dasharray": "5 4", class: "peak-line"}),
               svg("text", {x: W - R, y: y(p.summary.peak_live_bytes) - 4, "text-anchor": "end", text: "peak " + bytes(p.summary.peak_live_bytes)}));
  let top = points[0];
  for (const s of points) if (s.live_bytes > top.live_bytes) top = s;
  chart.append(svg("circle", {cx: x(top.time_seconds), cy: y(top.live_bytes), r: 5, fill: "var(--definite)", class: "peak-marker"},
                   svg("title", {text: "highest sample: " + bytes(top.live_bytes) + " at " + seconds(top.time_seconds)})));
  appendAll(box, chart, el("div", {class: "legend"}, ...series.map((line) => el("span", {}, el("i", {style: "background:" + line.color}), line.label)),
                       el("span", {}, el("i", {style: "background:var(--definite)"}), "peak")));
  return box;
}

// Flame graph of the allocation call tree: outermost frames on top, width by the chosen cost.
function flame(p, first) {
  const metrics = [["allocated bytes", 0, bytes], ["bytes at peak", 1, bytes], ["leaked bytes (live at exit)", 2, bytes], ["allocation calls", 3, num]];
  const box = el("div", {"data-role": "flame-graph"});
  const select = el("select", {"aria-label": "flame graph cost"}, ...metrics.map((m, i) => el("option", {value: String(i), text: m[0]})));
  const search = el("input", {type: "search", placeholder: "search frames", "aria-label": "search frames"});
  const reset = el("button", {type: "button", text: "reset zoom"});
  const status = el("span", {class: "note"});
  const area = el("div", {class: "flame"});
  box.append(el("div", {class: "controls"}, select, search, reset, status), area);
  let zoom = [p.flame];  // path from the root to the zoomed node
  const hue = (name) => { let h = 0; for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0; return 10 + h % 50; };
  function draw() {
    const [label, metric, format] = metrics[Number(select.value)];
    const focus = zoom[zoom.length - 1];
    const total = focus[1][metric];
    area.textContent = "";
    const width = area.clientWidth || 900, row = 18, query = search.value.trim().toLowerCase();
    let rows = 0, shown = 0, matched = 0;
    const place = (node, depth, left, span, inMatch) => {
      if (span * width < 0.5 || shown > 4000) return;
      rows = Math.max(rows, depth + 1);
      const isMatch = query !== "" && node[0].toLowerCase().includes(query);
      if (isMatch && !inMatch) matched += node[1][metric];
      const div = el("div", {class: "frame" + (isMatch ? " match" : ""), title: `${node[0]}\n${format(node[1][metric])} (${(100 * node[1][metric] / Math.max(1, total)).toFixed(1)}%)`,
                             style: `left:${(left * 100).toFixed(4)}%;width:${(span * 100).toFixed(4)}%;top:${depth * row}px;background:hsl(${hue(node[0])},85%,${70 - depth % 3 * 4}%)`,
                             text: span * width > 36 ? node[0] : ""});
      div.addEventListener("click", () => {
        const index = zoom.indexOf(node);
        zoom = index >= 0 ? zoom.slice(0, index + 1) : zoom.concat(pathTo(zoom[zoom.length - 1], node));
        draw();
      });
      area.append(div);
      ++shown;
      let offset = left;
      for (const child of node[2]) {
        const childSpan = total > 0 ? span * child[1][metric] / node[1][metric] : 0;
        if (child[1][metric] > 0) place(child, depth + 1, offset, childSpan, inMatch || isMatch);
        offset += childSpan;
      }
    };
    if (total > 0) place(focus, 0, 0, 1, false);
    area.style.height = Math.max(1, rows) * row + "px";
    status.textContent = total > 0 ? `${label}: ${format(total)}` + (zoom.length > 1 ? ` in ${focus[0]}` : "") +
        (query ? ` — matches: ${(100 * matched / total).toFixed(1)}%` : "") : `no ${label}`;
  }
  function pathTo(from, target) {
    for (const child of from[2]) {
      if (child === target) return [child];
      const below = pathTo(child, target);
      if (below.length) return [child, ...below];
    }
    return [];
  }
  select.addEventListener("change", draw);
  search.addEventListener("input", draw);
  reset.addEventListener("click", () => { zoom = [p.flame]; draw(); });
  // A link can open the first process's flame graph on a cost, a search and a zoomed frame:
  // report.html#metric=2&search=parse&zoom=main
  if (first) {
    const state = new URLSearchParams(location.hash.slice(1));
    if (state.has("metric")) select.value = state.get("metric");
    if (state.has("search")) search.value = state.get("search");
    if (state.has("zoom")) {
      const find = (node) => { if (node[0] === state.get("zoom")) return [node]; for (const c of node[2]) { const path = find(c); if (path.length) return [node, ...path]; } return []; };
      const path = find(p.flame);
      if (path.length) zoom = path;
    }
  }
  // Drawn at once (labels sized for 900 px: the page is not laid out yet, and a headless dump
  // may come before the next frame), then again at the real width and on every resize.
  draw();
  requestAnimationFrame(draw);
  window.addEventListener("resize", draw);
  return box;
}

function leaksTable(p) {
  const box = el("div", {"data-role": "leak-table"});
  const lostOnly = el("input", {type: "checkbox", checked: "checked"});
  const holder = el("div");
  const draw = () => {
    const leaks = p.leaks.filter((l) => !lostOnly.checked || l.kind !== "reachable");
    holder.textContent = "";
    if (!leaks.length) { holder.append(el("p", {class: "note", text: p.leaks.length ? "Nothing lost: every block live at exit is still reachable." : "No block was live at exit."})); return; }
    holder.append(expandableTable(
      [{text: "kind"}, {text: "bytes", num: true}, {text: "blocks", num: true}, {text: "allocator"}, {text: "allocated at (click for the stack)"}],
      leaks.map((l) => ({leak: l, cells: [el("td", {}, el("span", {class: "kind " + l.kind, text: l.kind})), el("td", {class: "num", text: num(l.bytes)}),
                                            el("td", {class: "num", text: num(l.blocks)}), el("td", {text: l.allocator}), el("td", {text: topFrame(l.stack)})]})),
      (row) => [stackList(row.leak.stack)], "leaks"));
  };
  lostOnly.addEventListener("change", draw);
  const scan = p.leak_scan;
  appendAll(box, el("div", {class: "controls"}, el("label", {}, lostOnly, " lost only (hide still reachable)")),
            scan.classified ? (scan.not_covered ? el("p", {class: "warn", text: "Scan incomplete: " + scan.not_covered}) : null)
                            : el("p", {class: "warn", text: "Leaks not classified: " + scan.reason}),
            holder, p.leaks_not_shown ? el("p", {class: "note", text: num(p.leaks_not_shown) + " smaller records are in the JSON report."}) : null);
  draw();
  return box;
}

function errorsTable(p) {
  const box = el("div", {"data-role": "error-table"});
  if (!p.errors.length) { box.append(el("p", {class: "note", text: "No heap error."})); return box; }
  box.append(expandableTable(
    [{text: "error"}, {text: "address"}, {text: "block", num: true}, {text: "detected at (click for the stacks)"}],
    p.errors.map((e) => ({error: e, cells: [el("td", {}, el("span", {class: "kind error", text: e.kind})), el("td", {text: e.address}),
                                            el("td", {class: "num", text: e.block_size ? num(e.block_size) + " B" : "—"}),
                                            el("td", {text: e.detected_at_exit ? "at exit" :
                                                        (e.access ? "the " + e.access + " itself, in " : "") + topFrame(e.stack)})]})),
    (row) => [el("strong", {text: "detected at"}), stackList(row.error.stack),
              row.error.alloc_stack ? el("strong", {text: "allocated by " + (row.error.allocator || "?") + " at"}) : null,
              row.error.alloc_stack ? stackList(row.error.alloc_stack) : null,
              row.error.free_stack ? el("strong", {text: "freed at"}) : null, row.error.free_stack ? stackList(row.error.free_stack) : null],
    "errors"));
  return box;
}

function histogram(p) {
  const buckets = p.statistics.size_histogram;
  const box = el("div", {"data-role": "size-histogram"});
  if (!buckets.length) { box.append(el("p", {class: "note", text: "No allocation."})); return box; }
  const W = 440, H = 200, L = 50, B = 46, T = 10;
  const most = Math.max(...buckets.map((b) => b.count));
  const barW = (W - L) / buckets.length;
  const chart = svg("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "allocation sizes"});
  buckets.forEach((b, i) => {
    const h = (H - T - B) * b.count / most;
    chart.append(svg("rect", {x: L + i * barW + 1, y: H - B - h, width: Math.max(1, barW - 2), height: h, fill: "var(--live)", class: "bar"},
                     svg("title", {text: `${bytes(b.min)}–${bytes(b.max)}: ${num(b.count)} allocations, ${bytes(b.bytes)}`})),
                 svg("text", {x: L + (i + 0.5) * barW, y: H - B + 12, "text-anchor": "end", transform: `rotate(-40 ${L + (i + 0.5) * barW} ${H - B + 12})`, text: bytes(b.min)}));
  });
  chart.append(svg("text", {x: L - 6, y: T + 8, "text-anchor": "end", text: num(most)}), svg("text", {x: L - 6, y: H - B, "text-anchor": "end", text: "0"}));
  box.append(chart);
  return box;
}

function sitesTable(sites, valueKey, label, format) {
  if (!sites.length) return el("p", {class: "note", text: "None."});
  return expandableTable([{text: label, num: true}, {text: "allocated at"}],
    sites.map((s) => ({site: s, cells: [el("td", {class: "num", text: format(s[valueKey])}), el("td", {text: topFrame(s.stack)})]})),
    (row) => [stackList(row.site.stack)], "sites");
}

function statistics(p) {
  const st = p.statistics, a = st.allocator;
  const rows = [["program: live at exit", bytes(p.summary.live_at_exit.bytes) + " in " + num(p.summary.live_at_exit.blocks) + " blocks"],
                ["program: peak", bytes(p.summary.peak_live_bytes)],
                ["temporary allocations", num(st.temporary_allocations) + " (freed before their thread allocated again)"],
                ["heapscope overhead", bytes(st.overhead.headers_and_canaries) + " headers and canaries, " + bytes(st.overhead.quarantine) + " in the quarantine"]];
  if (st.rss_bytes !== null) rows.push(["resident set (last sample)", bytes(st.rss_bytes)]);
  if (st.agent_rss) rows.push([`heapscope's share of the highest sampled RSS (${bytes(st.agent_rss.rss_bytes)})`, bytes(st.agent_rss.total) +
      ` (tables ${bytes(st.agent_rss.tables)}, ring ${bytes(st.agent_rss.ring)}, code ${bytes(st.agent_rss.image)},` +
      ` quarantine ${bytes(st.agent_rss.quarantine)}, headers and canaries ${bytes(st.agent_rss.headers_and_canaries)})`]);
  if (a) {
    rows.push(["allocator: arena (non-mmapped)", bytes(a.arena)], ["allocator: hblks / hblkhd (mmapped)", num(a.hblks) + " / " + bytes(a.hblkhd)],
              ["allocator: uordblks (in use)", bytes(a.uordblks)], ["allocator: fordblks (free) in ordblks chunks", bytes(a.fordblks) + " in " + num(a.ordblks)],
              ["allocator: keepcost (releasable top)", bytes(a.keepcost)]);
  } else {
    rows.push(["allocator", "not glibc's (no mallinfo2)"]);
  }
  return el("table", {"data-role": "statistics"}, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {text: k}), el("td", {text: v})))));
}

function checks(p) {
  if (!p.leak_checks.length) return null;
  return el("div", {"data-role": "leak-checks"}, el("h3", {text: "Leak checks on demand"}),
    ...p.leak_checks.map((c, i) => {
      const n = c.new_leaks;
      return el("div", {}, el("p", {text: `check ${i + 1} at ${seconds(c.time_seconds)}${c.phase ? " (phase " + c.phase + ")" : ""}: ` +
                                           `${bytes(n.definite.bytes + n.indirect.bytes + n.possible.bytes)} newly lost`}),
                c.leaks.length ? expandableTable([{text: "kind"}, {text: "bytes", num: true}, {text: "allocated at"}],
                  c.leaks.map((l) => ({leak: l, cells: [el("td", {}, el("span", {class: "kind " + l.kind, text: l.kind})), el("td", {class: "num", text: num(l.bytes)}), el("td", {text: topFrame(l.stack)})]})),
                  (row) => [stackList(row.leak.stack)]) : null);
    }));
}

// The memory the program mapped itself (mmap), by call site: not a leak, shown as the heap is.
function mappingsTable(p) {
  const m = p.mappings;
  const box = el("div", {"data-role": "mappings"});
  if (!m || !(m.calls.mmap + m.calls.munmap + m.calls.mremap)) {
    box.append(el("p", {class: "note", text: "The program mapped no memory itself (mmap)."}));
    return box;
  }
  appendAll(box, el("p", {text: `${bytes(m.at_exit.bytes)} still mapped at exit in ${num(m.at_exit.regions)} regions; peak ${bytes(m.peak_bytes)}; ` +
                                 `${num(m.calls.mmap)} mmap, ${num(m.calls.munmap)} munmap, ${num(m.calls.mremap)} mremap calls.`}),
    expandableTable(
      [{text: "kind"}, {text: "mapped", num: true}, {text: "at exit", num: true}, {text: "calls", num: true}, {text: "mapped at (click for the stack)"}],
      m.sites.map((s) => ({site: s, cells: [el("td", {text: s.kind}), el("td", {class: "num", text: bytes(s.bytes_mapped), title: num(s.bytes_mapped) + " bytes"}),
                                           el("td", {class: "num", text: bytes(s.at_exit.bytes), title: num(s.at_exit.bytes) + " bytes"}),
                                           el("td", {class: "num", text: num(s.calls)}), el("td", {text: topFrame(s.stack)})]})),
      (row) => [stackList(row.site.stack)]));
  return box;
}

function processBody(p, first) {
  const st = p.statistics;
  const scan = p.leak_scan;
  return [
    cards(p),
    el("h3", {text: "Heap over time"}), timeline(p),
    el("h3", {text: "Where the memory was allocated"}), flame(p, first),
    el("h3", {text: "Leaks"}), leaksTable(p),
    el("p", {class: "note", text: scan.classified ? `Leak scan: ${num(scan.blocks)} blocks in ${seconds(scan.duration_seconds)}, threads stopped by ${scan.stop_method}.` : ""}),
    el("h3", {text: "Heap errors"}), errorsTable(p),
    checks(p),
    el("h3", {text: "Memory mapped by the program (mmap)"}), mappingsTable(p),
    el("div", {class: "grid2"},
       el("div", {}, el("h3", {text: "Allocation sizes"}), histogram(p)),
       el("div", {}, el("h3", {text: "Statistics"}), statistics(p))),
    el("div", {class: "grid2", "data-role": "top-sites"},
       el("div", {}, el("h3", {text: "Top sites by bytes"}), sitesTable(st.top_sites.by_bytes, "bytes", "bytes", bytes)),
       el("div", {}, el("h3", {text: "Top sites by calls"}), sitesTable(st.top_sites.by_count, "allocations", "calls", num)),
       el("div", {}, el("h3", {text: "Top sites by temporary allocations"}), sitesTable(st.top_sites.by_temporary, "temporary", "temporary", num))),
  ];
}

function render() {
  const data = JSON.parse(document.getElementById("payload").textContent);
  const report = document.getElementById("report");
  const processes = data.processes;
  let errors = 0, lost = 0;
  for (const p of processes) {
    errors += p.summary.error_count;
    const l = p.summary.leaks;
    lost += l.definite.bytes + l.indirect.bytes + l.possible.bytes + l.unclassified.bytes;
  }
  document.getElementById("overview").textContent =
    `${processes.length} process${processes.length === 1 ? "" : "es"} traced, ${num(errors)} heap error${errors === 1 ? "" : "s"}, ${bytes(lost)} leaked`;
  if (!processes.length) report.append(el("p", {text: "No traced process recorded anything."}));
  processes.forEach((p, i) => {
    const title = `${p.command.join(" ") || p.exe} — pid ${p.pid}, ${exitText(p)}`;
    if (i === 0) {
      report.append(el("section", {class: "process", id: "process-0"}, el("h2", {text: title}),
                       el("p", {class: "sub", text: p.attach ? "attached to while it ran (heapscope attach)" : p.launched ? "the launched program" : "a traced process"}), ...processBody(p, true)));
    } else {
      // Later processes open on demand: a build traces thousands. Their summary line says
      // what is inside, so that a process with errors or leaks stands out while closed.
      const l = p.summary.leaks;
      const lostBytes = l.definite.bytes + l.indirect.bytes + l.possible.bytes + l.unclassified.bytes;
      const badges = [];
      if (p.summary.error_count > 0)
        badges.push(el("span", {class: "kind error", "data-role": "badge", text: num(p.summary.error_count) + " heap error" + (p.summary.error_count === 1 ? "" : "s")}));
      if (lostBytes > 0)
        badges.push(el("span", {class: "kind definite", "data-role": "badge", title: num(lostBytes) + " bytes", text: bytes(lostBytes) + " leaked"}));
      const details = el("details", {class: "process", id: "process-" + i}, el("summary", {}, title + " ", ...badges));
      let filled = false;
      details.addEventListener("toggle", () => {
        if (filled || !details.open) return;
        filled = true;
        appendAll(details, ...processBody(p, false));
      });
      report.append(details);
    }
  });
  if (data.suppressions.length) {
    report.append(el("section", {class: "process"}, el("h3", {text: "Suppressions"}),
      el("table", {}, el("thead", {}, el("tr", {}, ...["pattern", "from", "hits", "blocks", "bytes"].map((h) => el("th", {text: h})))),
         el("tbody", {}, ...data.suppressions.map((s) => el("tr", {}, el("td", {text: s.pattern}), el("td", {text: s.origin}),
            el("td", {class: "num", text: num(s.hits)}), el("td", {class: "num", text: num(s.blocks)}), el("td", {class: "num", text: num(s.bytes)})))))));
  }
  document.body.dataset.rendered = "1";
}

try { render(); } catch (error) { jsErrors.push(String(error && error.stack || error)); showErrors(); }
</script>
</body>
</html>
)page";

}  // namespace heapscope::analyzer
