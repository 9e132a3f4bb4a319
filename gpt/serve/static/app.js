// Look inside: the page. Plain JavaScript, no framework, no build step; every number it shows
// comes from the JSON API of gpt/serve (the same API the tests call).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const state = { info: null, panel: "tokens", generation: null, alternatives: null };

// ------------------------------------------------------------------ small helpers
function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showStatus(message) { $("status").textContent = message || ""; }

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Streamed endpoints: one JSON object per line; onLine is called for each as it arrives.
async function stream(path, body, onLine, signal) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });
  if (!response.ok) throw new Error((await response.json()).error || `HTTP ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) {
        const obj = JSON.parse(line);
        if (obj.error) throw new Error(obj.error);
        onLine(obj);
      }
    }
  }
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// a token's piece (already readable: \n, \xNN) with its spaces made visible, for labels
const show = (piece) => piece.replace(/ /g, "\u2423");
const fmt = (p) => (p >= 0.001 || p === 0 ? p.toFixed(3) : p.toExponential(1));
const tokenColour = (i) => `hsl(${(i * 67) % 360}, 70%, 88%)`;
const text = () => $("text").value;

function samplingSettings() {
  const topK = parseInt($("top-k").value, 10);
  const topP = parseFloat($("top-p").value);
  return { temperature: parseFloat($("temperature").value), top_k: topK > 0 ? topK : null, top_p: topP < 1 ? topP : null };
}

function showTooltip(event, content) {
  const tip = $("tooltip");
  tip.textContent = content;
  tip.hidden = false;
  tip.style.left = `${event.pageX + 12}px`;
  tip.style.top = `${event.pageY + 12}px`;
}
function hideTooltip() { $("tooltip").hidden = true; }

// ------------------------------------------------------------------ layout from /api/info
async function init() {
  try {
    state.info = await api("/api/info");
  } catch (e) { showStatus(`cannot read the model's description: ${e.message}`); return; }
  const m = state.info.model;
  $("model-summary").textContent =
    `${m.class}${m.arch && m.arch !== "gpt" ? ` (${m.arch})` : ""}: ${m.n_layers} layers, ${m.n_heads} heads, ` +
    `${m.emb_dim} dims, vocabulary ${m.vocab_size.toLocaleString()}, context ${m.context_length}` +
    `${m.pos_emb ? `, positions: ${m.pos_emb}` : ""}, ${m.parameters.toLocaleString()} parameters — ${state.info.source}`;
  const layers = $("att-layer");
  for (let i = 0; i < m.n_layers; i++) layers.append(el("option", { value: i, text: `${i + 1}` }));
  fillHeads();
  $("top-k").max = m.vocab_size;
  $("max-new-tokens").max = state.info.limits.max_new_tokens;
  document.querySelector('[data-panel="training"]').hidden = !state.info.training;
  document.querySelector('[data-panel="chat"]').hidden = !state.info.chat;
  if (state.info.chat) $("chat-style").textContent = state.info.chat;
  if (state.info.kind === "encoder") showEncoder();
  bindEvents();
  refreshCount();
  refresh();
}

// An encoder (BERT) reads the whole text at once: no next token, generation, logit lens or chat;
// its attention has no causal triangle, and with its MLM head it fills in [MASK]s.
function showEncoder() {
  for (const name of ["next", "generate", "lens", "chat"]) document.querySelector(`[data-panel="${name}"]`).hidden = true;
  document.querySelector('[data-panel="fill"]').hidden = !state.info.fill_mask;
  $("att-explain").textContent = "Row i: how much the token at position i (the query) takes from every token of " +
    "the text (the keys), before and after it: an encoder has no causal mask. Hover a row to highlight it.";
  $("training-explain").textContent = "The run's masked-language-model losses (log.csv).";
  for (const id of ["compare-controls", "compare-summary", "compare-chart"]) $(id).hidden = true;
}

