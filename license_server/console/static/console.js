// The console shell: keeps the admin token in sessionStorage, fetches server-rendered
// fragments from /admin/console/... with it, and polls the activity view. No build step.
"use strict";
const TOKEN = "drm-console-admin-token";
let poller = null;

// Opened as /ns/<name>/console, every call stays in that namespace (docs/namespaces.md).
const NAMESPACE_PREFIX = (location.pathname.match(/^\/ns\/[a-z0-9-]+/) || [""])[0];
const $ = (sel) => document.querySelector(sel);
const token = () => sessionStorage.getItem(TOKEN);

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(NAMESPACE_PREFIX + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) { logout("the admin token was refused"); throw new Error("unauthorized"); }
  return response;
}

function status(text) { $("#status").textContent = text || ""; }

function logout(reason) {
  sessionStorage.removeItem(TOKEN);
  stopPolling();
  $("#nav").hidden = true; $("#view").innerHTML = ""; $("#login").hidden = false;
  const error = $("#login-error");
  error.hidden = !reason; error.textContent = reason || "";
}

function stopPolling() { if (poller) { clearInterval(poller); poller = null; } }

async function show() {
  if (!token()) { logout(); return; }
  stopPolling();
  $("#login").hidden = true; $("#nav").hidden = false;
  const route = location.hash.slice(1) || "activity";
  const response = await api("GET", "/admin/console/" + route);
  $("#view").innerHTML = response.ok ? await response.text() : "<p class='error'>" + response.status + " for " + route + "</p>";
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", route.startsWith(a.hash.slice(1))));
  bind();
  if (route === "activity") poller = setInterval(pollActivity, 1000);
}

async function pollActivity() {
  const table = $("#activity");
  if (!table) { stopPolling(); return; }
  const response = await api("GET", "/admin/console/activity/rows?after=" + table.dataset.after);
  if (!response.ok) return;
  const html = (await response.text()).trim();
  if (!html) return;
  const tbody = table.querySelector("tbody");
  tbody.insertAdjacentHTML("afterbegin", html);
  table.dataset.after = tbody.querySelector("tr").dataset.id;
}

async function act(method, path, body) {
  const response = await api(method, path, body);
  let text = response.status + "";
  try { const doc = await response.json(); if (doc.error) text += " " + doc.error.code + ": " + doc.error.message; } catch (e) { /* no body */ }
  await show();
  status(method + " " + path + " -> " + text);  // last: the status says the view shows the outcome
}

function formBody(form) {
  const body = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (value === "") continue;
    body[name] = /^\d+$/.test(value) && name !== "device_id" ? Number(value) : value;
  }
  return body;
}

function bind() {
  document.querySelectorAll("#view [data-post]").forEach((b) => b.addEventListener("click", () =>
    act("POST", b.dataset.post, b.dataset.body ? JSON.parse(b.dataset.body) : {})));
  document.querySelectorAll("#view [data-delete]").forEach((b) => b.addEventListener("click", () =>
    act("DELETE", b.dataset.delete)));
  document.querySelectorAll("#view form[data-post-form]").forEach((f) => f.addEventListener("submit", (e) => {
    e.preventDefault(); act("POST", f.dataset.postForm, formBody(f));
  }));
  document.querySelectorAll("#view form[data-route]").forEach((f) => f.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = f.dataset.route + "?" + new URLSearchParams(formBody(f)).toString();
  }));
  const inspect = $("#inspect-form");
  if (inspect) bindInspector(inspect);
}

function toBase64(buffer) {
  let binary = "";
  new Uint8Array(buffer).forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary);
}

async function inspectData(body) {
  const response = await api("POST", "/admin/inspect", body);
  const doc = await response.json();
  $("#inspect-summary").textContent = doc.summary || (doc.error && doc.error.code) || "";
  const would = doc.server_would;
  $("#inspect-would").textContent = would ? "The server would answer: " + (would.code || would.outcome) +
    (would.keys && would.keys.length ? " with " + would.keys.map((k) => k.track + " " + k.kid).join(", ") : "") +
    " (" + would.reason + ")" : "";
  $("#inspect-json").textContent = JSON.stringify(doc, null, 2);
}

function bindInspector(form) {
  const readFile = async (file) => inspectData({ data: toBase64(await file.arrayBuffer()), encoding: "base64" });
  form.addEventListener("submit", (e) => { e.preventDefault(); inspectData({ data: $("#inspect-input").value }); });
  $("#inspect-file").addEventListener("change", (e) => { if (e.target.files[0]) readFile(e.target.files[0]); });
  const zone = $("#drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files[0]) readFile(e.dataTransfer.files[0]);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, $("#token").value.trim());
    $("#token").value = "";
    await show();
  });
  $("#logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", show);
  show();
});
