import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A simulated whatsapp-web.js, for hosts that are tested or demonstrated without WhatsApp: `require` it where the
 * host requires `whatsapp-web.js` (e.g. `require(process.env.WWEBJS_MODULE || 'whatsapp-web.js')`). It keeps the
 * parts of the real surface a service uses: `new Client({ authStrategy: new LocalAuth({ clientId, dataPath }) })`,
 * `initialize()`, the `qr`, `authenticated`, `ready` and `disconnected` events, `getState()`, `sendMessage()`,
 * `destroy()`, `logout()` and `info.wid`.
 *
 * The login lives where LocalAuth keeps it: `<dataPath>/session-<clientId>/`. A client whose folder holds a
 * linked login restores it (authenticated, then ready) on any host that shares the folder; otherwise it shows QR
 * codes until `linkSimSession(dataPath, clientId)` links one (what a phone scanning the QR does). Like Chromium, a
 * client refuses a profile that another live process holds (`SingletonLock`), so two copies of one session on one
 * host fail the way real ones do.
 */

const ID = /^[-_\w]+$/;
const QR_INTERVAL_MS = Number(process.env.WAFLEET_SIM_QR_INTERVAL_MS ?? 2000);
const READY_DELAY_MS = Number(process.env.WAFLEET_SIM_READY_DELAY_MS ?? 50);

/** The login folder LocalAuth uses for `clientId`. */
export function simProfileDir(dataPath: string, clientId: string): string {
  return path.join(path.resolve(dataPath), `session-${clientId}`);
}

/** Links a session as a phone scanning its QR code would: its next (or waiting) client becomes ready. */
export function linkSimSession(dataPath: string, clientId: string, phone = '5511900000000'): void {
  const dir = simProfileDir(dataPath, clientId);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'linked.json'), JSON.stringify({ phone }));
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** LocalAuth's constructor contract: the same clientId check and the same folder. */
export class LocalAuth {
  readonly clientId: string | undefined;
  readonly dataPath: string;

  constructor({ clientId, dataPath }: { clientId?: string; dataPath?: string } = {}) {
    if (clientId && !ID.test(clientId))
      throw new Error('Invalid clientId. Only alphanumeric characters, underscores and hyphens are allowed.');
    this.clientId = clientId;
    this.dataPath = path.resolve(dataPath ?? './.wwebjs_auth/');
  }
}

/** The simulated `Client`. */
export class Client extends EventEmitter {
  readonly options: { authStrategy: LocalAuth; takeoverOnConflict?: boolean };
  info: { wid: { user: string; _serialized: string } } | undefined;
  #state: 'CONNECTED' | null = null;
  #timers = new Set<NodeJS.Timeout>();
  #destroyed = false;
  #sent = 0;

  constructor(options: { authStrategy?: LocalAuth; takeoverOnConflict?: boolean } = {}) {
    super();
    this.options = { ...options, authStrategy: options.authStrategy ?? new LocalAuth() };
  }

  get #dir(): string {
    const auth = this.options.authStrategy;
    return auth.clientId ? simProfileDir(auth.dataPath, auth.clientId) : path.join(auth.dataPath, 'session');
  }

  async initialize(): Promise<void> {
    const dir = this.#dir;
    mkdirSync(dir, { recursive: true });
    const lock = path.join(dir, 'SingletonLock');
    const holder = existsSync(lock) ? Number(readFileSync(lock, 'utf8')) : 0;
    if (holder && holder !== process.pid && alive(holder)) {
      throw new Error(`The profile appears to be in use by another Chromium process (${holder}) on this computer`);
    }
    writeFileSync(lock, String(process.pid));
    this.#poll();
  }

  /** QR codes until the session is linked, then authenticated and ready. */
  #poll(): void {
    if (this.#destroyed) return;
    const linked = path.join(this.#dir, 'linked.json');
    if (existsSync(linked)) {
      const { phone } = JSON.parse(readFileSync(linked, 'utf8')) as { phone: string };
      this.emit('authenticated');
      this.#later(READY_DELAY_MS, () => {
        this.#state = 'CONNECTED';
        this.info = { wid: { user: phone, _serialized: `${phone}@c.us` } };
        this.emit('ready');
      });
      return;
    }
    this.emit('qr', `sim-qr:${randomBytes(12).toString('base64url')}`);
    this.#later(Math.min(QR_INTERVAL_MS, 250), () => this.#pollLinked(Date.now() + QR_INTERVAL_MS));
  }

  #pollLinked(nextQrAt: number): void {
    if (existsSync(path.join(this.#dir, 'linked.json')) || Date.now() >= nextQrAt) this.#poll();
    else this.#later(100, () => this.#pollLinked(nextQrAt));
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#destroyed) fn();
    }, ms);
    this.#timers.add(t);
  }

  async getState(): Promise<'CONNECTED' | null> {
    if (this.#destroyed) throw new Error('Session closed.');
    return this.#state;
  }

  async sendMessage(chatId: string, _content: string): Promise<{ id: { _serialized: string } }> {
    if (this.#state !== 'CONNECTED') throw new Error('The session is not connected');
    return { id: { _serialized: `true_${chatId}_SIM${++this.#sent}` } };
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#state = null;
    rmSync(path.join(this.#dir, 'SingletonLock'), { force: true });
  }

  async logout(): Promise<void> {
    rmSync(this.#dir, { recursive: true, force: true });
    await this.destroy();
    this.emit('disconnected', 'LOGOUT');
  }
}
