// @ts-check
// The edge-chat web client: one room per page, the room named by the URL
// (`/?room=ops` or `/#ops`). It keeps a socket open through `Connection`,
// renders what the room sends, and delivers what the user types exactly
// once through the nonce-matched `Outbox`.

import { Connection } from "./connection.js";
import { prefs } from "./prefs.js";
import { LogWriter, el, nameNode, pendingItem, personItem } from "./render.js";
import { codePointLength, composeText, normalizeName, normalizeRoom, roomFromLocation, roomUrl } from "./rules.js";
import { StickyScroll } from "./scroll.js";
import { ACK_AFTER_MS, RoomState } from "./state.js";

/** @typedef {import("../../src/protocol.ts").ServerFrame} ServerFrame */
/** @typedef {import("../../src/protocol.ts").WelcomeFrame} WelcomeFrame */
/** @typedef {import("../../src/protocol.ts").Message} Message */
/** @typedef {import("../../src/protocol.ts").User} User */
/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./outbox.js").Pending} Pending */

/** Show the character counter once this few are left. */
const COUNTER_FROM = 200;

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`#${id} is missing from index.html`);
  return node;
}

const ui = {
  roomName: $("room-name", HTMLElement),
  status: $("status", HTMLElement),
  statusText: $("status-text", HTMLElement),
  retry: $("retry", HTMLButtonElement),
  announcer: $("announcer", HTMLElement),
  scroller: $("scroller", HTMLElement),
  logStart: $("log-start", HTMLElement),
  log: $("log", HTMLElement),
  pending: $("pending", HTMLElement),
  jump: $("jump", HTMLButtonElement),
  people: $("people", HTMLElement),
  peopleToggle: $("people-toggle", HTMLButtonElement),
  peopleCount: $("people-count", HTMLElement),
  onlineCount: $("online-count", HTMLElement),
  online: $("online", HTMLElement),
  composer: $("composer", HTMLFormElement),
  input: $("message", HTMLTextAreaElement),
  counter: $("counter", HTMLElement),
  notice: $("notice", HTMLElement),
  me: $("me", HTMLButtonElement),
  nameDialog: $("name-dialog", HTMLDialogElement),
  nameInput: $("name-input", HTMLInputElement),
  roomDialog: $("room-dialog", HTMLDialogElement),
  roomInput: $("room-input", HTMLInputElement),
  recentRooms: $("recent-rooms", HTMLElement),
  share: $("share", HTMLButtonElement),
  switchRoom: $("switch-room", HTMLButtonElement),
  toast: $("toast", HTMLElement),
};

const { room, invalid: invalidRoom } = roomFromLocation(location);
prefs.visit(room);

/** The display name asked for (sent on every connect); the server's answer is `me.name`. */
let name = prefs.name;
const state = new RoomState();
const outbox = state.outbox;
/** @type {Map<string, HTMLElement>} */
const pendingNodes = new Map();
const log = new LogWriter(ui.log);
const scroll = new StickyScroll(ui.scroller, ui.jump);

const conn = new Connection({ url: socketUrl, onFrame, onState });

// ---- connection ------------------------------------------------------------

function socketUrl() {
  const url = new URL(`/chat/${room}`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (name !== null) url.searchParams.set("name", name);
  const token = prefs.token;
  if (token !== null) url.searchParams.set("token", token);
  if (state.lastId > 0) url.searchParams.set("after", String(state.lastId));
  // Broadcasts gathered every few tens of ms (a protocol extension): fewer
  // frames for the room to send and for this page to handle in a busy room.
  url.searchParams.set("batch", "1");
  return url.href;
}

/** @param {ServerFrame} frame */
function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
      return welcome(frame);
    case "message":
      return messages([frame]);
    case "join":
      if (!state.join(frame.user)) return;
      renderPeople();
      return scroll.append(() => log.system([nameNode(frame.user.name), " joined"], frame.ts), 0);
    case "leave":
      state.leave(frame.user);
      renderPeople();
      return scroll.append(() => log.system([nameNode(frame.user.name), " left"], frame.ts), 0);
    case "error":
      return serverError(frame.code, frame.message);
  }
}