function fillHeads() {
  const layer = parseInt($("att-layer").value || "0", 10);
  const n = state.info.model.heads_per_layer[layer] || state.info.model.n_heads;
  const select = $("att-head");
  const previous = select.value;
  select.replaceChildren(el("option", { value: "mean", text: "mean of the heads" }));
  for (let h = 0; h < n; h++) select.append(el("option", { value: h, text: `${h + 1}` }));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

function bindEvents() {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => switchPanel(button.dataset.panel));
  }
  $("text").addEventListener("input", debounce(() => { refreshCount(); refresh(); }, 300));
  const resample = debounce(() => { if (state.panel === "next") refreshNext(); }, 80);
  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = $("temperature").value; resample(); });
  $("top-p").addEventListener("input", () => { $("top-p-value").textContent = $("top-p").value; resample(); });
  $("top-k").addEventListener("input", resample);
  $("generate-button").addEventListener("click", () => startGeneration({ text: text() }, []));
  $("stop-button").addEventListener("click", () => state.generation && state.generation.abort());
  $("att-layer").addEventListener("change", () => { fillHeads(); refreshAttention(); });
  $("att-head").addEventListener("change", drawAttention);
  $("att-canvas").addEventListener("mousemove", hoverAttention);
  $("compare-button").addEventListener("click", refreshCompare);
  $("chat-send").addEventListener("click", sendChat);
  $("chat-input").addEventListener("keydown", (e) => { if (e.key === "Enter") sendChat(); });
  document.addEventListener("click", (e) => {
    if (!$("alternatives").contains(e.target) && !e.target.classList.contains("gen-tok")) $("alternatives").hidden = true;
  });
}

function switchPanel(name) {
  state.panel = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.panel === name);
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === `panel-${name}`);
  refresh();
}

function describeSettings() {
  const s = samplingSettings();
  return s.temperature === 0 ? "greedy (temperature 0)"
    : `temperature ${s.temperature}, top-k ${s.top_k ?? "off"}, top-p ${s.top_p ?? "off"}`;
}

function refresh() {
  showStatus("");
  $("generate-settings").textContent = `${describeSettings()} (set in Next token)`;
  const panels = { tokens: refreshTokens, next: refreshNext, attention: refreshAttention, lens: refreshLens,
                   training: refreshTraining, fill: refreshFill };
  if (panels[state.panel]) panels[state.panel]();
}

async function guarded(fn) {
  try { await fn(); } catch (e) { showStatus(e.message); }
}

// ------------------------------------------------------------------ Tokens
async function refreshCount() {
  if (!text()) { $("text-count").textContent = ""; return; }
  guarded(async () => {
    const r = await api("/api/tokenize", { text: text() });
    $("text-count").textContent = `${r.n_tokens} tokens, ${r.n_chars} characters`;
  });
}

function refreshTokens() {
  guarded(async () => {
    const view = $("tokens-view");
    if (!text()) { view.replaceChildren(); $("tokens-count").textContent = ""; return; }
    const r = await api("/api/tokenize", { text: text() });
    $("tokens-count").textContent = `${r.n_tokens} tokens, ${r.n_chars} characters ` +
      `(${(r.n_chars / Math.max(r.n_tokens, 1)).toFixed(2)} characters per token)`;
    view.replaceChildren(...r.tokens.map((t, i) => {
      const span = el("span", { class: `tok${t.special ? " special" : ""}`, "data-id": t.id }, t.piece, el("sub", { text: t.id }));
      span.style.background = tokenColour(i);
      const bytes = t.bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");
      const rank = t.special ? "special token" : !state.info.tokenizer.merge_ranks ? ""
        : t.rank === null ? "a single byte (no merge)" : `merge rank ${t.rank}`;
      span.addEventListener("mousemove", (e) => showTooltip(e, `id ${t.id}\nbytes ${bytes}\n${rank}`));
      span.addEventListener("mouseleave", hideTooltip);
      return span;
    }));
  });
}

