// voxgate companion app: pair this device, then show pending approvals with their codes,
// live. The device token is kept in this origin's localStorage (no cookie, so no other site
// can send it); the code shown here is never sent anywhere by this page.
"use strict";

const TOKEN_KEY = "voxgate.deviceToken";
const USER_KEY = "voxgate.userName";
const OUTCOME_KEEP_MS = 15 * 60 * 1000;
const OUTCOME_WORDS = {
  confirmed: ["Approved", "good"],
  executed: ["Done", "good"],
  denied: ["Denied", "bad"],
  expired: ["Expired, nothing ran", "bad"],
  failed: ["Failed, nothing was changed", "bad"],
  cancelled: ["Cancelled, nothing ran", "bad"],
  replaced: ["Replaced by a newer request", "bad"],
};

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem(TOKEN_KEY);
let challenges = [];
let outcomes = [];
let stream = null;
let retry = 1000;
let tick = null;

function setStatus(text, problem) {
  $("status").textContent = text;
  $("status").classList.toggle("problem", Boolean(problem));
}

function announce(text) {
  $("announce").textContent = "";
  window.setTimeout(() => { $("announce").textContent = text; }, 50);
}

function showPairing(reason) {
  if (stream) { stream.abort(); stream = null; }
  challenges = [];
  $("approvals").hidden = true;
  $("pairing").hidden = false;
  $("pairing-reason").hidden = !reason;
  $("pairing-reason").textContent = reason || "";
  setStatus("Not paired");
  $("pair-code").focus();
}

function forget(reason) {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  token = null;
  showPairing(reason);
}

async function pair(code) {
  $("pair-error").hidden = true;
  setStatus("Pairing…");
  let response;
  try {
    response = await fetch("/api/v1/companion/pair", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
      cache: "no-store",
    });
  } catch (e) {
    $("pair-error").textContent = "voxgate cannot be reached. Check your connection and try again.";
    $("pair-error").hidden = false;
    setStatus("Not paired");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("pair-error").textContent = body.error || "That code did not work.";
    $("pair-error").hidden = false;
    setStatus("Not paired");
    return;
  }
  token = body.token;
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(USER_KEY, body.user && body.user.name ? body.user.name : "");
  $("pair-code").value = "";
  start();
}

function groupCode(code) {
  return code.length === 6 ? code.slice(0, 3) + " " + code.slice(3) : code;
}

function minutes(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function actionWord(action) {
  return { start: "Start", stop: "Stop", reboot: "Reboot" }[action] || action;
}

function renderApprovals() {
  const list = $("list");
  const template = $("approval-template");
  const keep = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const seen = new Set();
  for (const c of challenges) {
    seen.add(c.id);
    let li = keep.get(c.id);
    if (!li) {
      li = template.content.firstElementChild.cloneNode(true);
      li.dataset.id = c.id;
      li.querySelector(".deny").addEventListener("click", () => {
        li.querySelector(".deny").hidden = true;
        li.querySelector(".confirm").hidden = false;
        li.querySelector(".deny-no").focus();
      });
      li.querySelector(".deny-no").addEventListener("click", () => {
        li.querySelector(".confirm").hidden = true;
        li.querySelector(".deny").hidden = false;
      });
      li.querySelector(".deny-yes").addEventListener("click", () => deny(c.id));
      list.appendChild(li);
      announce("New approval: " + c.summary + ". Code " + c.code.split("").join(" ") + ".");
    }
    li.querySelector(".summary").textContent = c.summary;
    li.querySelector(".action").textContent = actionWord(c.action);
    li.querySelector(".instance").textContent = c.instance.name + " (" + c.instance.id + ")";
    li.querySelector(".account").textContent = c.account;
    li.querySelector(".region").textContent = c.region;
    const code = li.querySelector(".code");
    code.textContent = groupCode(c.code);
    code.setAttribute("aria-label", "Code " + c.code.split("").join(" "));
  }
  for (const [id, li] of keep) {
    if (!seen.has(id)) li.remove();
  }
  $("empty").hidden = challenges.length > 0;
  renderTimers();
}

function renderTimers() {
  for (const li of $("list").children) {
    const c = challenges.find((x) => x.id === li.dataset.id);
    if (!c) continue;
    li.querySelector(".next").textContent = "New code in " + Math.max(0, Math.ceil(c.seconds_left_in_step)) + " s";
    li.querySelector(".expires").textContent = "Expires in " + minutes(c.seconds_left);
  }
}

function renderOutcomes() {
  const now = Date.now();
  outcomes = outcomes.filter((o) => now - o.at < OUTCOME_KEEP_MS);
  const list = $("outcomes");
  list.textContent = "";
  for (const o of outcomes) {
    const li = document.createElement("li");
    const [word, tone] = OUTCOME_WORDS[o.kind] || [o.kind, ""];
    li.className = tone;
    li.dataset.kind = o.kind;
    const what = document.createElement("span");
    what.textContent = word + ": " + o.summary + " ";
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(o.at).toLocaleTimeString();
    li.append(what, when);
    list.appendChild(li);
  }
  $("outcomes-title").hidden = outcomes.length === 0;
}

function onEvent(name, data) {
  if (name === "challenges") {
    challenges = data.challenges.map((c) => ({ ...c }));
    renderApprovals();
    return;
  }
  if (OUTCOME_WORDS[name]) {
    outcomes.unshift({ kind: name, summary: data.summary, at: Date.now() });
    renderOutcomes();
    announce(OUTCOME_WORDS[name][0] + ": " + data.summary);
  }
}

async function deny(id) {
  const response = await fetch("/api/v1/companion/challenges/" + encodeURIComponent(id) + "/deny", {
    method: "POST",
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  }).catch(() => null);
  if (response && response.status === 401) {
    forget("This device was unpaired. Pair it again with a new code.");
  }
}

// Server-Sent Events over fetch, so the device token travels in a header, not in the URL.
async function connect() {
  const controller = new AbortController();
  stream = controller;
  let response;
  try {
    response = await fetch("/api/v1/companion/events", {
      headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
  } catch (e) {
    if (controller.signal.aborted) return;
    return reconnect();
  }
  if (response.status === 401) {
    forget("This device was unpaired. Pair it again with a new code.");
    return;
  }
  if (!response.ok || !response.body) return reconnect();
  setStatus("Live");
  retry = 1000;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  } catch (e) {
    if (controller.signal.aborted) return;
  }
  if (!controller.signal.aborted) reconnect();
}

function reconnect() {
  setStatus("Connection lost, reconnecting…", true);
  window.setTimeout(() => { if (token) connect(); }, retry);
  retry = Math.min(retry * 2, 15000);
}

function start() {
  $("pairing").hidden = true;
  $("approvals").hidden = false;
  $("who").textContent = localStorage.getItem(USER_KEY) || "this device";
  setStatus("Connecting…");
  renderOutcomes();
  connect();
  if (!tick) {
    tick = window.setInterval(() => {
      for (const c of challenges) {
        c.seconds_left_in_step = Math.max(0, c.seconds_left_in_step - 1);
        c.seconds_left = Math.max(0, c.seconds_left - 1);
      }
      renderTimers();
    }, 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("pair-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = $("pair-code").value.trim();
    if (code) pair(code);
  });
  $("unpair").addEventListener("click", () => forget(""));
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("code");
  if (code) {
    // The code leaves the address bar at once; it is single use anyway.
    history.replaceState(null, "", location.pathname);
    pair(code);
  } else if (token) {
    start();
  } else {
    showPairing("");
  }
});