/** @param {WelcomeFrame} w */
function welcome(w) {
  prefs.token = w.token;
  if (name === null || normalizeName(name) === null) {
    // Dismissed the name dialog, or a name the server would not take: keep the guest name it gave.
    name = w.you.name;
    prefs.name = name;
  }
  const got = state.welcome(w, performance.now());
  ui.me.textContent = w.you.name;
  renderPeople();
  if (got.history === "reset") {
    log.clear();
    log.system("This room's history was reset", Date.now(), "gap");
  } else if (got.history === "gap") {
    scroll.append(() => log.system("Some messages were missed while you were away — they are no longer kept", Date.now(), "gap"), 0);
  }
  render(got);
  if (got.trimmed) ui.logStart.textContent = `Older messages in #${room} are no longer kept.`;
  renderPending();
  drain();
  // The first ack tells the room this page acknowledges what it reads.
  sendAck();
}

// ---- acks (protocol extension) ----------------------------------------------
// The room closes a socket that acks but falls more than a history behind, so
// a page that stops reading (a frozen tab) cannot pile up frames in the room;
// it reconnects with `after` and loses nothing. Acking every few messages, or
// a second after the last one, keeps a reading page far from that limit.

/** @type {ReturnType<typeof setTimeout> | undefined} */
let ackTimer;

function sendAck() {
  clearTimeout(ackTimer);
  ackTimer = undefined;
  if (conn.send({ type: "ack", id: state.lastId })) state.acked = state.lastId;
}

function ackLater() {
  if (state.ackDue) sendAck();
  else ackTimer ??= setTimeout(sendAck, ACK_AFTER_MS);
}

/** @param {Message[]} list */
function messages(list) {
  render(state.messages(list));
}

/** @param {import("./state.js").Received} got */
function render({ fresh, confirmed }) {
  for (const p of confirmed) {
    pendingNodes.get(p.nonce)?.remove();
    pendingNodes.delete(p.nonce);
  }
  if (fresh.length === 0) return;
  scroll.append(() => log.messages(fresh, state.me?.id), fresh.length);
  ackLater();
  drain();
}

/**
 * @param {string} code
 * @param {string} message
 */
function serverError(code, message) {
  const p = outbox.inFlight;
  if (code === "rate_limited") {
    // Dropped by the server, so sending it again cannot duplicate it.
    state.rateLimited();
    showNotice("Slow down a little — your message will be sent in a moment.");
    setTimeout(drain, 1000 / state.limits.perSec);
    return;
  }
  if (code === "invalid_message" && p !== undefined) {
    outbox.remove(p);
    pendingNodes.get(p.nonce)?.remove();
    pendingNodes.delete(p.nonce);
    if (ui.input.value === "") ui.input.value = p.text;
    updateCounter();
    showNotice(`Not sent: ${message || "the server refused this message"}.`);
    drain();
    return;
  }
  showNotice(message || code);
}

// ---- sending ---------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let drainTimer;

function drain() {
  if (conn.state.kind !== "online") return;
  const p = outbox.next();
  if (p === undefined) return;
  const wait = state.sendWait(performance.now());
  if (wait > 0) {
    clearTimeout(drainTimer);
    drainTimer = setTimeout(drain, wait);
    return;
  }
  if (conn.send({ type: "message", text: p.text, nonce: p.nonce })) {
    state.sent(p);
    renderPending();
  }
}

function submit() {
  const text = composeText(ui.input.value);
  if (text.trim() === "") return;
  if (codePointLength(text) > state.limits.text) {
    showNotice(`Messages can be at most ${state.limits.text} characters.`);
    return;
  }
  const p = outbox.add(text);
  if (p === null) {
    showNotice("Too many unsent messages. Wait for the connection to come back.");
    return;
  }
  const node = pendingItem(p.text, p.nonce);
  pendingNodes.set(p.nonce, node);
  ui.pending.append(node);
  ui.input.value = "";
  hideNotice();
  updateCounter();
  autosize();
  renderPending();
  scroll.toBottom();
  drain();
}

