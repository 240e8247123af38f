// @ts-check
// The edge-chat web client: one room per page, the room named by the URL
// (`/?room=ops` or `/#ops`). It keeps a socket open through `Connection`,
// renders what the room sends, and delivers what the user types exactly
// once through the nonce-matched `Outbox`. A host site may sign its users
// in with a JWT (`#auth=…` or postMessage, see auth.js); moderators then get
// delete, ban and slow mode.

import {
  NEED_AUTH_MESSAGE,
  authFromMessage,
  needsRenewal,
  parseAllowedOrigins,
  parseFragment,
  peekClaims,
} from "./auth.js";
import { Connection } from "./connection.js";
import { prefs } from "./prefs.js";
import { LogWriter, el, nameNode, pendingItem, personItem } from "./render.js";
import { codePointLength, composeText, normalizeName, normalizeRoom, roomFromLocation, roomUrl } from "./rules.js";
import { StickyScroll } from "./scroll.js";
import { ACK_AFTER_MS, RoomState } from "./state.js";

/** @typedef {import("./frames.js").ServerFrame} ServerFrame */
/** @typedef {import("./frames.js").WelcomeFrame} WelcomeFrame */
/** @typedef {import("./frames.js").Message} Message */
/** @typedef {import("./frames.js").User} User */
/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./outbox.js").Pending} Pending */
/** @typedef {import("./frames.js").ModerationFrame} ModerationFrame */
/** @typedef {import("./connection.js").CloseInfo} CloseInfo */
/** @typedef {import("./render.js").View} View */

/** How long a connect waits for the host page to answer `need-auth` before it goes on with what it has. */
const AUTH_WAIT_MS = 3000;

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
  send: $("send", HTMLButtonElement),
  sendWait: $("send-wait", HTMLElement),
  slowHint: $("slow-hint", HTMLElement),
  onlinePartial: $("online-partial", HTMLElement),
  modTools: $("mod-tools", HTMLElement),
  slowMode: $("slow-mode", HTMLSelectElement),
  banned: $("banned", HTMLElement),
  bannedText: $("banned-text", HTMLElement),
  bannedRetry: $("banned-retry", HTMLButtonElement),
  banDialog: $("ban-dialog", HTMLDialogElement),
  banName: $("ban-name", HTMLElement),
  banMinutes: $("ban-minutes", HTMLSelectElement),
  banReason: $("ban-reason", HTMLInputElement),
  banPurge: $("ban-purge", HTMLInputElement),
};

const countFormat = new Intl.NumberFormat();
const clockFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

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

const conn = new Connection({ url: socketUrl, onFrame, onState, onClose });

// ---- the host's JWT (auth.js) ------------------------------------------------

const allowedOrigins = parseAllowedOrigins(
  document.querySelector('meta[name="edge-chat-allowed-origins"]')?.getAttribute("content"),
);
/** Framed by a page that may hand over a JWT. */
const hosted = window.parent !== window && allowedOrigins.length > 0;
/** The origin of the host page once it has sent a JWT; `need-auth` carries no secret, so before that it goes to any. */
let hostOrigin = "*";
/** @type {string | null} */
let auth = prefs.auth;
/** The last connect with a JWT failed before its welcome: perhaps the JWT, so ask the host for a new one. */
let authFailed = false;
let askedHost = false;
/** @type {(() => void)[]} */
let authWaiters = [];

takeFragment();
state.ban = prefs.ban(room, banHolder());

/** Who this page connects as, before the room says: the JWT's subject, else the guest token's id. */
function banHolder() {
  const sub = auth === null ? null : peekClaims(auth).sub;
  if (sub !== null) return `sub:${sub}`;
  return `guest:${prefs.token?.split(".")[0] ?? "new"}`;
}

/** Reads `#…&auth=…` and takes the JWT out of the address bar at once. */
function takeFragment() {
  const fragment = parseFragment(location.hash);
  if (fragment.auth === null) return;
  history.replaceState(history.state, "", `${location.pathname}${location.search}${fragment.rest}`);
  takeAuth(fragment.auth);
}

