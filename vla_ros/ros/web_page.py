"""The operator page served by the web node: one self-contained HTML document.

No external assets (no CDN, no fonts, no frameworks): the robot may have no internet.
The page polls `state.json` and `frame.jpg`, and posts questions, instructions and stop
to the node (see web_node.py for the endpoints).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vla_ros operator</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f1; color: #222; }
  header { background: #223; color: #fff; padding: 8px 16px; font-size: 18px; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
  section { background: #fff; border-radius: 6px; padding: 12px; box-shadow: 0 1px 3px #0002; }
  #view img { width: 480px; max-width: 90vw; image-rendering: pixelated; background: #ccc; }
  #caption { font-size: 20px; margin: 8px 0; min-height: 1.4em; }
  .row { display: flex; gap: 8px; margin: 6px 0; }
  input[type=text] { flex: 1; font-size: 16px; padding: 6px; min-width: 260px; }
  button { font-size: 16px; padding: 6px 12px; }
  #stop { background: #c22; color: #fff; border: 0; font-weight: bold; }
  #answer { font-size: 20px; min-height: 1.4em; }
  #attention { width: 480px; max-width: 90vw; display: none; margin-top: 8px; }
  table { border-collapse: collapse; font-size: 13px; }
  td { border-bottom: 1px solid #eee; padding: 2px 6px; vertical-align: top; }
  .lvl0 { color: #262; } .lvl1 { color: #a60; } .lvl2 { color: #c22; }
</style>
</head>
<body>
<header>vla_ros operator &mdash; <span id="status">connecting&hellip;</span></header>
<main>
  <section id="view">
    <img id="frame" alt="camera (annotated)">
    <div id="caption"></div>
  </section>
  <section id="controls">
    <h3>Ask about the camera</h3>
    <form id="ask" class="row">
      <input id="question" type="text" placeholder="what color is the shape?" autocomplete="off">
      <button type="submit">Ask</button>
    </form>
    <div id="answer"></div>
    <div id="confidence"></div>
    <img id="attention" alt="where the model looked">
    <h3>Instruct the robot</h3>
    <form id="instruct" class="row">
      <input id="instruction" type="text" placeholder="go to the red circle" autocomplete="off">
      <button type="submit">Go</button>
      <button type="button" id="stop">STOP</button>
    </form>
    <div id="action"></div>
    <h3>Find in the camera</h3>
    <form id="ground" class="row">
      <input id="phrase" type="text" placeholder="red circle" autocomplete="off">
      <button type="submit">Find</button>
    </form>
    <div id="found"></div>
  </section>
  <section id="diagnostics">
    <h3>Diagnostics</h3>
    <div id="diag"></div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body || {})});
  return r.json();
}
function text(el, value) { el.textContent = value; }
function refreshFrame() {
  const img = new Image();
  img.onload = () => { $("frame").src = img.src; setTimeout(refreshFrame, 200); };
  img.onerror = () => setTimeout(refreshFrame, 1000);
  img.src = "frame.jpg?t=" + Date.now();
}
function renderDiagnostics(list) {
  const div = $("diag");
  div.replaceChildren();
  for (const s of list) {
    const title = document.createElement("div");
    title.className = "lvl" + s.level;
    title.textContent = s.name + ": " + s.message;
    div.appendChild(title);
    const table = document.createElement("table");
    for (const [k, v] of Object.entries(s.values)) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    div.appendChild(table);
  }
}
async function refreshState() {
  try {
    const s = await (await fetch("state.json")).json();
    text($("status"), s.frames ? "live" : "waiting for camera frames");
    text($("caption"), s.caption || "");
    text($("action"), s.action ? (s.action.state + ": " + s.action.instruction +
                                  (s.action.reason ? " (" + s.action.reason + ")" : "")) : "");
    renderDiagnostics(s.diagnostics || []);
  } catch (e) {
    text($("status"), "node unreachable");
  }
  setTimeout(refreshState, 500);
}
$("ask").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const question = $("question").value;
  text($("answer"), "\u2026");
  const r = await post("ask", {question});
  if (r.success) {
    text($("answer"), r.answer);
    text($("confidence"), "confidence " + r.confidence.toFixed(2));
  } else {
    text($("answer"), "no answer: " + r.error);
    text($("confidence"), "");
  }
  if (r.attention) { $("attention").src = r.attention; $("attention").style.display = "block"; }
});
$("instruct").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await post("instruct", {instruction: $("instruction").value});
});
$("ground").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await post("ground", {phrase: $("phrase").value});
  text($("found"), !r.success ? "not grounded: " + r.error :
       r.boxes.length ? r.boxes.map(b => "at (" + b.point.join(", ") + "), score " +
                                      b.score.toFixed(2)).join("; ") : "not visible");
});
$("stop").addEventListener("click", async () => {
  const r = await post("stop");
  text($("action"), r.message || "stop sent");
});
refreshFrame();
refreshState();
</script>
</body>
</html>
"""