// ------------------------------------------------------------------ Next token
function refreshNext() {
  guarded(async () => {
    if (!text()) return;
    const r = await api("/api/next", { text: text(), ...samplingSettings() });
    const shown = r.tokens.reduce((s, t) => s + t.p_sample, 0);
    $("next-summary").textContent = `entropy ${r.entropy.toFixed(2)} nats; sampling keeps ${r.kept.toLocaleString()} ` +
      `of ${state.info.model.vocab_size.toLocaleString()} tokens; the ${r.tokens.length} shown hold ` +
      `${(100 * shown).toFixed(1)}% of what is sampled`;
    drawNext(r);
  });
}

function drawNext(r) {
  const svg = $("next-chart");
  const rowH = 20, left = 130, right = 300, width = 960;
  const height = r.tokens.length * rowH + 30;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const max = Math.max(...r.tokens.map((t) => Math.max(t.p_model, t.p_sample)), 1e-9);
  const scale = (p) => (p / max) * (width - left - right);
  const nodes = [];
  let cutY = null;
  r.tokens.forEach((t, i) => {
    const y = 10 + i * rowH;
    nodes.push(el("svg:text", { x: left - 8, y: y + 13, "text-anchor": "end", text: show(t.piece) }));
    nodes.push(el("svg:rect", { class: "bar-model", x: left, y: y + 2, width: scale(t.p_model), height: rowH - 10 }));
    nodes.push(el("svg:rect", { class: "bar-sample", x: left, y: y + 9, width: scale(t.p_sample), height: rowH - 12 }));
    nodes.push(el("svg:text", { class: "p-value", x: width - right + 10, y: y + 13, "data-id": t.id,
      text: `${fmt(t.p_sample)}  model ${fmt(t.p_model)}  cumulative ${fmt(t.cumulative)}` }));
    if (t.p_sample === 0 && cutY === null && i > 0) cutY = y;
  });
  if (cutY !== null && samplingSettings().top_p !== null) {
    nodes.push(el("svg:line", { class: "cut", x1: 0, x2: width, y1: cutY, y2: cutY }));
    nodes.push(el("svg:text", { class: "cut-label", x: 4, y: cutY - 3, text: `top-p ${samplingSettings().top_p}` }));
  }
  nodes.push(el("svg:line", { class: "axis", x1: left, x2: left, y1: 5, y2: height - 15 }));
  svg.replaceChildren(...nodes);
}

// ------------------------------------------------------------------ Generate
// state of the current continuation: the prompt's ids, then one entry per generated token
let generated = { prompt: [], tokens: [] };

function renderGenerated() {
  const out = $("generate-output");
  const promptText = el("span", { class: "prompt-text", text: generated.promptText || "" });
  out.replaceChildren(promptText, ...generated.tokens.map((t, i) => {
    const span = el("span", { class: `gen-tok${t.branched ? " branched" : ""}`, "data-index": i, "data-id": t.id,
      text: t.text || t.piece });
    span.addEventListener("click", (e) => showAlternatives(e, i));
    return span;
  }));
}

async function startGeneration(source, keep) {
  if (state.generation) state.generation.abort();
  const controller = new AbortController();
  state.generation = controller;
  $("generate-button").disabled = true;
  $("stop-button").disabled = false;
  $("alternatives").hidden = true;
  const body = { ...source, ...samplingSettings(), max_new_tokens: parseInt($("max-new-tokens").value, 10),
                 seed: parseInt($("seed").value, 10) };
  if (!keep.length) generated = { prompt: [], tokens: [], promptText: "" };
  showStatus("");
  try {
    await stream("/api/generate", body, (line) => {
      if (line.prompt) {
        if (!keep.length) {
          generated.prompt = line.prompt.map((t) => t.id);
          generated.promptText = text();
        }
      } else if (line.token) {
        generated.tokens.push({ ...line.token, alternatives: line.alternatives });
      } else if (line.done) {
        $("generate-output").dataset.done = "true";
      }
      renderGenerated();
    }, controller.signal);
  } catch (e) {
    if (e.name !== "AbortError") showStatus(e.message);
  } finally {
    if (state.generation === controller) {
      state.generation = null;
      $("generate-button").disabled = false;
      $("stop-button").disabled = true;
    }
  }
}