/** @param {string} jwt */
function takeAuth(jwt) {
  const before = auth;
  auth = jwt;
  prefs.auth = jwt;
  authFailed = false;
  const waiting = authWaiters.splice(0);
  for (const done of waiting) done();
  // A connect that asked for it goes on with it; otherwise a different person needs a new connection now.
  if (waiting.length > 0 || conn.state.kind === "idle") return;
  if (before === null || peekClaims(before).sub !== peekClaims(jwt).sub) conn.restart();
  else conn.retryNow();
}

/** Asks the host page for a JWT and waits a little for it. */
function askHost() {
  askedHost = true;
  window.parent.postMessage({ type: NEED_AUTH_MESSAGE }, hostOrigin);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve(undefined);
    };
    const timer = setTimeout(() => {
      authWaiters = authWaiters.filter((w) => w !== done);
      resolve(undefined);
    }, AUTH_WAIT_MS);
    authWaiters.push(done);
  });
}

addEventListener("message", (ev) => {
  const jwt = authFromMessage(
    { data: ev.data, origin: ev.origin, fromParent: hosted && ev.source === window.parent },
    allowedOrigins,
  );
  if (jwt === null) return;
  hostOrigin = ev.origin;
  takeAuth(jwt);
});

// ---- connection ------------------------------------------------------------

async function socketUrl() {
  if (hosted && (auth === null ? !askedHost : authFailed || needsRenewal(auth, Date.now()))) await askHost();
  const url = new URL(`/chat/${room}`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (name !== null) url.searchParams.set("name", name);
  const token = prefs.token;
  if (token !== null) url.searchParams.set("token", token);
  if (state.lastId > 0) url.searchParams.set("after", String(state.lastId));
  // A query parameter, because a browser cannot set headers on a WebSocket; the page sends no Referer (no-referrer), and the room does not log query strings.
  if (auth !== null) url.searchParams.set("auth", auth);
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
    case "delete":
      if (state.deleted(frame)) log.tombstone(frame.id);
      return;
    case "settings":
      state.settings(frame.slowMode);
      renderSlowMode();
      return scroll.append(
        () =>
          log.system(
            frame.slowMode === 0
              ? "Slow mode is off"
              : `Slow mode is on: one message every ${duration(frame.slowMode)}`,
            Date.now(),
          ),
        0,
      );
    case "presence":
      state.presence(frame);
      return renderPeople();
    case "join":
      if (!state.join(frame.user)) return;
      renderPeople();
      return scroll.append(() => log.system([nameNode(frame.user.name), " joined"], frame.ts), 0);
    case "leave":
      state.leave(frame.user);
      renderPeople();
      return scroll.append(() => log.system([nameNode(frame.user.name), " left"], frame.ts), 0);
    case "error":
      return serverError(frame.code, frame.message, frame.nonce);
  }
}

/** @param {number} seconds */
function duration(seconds) {
  if (seconds % 3600 === 0) return seconds === 3600 ? "hour" : `${seconds / 3600} hours`;
  if (seconds % 60 === 0) return seconds === 60 ? "minute" : `${seconds / 60} minutes`;
  return seconds === 1 ? "second" : `${seconds} seconds`;
}

/** @returns {View} */
function view() {
  return {
    me: state.me?.id,
    canDelete: (from) => from === state.me?.id || state.isModerator,
    ambiguous: (u) => state.ambiguous(u),
  };
}

