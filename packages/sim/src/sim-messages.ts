import { appendFileSync, mkdirSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CatchUpRequest, InboundMessage } from '@wafleet/core';

/**
 * The simulated WhatsApp side of inbound messages: one append-only JSON-lines file per session in a directory that
 * every simulated instance reads, so messages arrive whether or not (and wherever) the session runs. A running,
 * healthy session emits each line appended after its `ready` as a live message; what arrived before is only in its
 * history, which a catch-up reads, like whatsapp-web.js.
 */
export interface SimMessage {
  /** WhatsApp's message id. */
  id: string;
  /** The chat. */
  chat: string;
  /** Unix ms. */
  ts: number;
  body: string;
}

const fileOf = (dir: string, sessionId: string) => join(dir, `${sessionId}.jsonl`);

/** Appends one message to a session's simulated WhatsApp history (what a phone sending it does). */
export function sendSimMessage(dir: string, sessionId: string, message: SimMessage): void {
  mkdirSync(dir, { recursive: true });
  appendFileSync(fileOf(dir, sessionId), `${JSON.stringify(message)}\n`);
}

const toInbound = (m: SimMessage): InboundMessage => ({ id: m.id, chatId: m.chat, timestamp: m.ts, data: { body: m.body } });

function parseLines(text: string): SimMessage[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as SimMessage);
}

/** A session's history since the request's cursors (inclusive), as whatsapp-web.js's fetchMessages would give it. */
export async function readSimHistory(dir: string, sessionId: string, request: CatchUpRequest): Promise<InboundMessage[]> {
  let text: string;
  try {
    text = await readFile(fileOf(dir, sessionId), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  // A line being appended right now is incomplete: it is read next time.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return parseLines(complete)
    .filter((m) => m.ts >= (request.cursors.get(m.chat)?.timestamp ?? request.since))
    .map(toInbound);
}

/** Follows a session's file from its current end: each complete line appended later is handed to `onMessage`. */
export class SimMessageTail {
  #offset = -1;
  #rest = '';
  #reading = false;

  constructor(
    readonly dir: string,
    readonly sessionId: string,
  ) {}

  /** Reads what was appended since the last call (the first call only finds the end). */
  async poll(onMessage: (message: InboundMessage) => void): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      // One stat per poll; the file is opened only when it grew.
      const size = await stat(fileOf(this.dir, this.sessionId)).then(
        (st) => st.size,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return 0;
          throw err;
        },
      );
      if (this.#offset < 0) {
        this.#offset = size;
        return;
      }
      if (size <= this.#offset) return;
      const handle = await open(fileOf(this.dir, this.sessionId), 'r');
      try {
        const buf = Buffer.alloc(size - this.#offset);
        const { bytesRead } = await handle.read(buf, 0, buf.length, this.#offset);
        this.#offset += bytesRead;
        const text = this.#rest + buf.subarray(0, bytesRead).toString('utf8');
        const end = text.lastIndexOf('\n') + 1;
        this.#rest = text.slice(end);
        for (const m of parseLines(text.slice(0, end))) onMessage(toInbound(m));
      } finally {
        await handle.close();
      }
    } finally {
      this.#reading = false;
    }
  }
}