function showAlternatives(event, index) {
  event.stopPropagation();
  const t = generated.tokens[index];
  const box = $("alternatives");
  for (const s of document.querySelectorAll(".gen-tok.selected")) s.classList.remove("selected");
  event.target.classList.add("selected");
  const rows = (t.alternatives || []).map((a) => {
    const row = el("tr", { class: `alt${a.id === t.id ? " chosen" : ""}`, "data-id": a.id },
      el("td", { text: show(a.piece) }), el("td", { text: fmt(a.p_sample) }),
      el("td", { class: "muted", text: `model ${fmt(a.p_model)}` }));
    row.addEventListener("click", () => branch(index, a));
    return row;
  });
  box.replaceChildren(el("div", { class: "muted", text: `position ${index + 1}: sampled from (click one to branch)` }),
                      el("table", {}, ...rows));
  box.hidden = false;
  box.style.left = `${event.pageX}px`;
  box.style.top = `${event.pageY + 14}px`;
}

function branch(index, alternative) {
  $("alternatives").hidden = true;
  const kept = generated.tokens.slice(0, index);
  const chosen = { id: alternative.id, piece: alternative.piece, text: "", branched: true,
                   alternatives: generated.tokens[index].alternatives };
  generated.tokens = [...kept, chosen];
  renderGenerated();
  const ids = [...generated.prompt, ...generated.tokens.map((t) => t.id)];
  startGeneration({ ids }, generated.tokens);
}

// ------------------------------------------------------------------ Attention
let attention = null;
let hoverRow = null;

function refreshAttention() {
  guarded(async () => {
    if (!text()) return;
    attention = await api("/api/attention", { text: text(), layer: parseInt($("att-layer").value, 10) });
    hoverRow = null;
    drawAttention();
  });
}

function attentionMatrix() {
  const head = $("att-head").value;
  return head === "mean" ? attention.mean : attention.heads[parseInt(head, 10)];
}

function drawAttention() {
  if (!attention) return;
  const m = attentionMatrix(), tokens = attention.tokens, n = tokens.length;
  const canvas = $("att-canvas");
  const label = 110, cell = Math.max(4, Math.min(28, Math.floor(560 / n)));
  canvas.width = label + n * cell + 10;
  canvas.height = label + n * cell + 10;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const w = m[i][j];
      ctx.fillStyle = `rgba(47, 111, 214, ${Math.min(1, w)})`;
      ctx.fillRect(label + j * cell, label + i * cell, cell - 1, cell - 1);
    }
  }
  ctx.fillStyle = "#1d2329";
  ctx.font = `${Math.min(12, cell)}px monospace`;
  const short = (s) => show(s).slice(0, 12);
  if (cell >= 8) {
    for (let i = 0; i < n; i++) {
      ctx.textAlign = "right";
      ctx.fillText(short(tokens[i]), label - 4, label + i * cell + cell * 0.75);
      ctx.save();
      ctx.translate(label + i * cell + cell * 0.75, label - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(short(tokens[i]), 0, 0);
      ctx.restore();
    }
  }
  const row = hoverRow === null ? n - 1 : hoverRow;
  ctx.strokeStyle = "#d64f2f";
  ctx.lineWidth = 2;
  ctx.strokeRect(label - 1, label + row * cell - 1, n * cell + 1, cell + 1);
  describeRow(row);
}

function describeRow(row) {
  const m = attentionMatrix(), tokens = attention.tokens;
  const order = m[row].map((w, j) => [w, j]).filter(([, j]) => !attention.causal || j <= row)
    .sort((a, b) => b[0] - a[0]).slice(0, 5);
  const head = $("att-head").value === "mean" ? "mean of the heads" : `head ${parseInt($("att-head").value, 10) + 1}`;
  $("att-info").textContent = `layer ${attention.layer + 1}, ${head}; query ${row + 1} ${`"${show(tokens[row])}"`} attends to:\n` +
    order.map(([w, j]) => `  ${String(j + 1).padStart(4)} ${`"${show(tokens[j])}"`.padEnd(16)} ${w.toFixed(4)}`).join("\n");
  $("att-info").dataset.row = row;
  $("att-info").dataset.top = order.length ? order[0][0].toFixed(4) : "";
}