/** @param {WelcomeFrame} w */
function welcome(w) {
  ackedOnSocket = false;
  prefs.token = w.token;
  if (w.you.verified !== true && (name === null || normalizeName(name) === null)) {
    // Dismissed the name dialog, or a name the server would not take: keep the guest name it gave.
    // (Not a signed-in user's: the host's name for them is not this browser's guest name.)
    name = w.you.name;
    prefs.name = name;
  }
  const was = `${state.me?.id}|${state.isModerator}`;
  const got = state.welcome(w, performance.now());
  authFailed = false;
  prefs.setBan(room, banHolder(), null);
  renderBan();
  ui.me.textContent = w.you.name;
  ui.me.title =
    w.you.verified === true ? "Your name comes from the site you signed in with" : "Change your display name";
  ui.me.setAttribute("aria-label", w.you.verified === true ? `Signed in as ${w.you.name}` : "Change your display name");
  // Another identity (a JWT arrived, a moderator's role) may delete other messages than the one before.
  if (`${state.me?.id}|${state.isModerator}` !== was) log.actions(view());
  renderPeople();
  renderSlowMode();
  if (got.history === "reset") {
    log.clear();
    log.system("This room's history was reset", Date.now(), "gap");
  } else if (got.history === "gap") {
    scroll.append(
      () => log.system("Some messages were missed while you were away — they are no longer kept", Date.now(), "gap"),
      0,
    );
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
/** Whether this socket has had its first ack. That one may repeat the last id acked; later ones must advance, or the room answers with an error. */
let ackedOnSocket = false;

function sendAck() {
  clearTimeout(ackTimer);
  ackTimer = undefined;
  if (ackedOnSocket && state.lastId <= state.acked) return;
  if (conn.send({ type: "ack", id: state.lastId })) {
    state.acked = state.lastId;
    ackedOnSocket = true;
  }
}

function ackLater() {
  if (state.ackDue) sendAck();
  else ackTimer ??= setTimeout(sendAck, ACK_AFTER_MS);
}

/** @param {Message[]} list */
function messages(list) {
  render(state.messages(list, performance.now()));
  renderSlowMode();
}

/** @param {import("./state.js").Received} got */
function render({ fresh, confirmed }) {
  for (const p of confirmed) {
    pendingNodes.get(p.nonce)?.remove();
    pendingNodes.delete(p.nonce);
  }
  if (fresh.length === 0) return;
  scroll.append(() => log.messages(fresh, view()), fresh.length);
  ackLater();
  drain();
}

/**
 * Moderation frames this page sent, by nonce, so an `error` that echoes one
 * says what failed and undoes what the page showed in advance. Bounded: a
 * room answers or the socket dies, and a page sends these by hand.
 * @type {Map<string, { what: string, undo: () => void }>}
 */
const actions = new Map();

/**
 * @param {ModerationFrame} frame
 * @param {string} what  for a notice if the room refuses it, e.g. "delete the message"
 * @param {() => void} undo  puts back what the page changed on sending it
 */
function sendAction(frame, what, undo) {
  const nonce = `a${Math.random().toString(36).slice(2, 12)}`;
  if (actions.size > 50) actions.clear();
  actions.set(nonce, { what, undo });
  if (!conn.send({ ...frame, nonce })) {
    actions.delete(nonce);
    undo();
    showNotice(`Could not ${what}: not connected. Try again once online.`);
  }
}

/**
 * @param {string} code
 * @param {string} message
 * @param {string | undefined} nonce
 */
function serverError(code, message, nonce) {
  const action = nonce === undefined ? undefined : actions.get(nonce);
  if (action !== undefined && nonce !== undefined) {
    actions.delete(nonce);
    action.undo();
    const why =
      code === "forbidden" ? "not allowed" : code === "not_found" ? "that message is no longer kept" : message || code;
    showNotice(`Could not ${action.what}: ${why}.`);
    return;
  }
  const p = outbox.inFlight;
  if (code === "slow_mode") {
    // Dropped by the server (another tab of this user posted, or the clocks differ): it goes again when the countdown ends.
    const now = performance.now();
    state.slowed(now);
    renderSlowMode();
    clearTimeout(drainTimer);
    drainTimer = setTimeout(drain, state.slowWait(now));
    return;
  }
  if (code === "forbidden" && p !== undefined) {
    outbox.remove(p);
    pendingNodes.get(p.nonce)?.remove();
    pendingNodes.delete(p.nonce);
    if (ui.input.value === "") ui.input.value = p.text;
    showNotice("You can read this room but not write in it. Sign in through the site that sent you here.");
    drain();
    return;
  }
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
    state.sent(p, performance.now());
    renderPending();
    renderSlowMode();
  }
}

function submit() {
  const text = composeText(ui.input.value);
  if (text.trim() === "") return;
  const wait = state.slowWait(performance.now());
  if (wait > 0) {
    // The button already counts down; Enter keeps the text and says so to a screen reader.
    ui.announcer.textContent = `Slow mode: you can send again in ${Math.ceil(wait / 1000)} seconds`;
    return;
  }
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
  for (const u of people) {
    frag.append(personItem(u, { own: u.id === state.me?.id, ambiguous: state.ambiguous(u), canBan: state.canBan(u) }));
  }
  ui.online.replaceChildren(frag);
  const n = countFormat.format(state.onlineCount);
  ui.onlineCount.textContent = n;
  ui.peopleCount.textContent = n;
  ui.peopleToggle.setAttribute("aria-label", `${n} online — show who`);
  // A large room lists only some of its people (PRESENCE_LIMIT); say so rather than pretend.
  ui.onlinePartial.hidden = !state.partial;
  ui.onlinePartial.textContent = state.partial ? `Showing ${countFormat.format(people.length)} of ${n}` : "";
  ui.modTools.hidden = !state.isModerator;
  ui.slowMode.value = String(state.slowMode);
  // A value the menu does not offer (set over HTTP) still shows.
  if (ui.slowMode.value !== String(state.slowMode)) {
    ui.slowMode.append(new Option(duration(state.slowMode), String(state.slowMode)));
    ui.slowMode.value = String(state.slowMode);
  }
}

// ---- slow mode -----------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let slowTimer;

/** The send button counts down while slow mode makes this user wait; moderators are exempt. */
function renderSlowMode() {
  clearTimeout(slowTimer);
  const wait = state.slowWait(performance.now());
  const secs = Math.ceil(wait / 1000);
  // A disabled button drops its focus to the page; the message box is where the user was going.
  if (wait > 0 && document.activeElement === ui.send) ui.input.focus();
  ui.send.disabled = wait > 0 || ui.input.disabled;
  ui.send.classList.toggle("waiting", wait > 0);
  ui.sendWait.hidden = wait === 0;
  ui.sendWait.textContent = wait > 0 ? String(secs) : "";
  ui.send.setAttribute("aria-label", wait > 0 ? `Slow mode: you can send again in ${secs} seconds` : "Send message");
  ui.slowHint.hidden = state.slowMode === 0;
  ui.slowHint.textContent =
    state.slowMode === 0
      ? ""
      : state.isModerator
        ? `Slow mode: every ${duration(state.slowMode)}, not for moderators`
        : `Slow mode: one message every ${duration(state.slowMode)}`;
  // Tick on the second boundary of the remaining time, so the number never lags.
  if (wait > 0) slowTimer = setTimeout(renderSlowMode, wait % 1000 || 1000);
}

ui.slowMode.addEventListener("change", () => {
  const slowMode = Number(ui.slowMode.value);
  sendAction({ type: "settings", slowMode }, "change slow mode", () => {
    ui.slowMode.value = String(state.slowMode);
  });
});

// ---- delete and ban ----------------------------------------------------------

ui.log.addEventListener("click", (ev) => {
  const button = ev.target instanceof Element ? ev.target.closest("button[data-action=delete]") : null;
  if (!(button instanceof HTMLButtonElement)) return;
  const id = Number(button.closest(".msg")?.getAttribute("data-id"));
  // Two clicks: the first arms the button ("Delete?"), so a stray tap deletes nothing.
  if (!button.hasAttribute("data-armed")) {
    button.toggleAttribute("data-armed", true);
    button.setAttribute("aria-label", "Confirm: delete this message");
    setTimeout(() => {
      button.removeAttribute("data-armed");
      button.setAttribute("aria-label", "Delete message");
    }, 4000);
    return;
  }
  if (!Number.isSafeInteger(id)) return;
  button.disabled = true;
  sendAction({ type: "delete", id }, "delete the message", () => {
    button.disabled = false;
  });
});

/** @type {User | null} */
let banning = null;

ui.online.addEventListener("click", (ev) => {
  const button = ev.target instanceof Element ? ev.target.closest("button[data-action=ban]") : null;
  const id = button?.closest(".person")?.getAttribute("data-id");
  const user = id == null ? undefined : state.online.get(id);
  if (user === undefined) return;
  banning = user;
  ui.banName.textContent = user.name;
  ui.banReason.value = "";
  ui.banPurge.checked = false;
  ui.banDialog.returnValue = "";
  ui.banDialog.showModal();
});

ui.banDialog.addEventListener("close", () => {
  const user = banning;
  banning = null;
  if (ui.banDialog.returnValue !== "ban" || user === null) return;
  /** @type {ModerationFrame & { type: "ban" }} */
  const frame = { type: "ban", user: user.id };
  if (ui.banMinutes.value !== "") frame.minutes = Number(ui.banMinutes.value);
  const reason = ui.banReason.value.trim();
  if (reason !== "") frame.reason = reason;
  if (ui.banPurge.checked) frame.purge = true;
  // The room says nothing on success (the banned user's sockets close, a leave follows), so the toast says what was asked.
  sendAction(frame, `ban ${user.name}`, () => {});
  if (conn.state.kind === "online") toast(`Banning ${user.name}…`);
});

// ---- banned -------------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let banTimer;

/**
 * @param {CloseInfo} close
 * @returns {boolean} whether to reconnect
 */
function onClose(close) {
  if (!close.welcomed && auth !== null) authFailed = true;
  const verdict = state.closed(close, Date.now());
  prefs.setBan(room, banHolder(), state.ban);
  renderBan();
  return verdict === "retry";
}

/** What a banned user sees instead of the composer: why, and until when. */
function renderBan() {
  clearTimeout(banTimer);
  const ban = state.ban;
  const banned = ban !== null && conn.state.kind === "stopped";
  ui.banned.hidden = !banned;
  ui.input.disabled = banned;
  renderSlowMode();
  if (!banned) return;
  const parts = [`You are banned from #${room}`];
  if (ban.until === null) parts.push(" until a moderator lifts the ban.");
  else {
    const mins = Math.max(1, Math.ceil((ban.until - Date.now()) / 60_000));
    parts.push(
      ` for ${mins < 120 ? `${mins} more minute${mins === 1 ? "" : "s"}` : `about ${Math.round(mins / 60)} more hours`} (until ${clockFormat.format(ban.until)}).`,
    );
    // Try again once it is over; the delay is capped where setTimeout stops counting.
    banTimer = setTimeout(() => conn.retryNow(), Math.min(ban.until - Date.now() + 1000, 2 ** 31 - 1));
  }
  if (ban.reason !== "") parts.push(` Reason: “${ban.reason}”`);
  ui.bannedText.textContent = parts.join("");
}

ui.bannedRetry.addEventListener("click", () => conn.retryNow());

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
    stopped: state.ban !== null ? "Banned" : "Not connected",
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
    ui.announcer.textContent =
      s.kind === "online"
        ? "Connected"
        : s.kind === "offline"
          ? "You are offline"
          : s.kind === "stopped"
            ? "You are banned from this room"
            : "Connection lost, reconnecting";
  }
  document.body.dataset.connection = s.kind;
  renderPending();
  renderBan();
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
    normalizeName(ui.nameInput.value) === null
      ? "Use 1 to 32 characters, no control or invisible characters, and not “bot”."
      : "",
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
ui.me.addEventListener("click", () => {
  if (state.me?.verified === true) toast("Your name comes from the site you signed in with");
  else askName();
});

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
  ui.roomInput.setCustomValidity(
    normalizeRoom(raw) === null ? "Letters, digits, - and _ (up to 64), starting with a letter or digit." : "",
  );
});
ui.roomDialog.addEventListener("close", () => {
  if (ui.roomDialog.returnValue !== "go") return;
  const next = normalizeRoom(ui.roomInput.value.trim().replace(/^#/, ""));
  if (next !== null && next !== room) location.assign(roomUrl(next));
});
for (const dialog of [ui.nameDialog, ui.roomDialog, ui.banDialog]) {
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

// A different room in the hash (someone edited `#ops`): that is a different
// page. A new `auth=` (the host renewing it through the frame's URL) is
// taken without a reload.
addEventListener("hashchange", () => {
  takeFragment();
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
  if (ui.people.classList.contains("open") && !ui.people.contains(target) && !ui.peopleToggle.contains(target))
    showPeople(false);
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

// A signed-in user's name comes from the host; so does a hosted page's.
if (name === null && auth === null && !hosted) askName();
else conn.start();
