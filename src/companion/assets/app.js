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
  "outcome-unknown": ["No answer from AWS: check whether it ran", "bad"],
  cancelled: ["Cancelled, nothing ran", "bad"],
  "too-many-wrong-codes": ["Cancelled after too many wrong codes, nothing ran", "bad"],
  replaced: ["Replaced by a newer request", "bad"],
  unreadable: ["Could not be read back, closed, nothing ran", "bad"],
};

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem(TOKEN_KEY);
let challenges = [];
let outcomes = [];
let stream = null;
let retry = 1000;
let retryTimer = null;
let tick = null;
// No bytes for this long (the server sends a keep-alive every 15 s): the connection is dead.
const SILENCE_MS = 40 * 1000;

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
  if (retryTimer) { window.clearTimeout(retryTimer); retryTimer = null; }
  // Nothing of the previous pairing stays in the page, not even hidden.
  challenges = [];
  outcomes = [];
  $("list").textContent = "";
  renderOutcomes();
  $("keep").hidden = true;
  $("approvals").hidden = true;
  $("pairing").hidden = false;
  $("pairing-reason").hidden = !reason;
  $("pairing-reason").textContent = reason || "";
  setStatus("Not paired");
  $("pair-code").focus();
}

/** Revokes this device's token on the server (best effort), then forgets it here. */
async function unpair(reason) {
  if (token) {
    await fetch("/api/v1/companion/unpair", {
      method: "POST",
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
    }).catch(() => null);
  }
  forget(reason);
}

function forget(reason) {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
  token = null;
  showPairing(reason);
}

function pairingFailed(message) {
  if (token) {
    // Still paired as before: carry on, and say why the new code did not take.
    start();
    setStatus(message, true);
    return;
  }
  showPairing("");
  $("pair-error").textContent = message;
  $("pair-error").hidden = false;
}

async function pair(code) {
  $("pair-error").hidden = true;
  setStatus("Pairing…");
  if (token) {
    // Switching pairings: the old token stops working first.
    await unpair("");
  }
  let response;
  try {
    response = await fetch("/api/v1/companion/pair", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
      cache: "no-store",
    });
  } catch (e) {
    pairingFailed("voxgate cannot be reached. Check your connection and try again.");
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    pairingFailed(body.error || "That code did not work.");
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
      li.querySelector(".deny-yes").addEventListener("click", () => deny(c.id, li));
      list.appendChild(li);
      announce("New approval: " + c.summary + ". Code " + c.code.split("").join(" ") + ".");
    }
    li.querySelector(".summary").textContent = c.summary;
    const details = li.querySelector(".details");
    details.replaceChildren();
    for (const [label, value] of c.details) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.className = label.toLowerCase().replace(/[^a-z]+/g, "-");
      dd.textContent = value;
      details.append(dt, dd);
    }
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

// Countdowns run from when the snapshot arrived, so a throttled background tab stays right.
function renderTimers() {
  for (const li of $("list").children) {
    const c = challenges.find((x) => x.id === li.dataset.id);
    if (!c) continue;
    const elapsed = (Date.now() - c.received) / 1000;
    const step = Math.max(0, Math.ceil(c.seconds_left_in_step - elapsed));
    li.querySelector(".next").textContent = "New code in " + step + " s";
    li.querySelector(".expires").textContent = "Expires in " + minutes(c.seconds_left - elapsed);
    // A code past its step without a refresh would be wrong: hide it until the new one.
    li.querySelector(".code").classList.toggle("stale", elapsed > c.seconds_left_in_step + 5);
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
    const received = Date.now();
    challenges = data.challenges.map((c) => ({ ...c, received }));
    renderApprovals();
    return;
  }
  if (OUTCOME_WORDS[name]) {
    outcomes.unshift({ kind: name, summary: data.summary, at: Date.now() });
    renderOutcomes();
    announce(OUTCOME_WORDS[name][0] + ": " + data.summary);
  }
}

async function deny(id, li) {
  const error = li.querySelector(".deny-error");
  error.hidden = true;
  const response = await fetch("/api/v1/companion/challenges/" + encodeURIComponent(id) + "/deny", {
    method: "POST",
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  }).catch(() => null);
  if (response && response.ok) return;
  if (response && response.status === 401) {
    forget("This device was unpaired. Pair it again with a new code.");
    return;
  }
  // Not denied: say so (and what became of it instead), so nobody believes it is.
  let said = null;
  if (response && response.status === 409) {
    const body = await response.json().catch(() => null);
    said = body && typeof body.error === "string" ? body.error : "This is no longer waiting, so there is nothing to deny.";
  }
  error.textContent = said || "Could not deny it. The code still works: try again, or say cancel to Alexa.";
  error.hidden = false;
  li.querySelector(".confirm").hidden = true;
  li.querySelector(".deny").hidden = false;
}

// Server-Sent Events over fetch, so the device token travels in a header, not in the URL.
async function connect() {
  retryTimer = null;
  const controller = new AbortController();
  stream = controller;
  let watchdog = null;
  const quiet = () => {
    window.clearTimeout(watchdog);
    watchdog = window.setTimeout(() => controller.abort(), SILENCE_MS);
  };
  let response;
  try {
    quiet();
    response = await fetch("/api/v1/companion/events", {
      headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 401) {
      forget("This device was unpaired. Pair it again with a new code.");
      return;
    }
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      quiet();
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
        if (!data) continue;
        onEvent(name, JSON.parse(data));
        // Only a stream that delivered something counts as healthy again.
        retry = 1000;
        setStatus("Live");
      }
    }
  } catch (e) {
    // Reconnect below, unless this stream was closed on purpose.
  } finally {
    window.clearTimeout(watchdog);
    controller.abort();
  }
  if (stream === controller && token) reconnect();
}

function reconnect() {
  setStatus("Connection lost, reconnecting…", true);
  if (retryTimer) window.clearTimeout(retryTimer);
  retryTimer = window.setTimeout(() => { if (token) connect(); }, retry);
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
  $("unpair").addEventListener("click", () => unpair(""));
  $("keep").addEventListener("click", () => start());
  window.addEventListener("hashchange", () => { openedWithLink(); });
  if (!openedWithLink()) {
    if (token) {
      start();
    } else {
      showPairing("");
    }
  }
});

/** Handles a pairing link (`#code=…`); false if the address has none. */
function openedWithLink() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("code");
  if (!code) return false;
  // The code leaves the address bar at once; it is single use anyway.
  history.replaceState(null, "", location.pathname);
  if (token) {
    // Never switch an already paired device silently: ask.
    showPairing("This device is already paired. Press Pair to switch it to the code from the link, or keep the current pairing.");
    $("pair-code").value = code;
    $("keep").hidden = false;
  } else {
    pair(code);
  }
  return true;
}