function hoverAttention(event) {
  if (!attention) return;
  const canvas = $("att-canvas");
  const rect = canvas.getBoundingClientRect();
  const n = attention.tokens.length;
  const label = 110, cell = Math.max(4, Math.min(28, Math.floor(560 / n)));
  const y = (event.clientY - rect.top) * (canvas.height / rect.height);
  const row = Math.floor((y - label) / cell);
  if (row >= 0 && row < n && row !== hoverRow) { hoverRow = row; drawAttention(); }
}

// ------------------------------------------------------------------ Logit lens
function refreshLens() {
  guarded(async () => {
    if (!text()) return;
    const r = await api("/api/lens", { text: text() });
    const maxNorm = Math.max(...r.mean_norms, 1e-9);
    const head = el("tr", {}, el("th", { text: "layer \\ position" }),
      ...r.tokens.map((t) => el("th", { text: show(t) })), el("th", { text: "mean norm" }));
    const rows = r.layers.map((name, l) => el("tr", { "data-layer": l }, el("th", { text: name }),
      ...r.top_pieces[l].map((piece, i) => {
        const p = r.top_probs[l][i];
        const td = el("td", { "data-p": p, "data-id": r.top_ids[l][i], text: show(piece) });
        td.style.background = `rgba(47, 111, 214, ${Math.min(0.85, p)})`;
        if (p > 0.5) td.style.color = "#fff";
        td.addEventListener("mousemove", (e) => showTooltip(e,
          `${name}, position ${i + 1} (${`"${show(r.tokens[i])}"`})\nnext: ${`"${show(piece)}"`}  p ${p.toFixed(4)}\n` +
          `residual norm ${r.norms[l][i].toFixed(2)}`));
        td.addEventListener("mouseleave", hideTooltip);
        return td;
      }),
      (() => {
        const bar = el("span", { class: "norm-bar" });
        bar.style.width = `${(60 * r.mean_norms[l]) / maxNorm}px`;
        return el("td", { class: "norm" }, bar, r.mean_norms[l].toFixed(1));
      })()));
    $("lens-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows.reverse()));
  });
}

// ------------------------------------------------------------------ Training
function lineChart(svg, series, labels, height = 260) {
  const width = 900, left = 50, top = 10, right = 120, bottom = labels.ticks ? 80 : 30;
  const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y).filter((v) => v !== null);
  if (!xs.length || !ys.length) { svg.replaceChildren(); return; }
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => left + ((x - x0) / (x1 - x0 || 1)) * (width - left - right);
  const sy = (y) => top + (1 - (y - y0) / (y1 - y0 || 1)) * (height - top - bottom);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const nodes = [el("svg:line", { class: "axis", x1: left, x2: left, y1: top, y2: height - bottom }),
                 el("svg:line", { class: "axis", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }),
                 el("svg:text", { x: left - 4, y: top + 10, "text-anchor": "end", text: y1.toFixed(2) }),
                 el("svg:text", { x: left - 4, y: height - bottom, "text-anchor": "end", text: y0.toFixed(2) }),
                 ...(labels.ticks ? [] : [
                   el("svg:text", { x: left, y: height - 10, text: labels.x0 ?? x0 }),
                   el("svg:text", { x: width - right, y: height - 10, "text-anchor": "end", text: labels.x1 ?? x1 })])];
  if (labels.ticks) {   // one label per point, written downwards under the axis
    labels.ticks.forEach((t, i) => nodes.push(el("svg:text", { class: "tick", "text-anchor": "end",
      transform: `translate(${sx(series[0].x[i])}, ${height - bottom + 12}) rotate(-60)`, text: t })));
  }
  series.forEach((s, k) => {
    const points = s.x.map((x, i) => (s.y[i] === null ? null : `${sx(x)},${sy(s.y[i])}`)).filter(Boolean).join(" ");
    nodes.push(el("svg:polyline", { class: s.cls, points }));
    nodes.push(el("svg:text", { class: s.cls, x: width - right + 8, y: top + 14 + 16 * k, text: s.name }));
  });
  svg.replaceChildren(...nodes);
}

