// The built-in search page: plain JavaScript over the anyshot HTTP API.
"use strict";

const form = document.getElementById("search-form");
const queryInput = document.getElementById("query");
const modeSelect = document.getElementById("mode");
const kInput = document.getElementById("k");
const fileInput = document.getElementById("file");
const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const dropZone = document.getElementById("drop-zone");

// An API key, when the server needs one, is asked once and kept for this tab's session only
// (sessionStorage: gone when the tab closes, never shared with other tabs or kept on disk).
function apiKey() { return sessionStorage.getItem("anyshot-api-key") || ""; }

function withKey(url) {
  const key = apiKey();
  return key ? url + (url.includes("?") ? "&" : "?") + "api_key=" + encodeURIComponent(key) : url;
}

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

async function call(url, options) {
  const headers = Object.assign({}, (options && options.headers) || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const reply = await fetch(url, Object.assign({}, options, { headers }));
  const body = await reply.json().catch(() => ({ error: reply.statusText }));
  if (reply.status === 401) {
    const key = window.prompt("This server needs an API key:");
    if (key) { sessionStorage.setItem("anyshot-api-key", key); return call(url, options); }
  }
  if (!reply.ok) throw new Error(body.error || reply.statusText);
  return body;
}

function show(hits, started) {
  results.replaceChildren();
  document.querySelector(".hint").hidden = true;
  for (const hit of hits) {
    const figure = document.createElement("figure");
    figure.className = "hit";
    figure.dataset.id = String(hit.id);
    const img = document.createElement("img");
    img.src = withKey(hit.thumbnail_url + "?size=320");
    img.alt = hit.uri;
    img.title = hit.uri + "\n(click: more like this)";
    img.loading = "lazy";
    img.addEventListener("click", () => search({ id: hit.id }));
    const caption = document.createElement("figcaption");
    const name = document.createElement("a");
    name.className = "name";
    name.href = withKey(hit.image_url);
    name.target = "_blank";
    name.textContent = hit.uri.split("/").pop();
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    caption.append(name, score);
    figure.append(img, caption);
    results.append(figure);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  say(hits.length ? `${hits.length} results in ${seconds} s` : "no results");
}

async function search(request) {
  const started = performance.now();
  say("searching…");
  try {
    const body = Object.assign({ k: Number(kInput.value) || 24 }, request);
    const reply = await call("/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    show(reply.hits, started);
  } catch (error) {
    say(error.message, true);
  }
}

async function searchFile(file) {
  if (!file) return;
  const started = performance.now();
  say(`searching by ${file.name}…`);
  const data = new FormData();
  data.append("file", file);
  data.append("k", String(Number(kInput.value) || 24));
  try {
    show((await call("/search/image", { method: "POST", body: data })).hits, started);
  } catch (error) {
    say(error.message, true);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = queryInput.value.trim();
  if (!text) return;
  search(modeSelect.value === "name" ? { name: text } : { text });
});
fileInput.addEventListener("change", () => searchFile(fileInput.files[0]));
dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  searchFile(event.dataTransfer.files[0]);
});