function renderPending() {
  const online = conn.state.kind === "online";
  for (const p of outbox.items) {
    const node = pendingNodes.get(p.nonce);
    if (node === undefined) continue;
    node.dataset.state = online ? p.state : "waiting";
    const label = node.querySelector(".pending-state");
    if (label) label.textContent = online ? "Sending…" : "Not sent yet — waiting for the connection";
  }
}

// ---- presence & status ------------------------------------------------------

function renderPeople() {
  const people = state.people();
  const frag = document.createDocumentFragment();
  for (const u of people) frag.append(personItem(u, u.id === state.me?.id));
  ui.online.replaceChildren(frag);
  const n = String(people.length);
  ui.onlineCount.textContent = n;
  ui.peopleCount.textContent = n;
  ui.peopleToggle.setAttribute("aria-label", `${n} online — show who`);
}

/** @type {ReturnType<typeof setInterval> | undefined} */
let countdown;
/** @type {ConnectionState["kind"] | null} */
let announced = null;

/** @param {ConnectionState} s */
function onState(s) {
  clearInterval(countdown);
  ui.status.dataset.state = s.kind;
  ui.retry.hidden = !(s.kind === "reconnecting" || s.kind === "offline");
  const text = {
    idle: "Starting…",
    connecting: "Connecting…",
    online: "Online",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  }[s.kind];
  ui.statusText.textContent = text;
  if (s.kind === "reconnecting") {
    const tick = () => {
      const secs = Math.max(1, Math.ceil((s.at - Date.now()) / 1000));
      ui.statusText.textContent = `Reconnecting in ${secs} s`;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
  // The countdown changes every second; announce only the state, and only when it changes.
  if (s.kind !== announced && s.kind !== "connecting") {
    announced = s.kind;
    ui.announcer.textContent = s.kind === "online" ? "Connected" : s.kind === "offline" ? "You are offline" : "Connection lost, reconnecting";
  }
  document.body.dataset.connection = s.kind;
  renderPending();
}

// ---- composer ----------------------------------------------------------------

function updateCounter() {
  const n = codePointLength(ui.input.value);
  const left = state.limits.text - n;
  ui.counter.hidden = left > COUNTER_FROM;
  ui.counter.textContent = left >= 0 ? `${left} left` : `${-left} over the limit`;
  ui.counter.classList.toggle("over", left < 0);
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 200)}px`;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let noticeTimer;
/** @param {string} text */
function showNotice(text) {
  clearTimeout(noticeTimer);
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  noticeTimer = setTimeout(hideNotice, 8000);
}
function hideNotice() {
  ui.notice.hidden = true;
}

ui.input.addEventListener("keydown", (ev) => {
  // isComposing: Enter confirms an IME candidate (Japanese, Chinese…), it must not send.
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
    ev.preventDefault();
    submit();
  }
});
ui.input.addEventListener("input", () => {
  updateCounter();
  autosize();
});
ui.composer.addEventListener("submit", (ev) => {
  ev.preventDefault();
  submit();
  ui.input.focus();
});

// ---- name, room, sharing ------------------------------------------------------

function askName() {
  // A dialog closed with Escape keeps its previous returnValue; start clean.
  ui.nameDialog.returnValue = "";
  ui.nameInput.value = name ?? "";
  ui.nameInput.setCustomValidity("");
  ui.nameDialog.showModal();
  ui.nameInput.select();
}
ui.nameInput.addEventListener("input", () => {
  ui.nameInput.setCustomValidity(
    normalizeName(ui.nameInput.value) === null ? "Use 1 to 32 characters, no control or invisible characters, and not “bot”." : "",
  );
});
ui.nameDialog.addEventListener("close", () => {
  const chosen = ui.nameDialog.returnValue === "save" ? normalizeName(ui.nameInput.value) : null;
  if (chosen !== null && chosen !== name) {
    name = chosen;
    prefs.name = chosen;
    ui.me.textContent = chosen;
    // The name is part of the connect URL; a fresh connection tells the room.
    if (conn.state.kind === "idle") conn.start();
    else conn.restart();
  } else if (conn.state.kind === "idle") {
    conn.start();
  }
  ui.input.focus();
});
ui.me.addEventListener("click", askName);

ui.switchRoom.addEventListener("click", () => {
  ui.roomInput.value = "";
  const frag = document.createDocumentFragment();
  for (const r of prefs.rooms) {
    if (r === room) continue;
    const li = el("li");
    const a = el("a", "", `#${r}`);
    a.href = roomUrl(r);
    li.append(a);
    frag.append(li);
  }
  ui.recentRooms.replaceChildren(frag);
  ui.recentRooms.parentElement?.toggleAttribute("hidden", ui.recentRooms.childElementCount === 0);
  ui.roomDialog.returnValue = "";
  ui.roomDialog.showModal();
});
ui.roomInput.addEventListener("input", () => {
  const raw = ui.roomInput.value.trim().replace(/^#/, "");
  ui.roomInput.setCustomValidity(normalizeRoom(raw) === null ? "Letters, digits, - and _ (up to 64), starting with a letter or digit." : "");
});
ui.roomDialog.addEventListener("close", () => {
  if (ui.roomDialog.returnValue !== "go") return;
  const next = normalizeRoom(ui.roomInput.value.trim().replace(/^#/, ""));
  if (next !== null && next !== room) location.assign(roomUrl(next));
});
for (const dialog of [ui.nameDialog, ui.roomDialog]) {
  dialog.querySelector("[data-cancel]")?.addEventListener("click", () => dialog.close("cancel"));
}

ui.share.addEventListener("click", async () => {
  const url = roomUrl(room);
  try {
    await navigator.clipboard.writeText(url);
    toast("Link copied");
  } catch {
    // No clipboard (insecure context, permission denied): show it to copy by hand.
    prompt("Copy this link to the room:", url);
  }
});

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;
/** @param {string} text */
function toast(text) {
  clearTimeout(toastTimer);
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 2000);
}

// A different room in the hash (someone edited `#ops`): that is a different page.
addEventListener("hashchange", () => {
  if (new URLSearchParams(location.search).has("room")) return;
  if (roomFromLocation(location).room !== room) location.reload();
});

/** @param {boolean} open */
function showPeople(open) {
  ui.peopleToggle.setAttribute("aria-expanded", String(open));
  ui.people.classList.toggle("open", open);
}
ui.peopleToggle.addEventListener("click", () => showPeople(!ui.people.classList.contains("open")));
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && ui.people.classList.contains("open")) {
    showPeople(false);
    ui.peopleToggle.focus();
  }
});
document.addEventListener("click", (ev) => {
  const target = ev.target instanceof Node ? ev.target : null;
  if (ui.people.classList.contains("open") && !ui.people.contains(target) && !ui.peopleToggle.contains(target)) showPeople(false);
});

ui.retry.addEventListener("click", () => conn.retryNow());

addEventListener("beforeunload", (ev) => {
  if (outbox.items.length > 0) ev.preventDefault();
});

// ---- start ------------------------------------------------------------------

ui.roomName.textContent = room;
ui.logStart.textContent = `This is the start of #${room}. Say hello.`;
document.title = `#${room} · Edge Chat`;
ui.input.placeholder = `Message #${room}`;
ui.log.setAttribute("aria-label", `Messages in #${room}`);
ui.me.textContent = name ?? "…";
updateCounter();
if (invalidRoom !== null) showNotice(`“${invalidRoom}” is not a valid room name, so you are in #${room}.`);

if (name === null) askName();
else conn.start();
