// The built-in search page: plain JavaScript over the anyshot HTTP API.
//
// What was searched is shown above the results and kept in the URL (?q=TEXT, ?name=NAME,
// ?id=ID, with &k=N and &filter=EXPR for the date range and place boxes), so a search can be shared and the browser's back and forward buttons
// move between searches. An uploaded image cannot live in a URL: it is kept in this tab only.
"use strict";

const form = document.getElementById("search-form");
const queryInput = document.getElementById("query");
const modeSelect = document.getElementById("mode");
const kInput = document.getElementById("k");
const fileInput = document.getElementById("file");
const results = document.getElementById("results");
const statusLine = document.getElementById("status");
const dropZone = document.getElementById("drop-zone");
const collectionLine = document.getElementById("collection");
const searched = document.getElementById("searched");
const searchedImage = document.getElementById("searched-image");
const searchedText = document.getElementById("searched-text");
const takenFrom = document.getElementById("taken-from");
const takenTo = document.getElementById("taken-to");
const placeInput = document.getElementById("place");
const notice = document.getElementById("notice");

const DEFAULT_K = 24;
const uploads = new Map(); // upload number → File, for back/forward within this tab
let uploadCount = 0;
let previewUrl = null;

// An API key, when the server needs one, is asked once and kept for this tab's session only
// (sessionStorage: gone when the tab closes, never shared with other tabs or kept on disk).
function apiKey() { return sessionStorage.getItem("anyshot-api-key") || ""; }

function withKey(url) {
  const key = apiKey();
  if (!key) return url;
  // The key goes before a fragment (a video's #t=SECONDS), which never reaches the server.
  const cut = url.indexOf("#");
  const [path, fragment] = cut < 0 ? [url, ""] : [url.slice(0, cut), url.slice(cut)];
  return path + (path.includes("?") ? "&" : "?") + "api_key=" + encodeURIComponent(key) + fragment;
}

// 83.4 → "1:23": a video's moment as the page shows it.
function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const m = Math.floor(whole / 60);
  const s = String(whole % 60).padStart(2, "0");
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// Replace a video hit's frame by a player that starts at the moment (a media fragment, #t=).
function play(figure, img, hit) {
  const video = document.createElement("video");
  video.className = "player";
  video.controls = true;
  video.autoplay = true;
  video.muted = true;
  video.src = withKey(hit.image_url);
  img.replaceWith(video);
  figure.classList.add("playing");
}

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
  if (isError) notice.hidden = true;
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

async function showCollection() {
  try {
    const [collection] = await call("/collections");
    const model = collection.model
      ? collection.model.name + (collection.model.pretrained ? "/" + collection.model.pretrained : "")
      : "none yet";
    collectionLine.textContent =
      `collection ${collection.name} · ${collection.points} images · model ${model}`;
  } catch (error) {
    collectionLine.textContent = "";
  }
}

// -- what was searched, in the page and in the URL ---------------------------------------------

function k() { return Number(kInput.value) || DEFAULT_K; }

// The date range and place boxes as filter expressions: a two-letter place is a country code.
function filters() {
  const found = [];
  if (takenFrom.value) found.push("taken>=" + takenFrom.value);
  if (takenTo.value) found.push("taken<=" + takenTo.value);
  const place = placeInput.value.trim();
  if (/^[A-Za-z]{2}$/.test(place)) found.push("country=" + place);
  else if (place) found.push("place=" + place);
  return found;
}

function showFilters(list) {
  takenFrom.value = ""; takenTo.value = ""; placeInput.value = "";
  for (const expression of list || []) {
    if (expression.startsWith("taken>=")) takenFrom.value = expression.slice(7);
    else if (expression.startsWith("taken<=")) takenTo.value = expression.slice(7);
    else if (expression.startsWith("country=")) placeInput.value = expression.slice(8);
    else if (expression.startsWith("place=")) placeInput.value = expression.slice(6);
  }
}

function urlOf(request) {
  const params = new URLSearchParams();
  if (request.text !== undefined) params.set("q", request.text);
  else if (request.name !== undefined) params.set("name", request.name);
  else if (request.id !== undefined) params.set("id", String(request.id));
  else if (!(request.filters || []).length) return location.pathname; // an upload
  if (k() !== DEFAULT_K) params.set("k", String(k()));
  for (const expression of request.filters || []) params.append("filter", expression);
  return location.pathname + "?" + params.toString();
}

function requestFromUrl() {
  const params = new URLSearchParams(location.search);
  const count = Number(params.get("k"));
  if (Number.isInteger(count) && count >= 1) kInput.value = String(count);
  const filters = params.getAll("filter");
  if (params.get("q")) return { text: params.get("q"), filters };
  if (params.get("name")) return { name: params.get("name"), filters };
  if (/^\d+$/.test(params.get("id") || "")) return { id: params.get("id"), filters };
  if (filters.length) return { filters, sort: "-taken" };
  return null;
}

