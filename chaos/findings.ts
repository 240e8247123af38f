// What a run found: violations of the contract (the run fails) and notes
// (worth reading, not failures). Plus the ledger every client checks its
// messages against: one stored message per id for the whole run, across
// restarts of the server, so an id that is reused is caught wherever it shows.

import type { Message } from "../src/protocol.ts";
import { describe, sameMessage } from "../tools/harness/frames.ts";

const SHOWN = 40;

export class Findings {
  readonly violations: string[] = [];
  readonly notes: string[] = [];
  private violationCount = 0;

  violation(text: string): void {
    this.violationCount++;
    if (this.violations.length < SHOWN) this.violations.push(text);
  }

  note(text: string): void {
    if (this.notes.length < SHOWN) this.notes.push(text);
  }

  get count(): number {
    return this.violationCount;
  }
}

export class Ledger {
  private readonly byId = new Map<number, Message>();
  private readonly idByNonce = new Map<string, number[]>();
  maxId = 0;

  private readonly findings: Findings;

  constructor(findings: Findings) {
    this.findings = findings;
  }

  /** Records a message seen by `who`; a second, different message under the same id is a violation. */
  record(m: Message, who: string): void {
    const known = this.byId.get(m.id);
    if (known === undefined) {
      this.byId.set(m.id, m);
      if (m.id > this.maxId) this.maxId = m.id;
      if (m.nonce !== undefined) {
        const ids = this.idByNonce.get(m.nonce) ?? [];
        ids.push(m.id);
        this.idByNonce.set(m.nonce, ids);
      }
      return;
    }
    if (!sameMessage(known, m)) {
      this.findings.violation(`id ${m.id} maps to two messages: ${describe(known)} vs ${describe(m)} (seen by ${who})`);
    }
  }

  get(id: number): Message | undefined {
    return this.byId.get(id);
  }

  idsOfNonce(nonce: string): readonly number[] {
    return this.idByNonce.get(nonce) ?? [];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Ids in 1..maxId that no client and no history read ever showed. */
  unseen(): number[] {
    const out: number[] = [];
    for (let id = 1; id <= this.maxId; id++) if (!this.byId.has(id)) out.push(id);
    return out;
  }
}
