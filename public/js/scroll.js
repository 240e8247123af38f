// @ts-check
// Keeps the log pinned to the newest message while the reader is at the
// bottom, and leaves them alone when they scrolled up to read: new messages
// then raise a "new messages" button instead of yanking the view down.

/** Within this many pixels of the end counts as "at the bottom". */
const SLACK_PX = 48;

export class StickyScroll {
  #stuck = true;
  #unread = 0;
  #box;
  #button;

  /**
   * @param {HTMLElement} box  the scrolling element
   * @param {HTMLButtonElement} button  the "new messages" button
   */
  constructor(box, button) {
    this.#box = box;
    this.#button = button;
    box.addEventListener(
      "scroll",
      () => {
        this.#stuck = this.#atBottom();
        if (this.#stuck) this.#setUnread(0);
      },
      { passive: true },
    );
    button.addEventListener("click", () => {
      this.toBottom();
      // The button disappears; keep keyboard focus somewhere useful.
      document.getElementById("message")?.focus();
    });
    // The composer growing, the keyboard opening on a phone, a resize: stay pinned.
    new ResizeObserver(() => {
      if (this.#stuck) this.#box.scrollTop = this.#box.scrollHeight;
    }).observe(box);
  }

  #atBottom() {
    const b = this.#box;
    return b.scrollHeight - b.scrollTop - b.clientHeight <= SLACK_PX;
  }

  /** @param {number} n */
  #setUnread(n) {
    this.#unread = n;
    this.#button.hidden = n === 0;
    this.#button.textContent = n === 1 ? "1 new message ↓" : `${n} new messages ↓`;
  }

  /**
   * Runs a DOM change to the log and then follows it if the reader was at
   * the bottom; otherwise counts `added` as unread.
   * @param {() => void} change
   * @param {number} added  messages (not system lines) the change adds
   */
  append(change, added) {
    const stick = this.#stuck;
    change();
    if (stick) this.#box.scrollTop = this.#box.scrollHeight;
    else if (added > 0) this.#setUnread(this.#unread + added);
  }

  toBottom() {
    this.#stuck = true;
    this.#box.scrollTop = this.#box.scrollHeight;
    this.#setUnread(0);
  }
}