function showSearched(request) {
  if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
  searchedImage.hidden = true;
  searchedImage.removeAttribute("src");
  showFilters(request.filters);
  const within = (request.filters || []).length ? " · " + request.filters.join(", ") : "";
  if (request.text === undefined && request.name === undefined && request.id === undefined
      && !request.file) {
    searchedText.textContent = "Photos with " + request.filters.join(", ");
  } else if (request.text !== undefined) {
    searchedText.textContent = `Searched for “${request.text}”`;
  } else if (request.name !== undefined) {
    searchedText.textContent = `Searched for the name “${request.name}”`;
  } else if (request.id !== undefined) {
    searchedText.textContent = `More like #${request.id}`;
    searchedImage.src = withKey(`/thumbs/${request.id}?size=96`);
    searchedImage.alt = `image #${request.id}`;
    searchedImage.hidden = false;
  } else if (request.file) {
    searchedText.textContent = `Searched by the image ${request.file.name}`;
    previewUrl = URL.createObjectURL(request.file);
    searchedImage.src = previewUrl;
    searchedImage.alt = request.file.name;
    searchedImage.hidden = false;
  }
  if (within && searchedText.textContent.startsWith("Photos with") === false) {
    searchedText.textContent += within;
  }
  searched.hidden = false;
  if (request.text !== undefined || request.name !== undefined) {
    modeSelect.value = request.name !== undefined ? "name" : "text";
    queryInput.value = request.name !== undefined ? request.name : request.text;
  }
}

// Run a search; ``history`` is "push" (a new search), "replace" (the page's first) or "none"
// (back or forward: the URL is already right).
function run(request, history) {
  let state = request;
  if (request.file) {
    uploadCount += 1;
    uploads.set(uploadCount, request.file);
    state = { upload: uploadCount };
  }
  if (history === "push") window.history.pushState(state, "", urlOf(request));
  if (history === "replace") window.history.replaceState(state, "", urlOf(request));
  showSearched(request);
  return request.file ? searchFile(request.file) : search(request);
}

// -- searching ----------------------------------------------------------------------------------

// The answer's confidence (explain.confidence, 0..1) below the server's threshold: the results
// are only the least unlike images, and the page says so above them.
function showNotice(explain) {
  const unsure = Boolean(explain && explain.no_match);
  notice.hidden = !unsure;
  notice.textContent = unsure
    ? `No confident match (confidence ${Number(explain.confidence).toFixed(2)}): ` +
      "nothing here looks much like what was asked; these are the closest images."
    : "";
}

function show(hits, started, explain) {
  showNotice(explain);
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
    img.addEventListener("click", () => run({ id: hit.id }, "push"));
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
    if (typeof hit.t === "number") {
      name.textContent += " @ " + clock(hit.t);
      const playButton = document.createElement("button");
      playButton.className = "play";
      playButton.type = "button";
      playButton.textContent = "▶ " + clock(hit.t);
      playButton.title = "play from this moment";
      playButton.addEventListener("click", () => play(figure, img, hit));
      caption.append(playButton);
    }
    const when = hit.payload && hit.payload.taken ? hit.payload.taken.slice(0, 10) : "";
    const where = hit.payload ? [hit.payload.place, hit.payload.country].filter(Boolean).join(", ") : "";
    if (when || where) {
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = [when, where].filter(Boolean).join(" · ");
      caption.append(meta);
    }
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
    const body = Object.assign({ k: k(), explain: true }, request);
    if (body.id !== undefined) body.id = Number(body.id);
    const reply = await call("/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    show(reply.hits, started, reply.explain);
  } catch (error) {
    say(error.message, true);
  }
}

async function searchFile(file) {
  const started = performance.now();
  say(`searching by ${file.name}…`);
  const data = new FormData();
  data.append("file", file);
  data.append("k", String(k()));
  data.append("explain", "true");
  for (const expression of filters()) data.append("filter", expression);
  try {
    const reply = await call("/search/image", { method: "POST", body: data });
    show(reply.hits, started, reply.explain);
  } catch (error) {
    say(error.message, true);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = queryInput.value.trim();
  const chosen = filters();
  if (!text && !chosen.length) return;
  if (!text) { run({ filters: chosen, sort: "-taken" }, "push"); return; }
  const request = modeSelect.value === "name" ? { name: text } : { text };
  if (chosen.length) request.filters = chosen;
  run(request, "push");
});
fileInput.addEventListener("change", () => {
  if (fileInput.files[0]) run({ file: fileInput.files[0] }, "push");
  fileInput.value = ""; // choosing the same file again searches again
});
dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  if (event.dataTransfer.files[0]) run({ file: event.dataTransfer.files[0] }, "push");
});
window.addEventListener("popstate", (event) => {
  const state = event.state;
  if (state && state.upload !== undefined) {
    const file = uploads.get(state.upload);
    if (file) { showSearched({ file }); searchFile(file); }
    return;
  }
  const request = requestFromUrl();
  if (request) { showSearched(request); search(request); return; }
  searched.hidden = true;
  notice.hidden = true;
  results.replaceChildren();
  document.querySelector(".hint").hidden = false;
  say("");
});

(async () => {
  await showCollection();
  const request = requestFromUrl();
  if (request) run(request, "replace");
})();
