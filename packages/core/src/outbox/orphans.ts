import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WafleetError, type Logger } from '@wafleet/protocol';
import { OrphanOutboxFile, OutboxStoreError } from './sqlite-store.js';
import type { EventRow } from './store.js';

/** Options of `adoptOrphans`: a live instance takes over the outbox files of instances gone for good. */
export interface AdoptOrphansOptions {
  /** The directory the instances of this host or volume share, one `<instanceId>.sqlite` each. @default dirname(store) */
  dir?: string;
  /**
   * A file unwritten (itself and its `-wal`) for this long, whose lock no live process holds, is adopted. Longer
   * than any planned downtime of an instance that comes back under the same file name. @default 600_000 (10 min)
   */
  idleMs?: number;
  /** How often the directory is scanned. @default 60_000 */
  intervalMs?: number;
}

/** What one adoption moved from an orphaned file into this outbox. */
export interface AdoptedOutbox {
  /** The orphaned file. */
  file: string;
  /** Undelivered events, now pending here with their original id and body. */
  pending: number;
  /** Dead letters, now dead letters here (replayable). */
  dead: number;
  /** Events left in the file because their target is not on this outbox's endpoint origin. */
  left: number;
}

/** Last write of an outbox file (its own mtime and its WAL's), undefined when the file is gone. */
function lastWriteMs(file: string): number | undefined {
  try {
    let last = statSync(file).mtimeMs;
    try {
      last = Math.max(last, statSync(`${file}-wal`).mtimeMs);
    } catch {
      // no WAL: the file was closed cleanly
    }
    return last;
  } catch {
    return undefined;
  }
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Scans a directory of outbox files for orphans and moves their events into this outbox's store: copied (first
 * commit), then deleted from the orphan (second commit), with the orphan's exclusive lock held throughout. A
 * crash between the commits leaves the events in both files: sent twice with the same id, never lost.
 */
export class OrphanScanner {
  /** Files found with nothing to move, by their last write then: opened again only once written again. */
  readonly #settled = new Map<string, number | undefined>();

  constructor(
    private readonly o: {
      dir: string;
      /** This outbox's own file, never adopted. */
      ownFile: string;
      idleMs: number;
      /** Only events to this origin move: this outbox's headers and signatures go nowhere else. */
      origin: string;
      /** Adds the events to this outbox's store (durably) and returns how many were new. */
      adopt: (events: EventRow[]) => Promise<number>;
      onError: (err: Error) => void;
      log: Logger;
    },
  ) {}

  /** One pass over the directory; returns the files that had events to move. */
  async scan(): Promise<AdoptedOutbox[]> {
    const adopted: AdoptedOutbox[] = [];
    for (const name of readdirSync(this.o.dir)) {
      const file = join(this.o.dir, name);
      if (!name.endsWith('.sqlite') || resolve(file) === this.o.ownFile) continue;
      const last = lastWriteMs(file);
      if (last === undefined || Date.now() - last < this.o.idleMs || this.#settled.get(file) === last) continue;
      try {
        const result = await this.#adopt(file);
        if (result && result.pending + result.dead > 0) adopted.push(result);
      } catch (err) {
        // A corrupt or unreadable orphan is reported once, until it is written again.
        this.#settled.set(file, lastWriteMs(file));
        const message = `Cannot adopt the orphaned outbox at ${file}: ${(err as Error).message}`;
        this.o.onError(err instanceof WafleetError ? err : new OutboxStoreError(message, { cause: err }));
      }
    }
    return adopted;
  }

  async #adopt(file: string): Promise<AdoptedOutbox | undefined> {
    const orphan = OrphanOutboxFile.open(file);
    if (orphan === 'busy') return undefined; // its owner is alive (or another instance is adopting it right now)
    let result: AdoptedOutbox | undefined;
    if (orphan !== 'foreign') {
      try {
        const events = orphan.movable();
        const moving = events.filter((e) => originOf(e.target) === this.o.origin);
        if (moving.length > 0) {
          await this.o.adopt(moving);
          orphan.remove(moving.map((e) => e.id));
        }
        const pending = moving.filter((e) => e.state === 'pending').length;
        result = { file, pending, dead: moving.length - pending, left: events.length - moving.length };
      } finally {
        orphan.close();
      }
    }
    if (result && result.left > 0) {
      this.o.log.warn('orphaned outbox events left behind: their target is on another origin', { file, left: result.left });
    }
    this.#settled.set(file, lastWriteMs(file));
    return result;
  }
}