function refreshTraining() {
  guarded(async () => {
    const r = await api("/api/training");
    const c = r.columns;
    if (!c.step || !c.step.length) { showStatus("log.csv has no evaluations yet"); return; }
    lineChart($("loss-chart"), [{ name: "train loss", cls: "train", x: c.step, y: c.train_loss },
                                { name: "val loss", cls: "val", x: c.step, y: c.val_loss }],
              { x0: `step ${c.step[0]}`, x1: `step ${c.step[c.step.length - 1]}` });
    for (const [id, pick] of [["compare-a", 0], ["compare-b", r.checkpoints.length - 1]]) {
      const select = $(id);
      if (select.options.length !== r.checkpoints.length) {
        select.replaceChildren(...r.checkpoints.map((name) => el("option", { value: name, text: name })));
        select.selectedIndex = Math.max(pick, 0);
      }
    }
  });
}

// ------------------------------------------------------------------ Fill mask (an encoder's MLM head)
function refreshFill() {
  guarded(async () => {
    const view = $("fill-view");
    if (!text().includes("[MASK]")) {
      view.replaceChildren(el("p", { class: "muted", text: "Write [MASK] in the text where a token should be guessed." }));
      return;
    }
    const r = await api("/api/fill_mask", { text: text() });
    view.replaceChildren(...r.masks.map((mask, n) => el("table", { class: "fill", "data-position": mask.position },
      el("caption", { text: `[MASK] ${n + 1} (token ${mask.position + 1})` }),
      ...mask.candidates.map((c) => {
        const bar = el("span", { class: "fill-bar" });
        bar.style.width = `${Math.round(200 * c.p)}px`;
        return el("tr", { class: "fill-candidate", "data-id": c.id, "data-p": c.p },
          el("td", { class: "piece", text: show(c.piece) }), el("td", {}, bar), el("td", { text: fmt(c.p) }));
      }))));
  });
}

function refreshCompare() {
  guarded(async () => {
    const r = await api("/api/compare", { text: text(), a: $("compare-a").value, b: $("compare-b").value });
    $("compare-summary").textContent = `mean loss: ${r.a.name} ${r.a.mean.toFixed(3)}, ${r.b.name} ${r.b.mean.toFixed(3)} ` +
      `over ${r.a.losses.length} predicted tokens`;
    const x = r.a.losses.map((_, i) => i + 1);
    lineChart($("compare-chart"), [{ name: r.a.name, cls: "a", x, y: r.a.losses }, { name: r.b.name, cls: "b", x, y: r.b.losses }],
              r.tokens.length <= 80 ? { ticks: r.tokens.slice(1).map((t) => show(t).slice(0, 10)) }
                                    : { x0: "token 2", x1: `token ${r.tokens.length}` }, 280);
  });
}

// ------------------------------------------------------------------ Chat
const chatMessages = [];

async function sendChat() {
  const input = $("chat-input");
  const content = input.value.trim();
  if (!content) return;
  input.value = "";
  chatMessages.push({ role: "user", content });
  $("chat-log").append(el("div", { class: "msg user", text: content }));
  const bubble = el("div", { class: "msg assistant", text: "" });
  $("chat-log").append(bubble);
  let raw = "";
  try {
    const sampling = $("chat-greedy").checked ? { temperature: 0 } : samplingSettings();
    await stream("/api/chat", { messages: chatMessages, ...sampling,
                                max_new_tokens: parseInt($("max-new-tokens").value, 10), seed: parseInt($("seed").value, 10) },
    (line) => {
      if (line.token) { raw += line.token.text; bubble.textContent = raw; }
      if (line.done) {
        bubble.textContent = line.response;
        bubble.dataset.done = "true";
        chatMessages.push({ role: "assistant", content: line.response });
      }
    });
  } catch (e) { showStatus(e.message); }
}

init();
