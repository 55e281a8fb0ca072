// One whatsapp-web.js Client per session, LocalAuth under the shared SESSION_STORAGE_PATH.
const fs = require('node:fs');
const path = require('node:path');
const { Client, LocalAuth } = require(process.env.WWEBJS_MODULE || 'whatsapp-web.js');

const STATUS = { qr_scanning: 'qr_scanning', connected: 'connected', disconnected: 'disconnected' };

class SessionManager {
  constructor({ storagePath, notifier, logger, chromium }) {
    this.storagePath = storagePath;
    this.notifier = notifier;
    this.logger = logger;
    this.chromium = chromium;
    this.sessions = new Map(); // sessionId -> { client, status, qr, meta }
    this.registryFile = path.join(storagePath, 'sessions.json');
  }

  /** The service's own record of every session it was asked to run (workspace, account), shared by all instances. */
  readRegistry() {
    return fs.existsSync(this.registryFile) ? JSON.parse(fs.readFileSync(this.registryFile, 'utf8')) : {};
  }

  writeRegistry(sessionId, meta) {
    fs.mkdirSync(this.storagePath, { recursive: true });
    const all = this.readRegistry();
    if (meta) all[sessionId] = meta;
    else delete all[sessionId];
    fs.writeFileSync(this.registryFile, JSON.stringify(all, null, 2));
  }

  buildClient(sessionId, meta) {
    const client = new Client({
      authStrategy: new LocalAuth({ clientId: sessionId, dataPath: this.storagePath }),
      puppeteer: { headless: true, executablePath: this.chromium, args: ['--no-sandbox', '--disable-gpu'] },
    });
    const session = { client, status: STATUS.qr_scanning, qr: undefined, meta };
    this.sessions.set(sessionId, session);
    client.on('qr', (qr) => {
      session.qr = qr;
      this.notifier.send('qr_code_generated', sessionId, { ...meta, qr });
    });
    client.on('ready', () => {
      session.status = STATUS.connected;
      session.qr = undefined;
      this.notifier.send('session_ready', sessionId, { ...meta, phone_number: client.info?.wid?.user });
    });
    client.on('disconnected', (reason) => {
      session.status = STATUS.disconnected;
      this.notifier.send('session_disconnected', sessionId, { ...meta, reason });
    });
    return client;
  }

  async createSession(sessionId, meta) {
    if (this.sessions.has(sessionId)) return this.sessions.get(sessionId);
    this.writeRegistry(sessionId, meta);
    const client = this.buildClient(sessionId, meta);
    client.initialize().catch((err) => this.logger.error('initialize failed', { sessionId, error: err.message }));
    return this.sessions.get(sessionId);
  }

  // AutoReconnect: a dropped session comes back by itself, unless the phone logged it out.
  scheduleReconnect(sessionId, reason) {
    if (reason === 'LOGOUT') return this.removeSession(sessionId);
    setTimeout(() => {
      const meta = this.sessions.get(sessionId)?.meta;
      this.sessions.delete(sessionId);
      if (meta) this.createSession(sessionId, meta);
    }, 5000).unref();
  }

  async removeSession(sessionId) {
    const session = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    this.writeRegistry(sessionId, undefined);
    await session?.client.destroy().catch(() => {});
  }

  // Boot restore: every session the service knows comes back on this instance.
  async restoreSessions() {
    for (const [sessionId, meta] of Object.entries(this.readRegistry())) {
      this.logger.info('restoring session', { sessionId });
      await this.createSession(sessionId, meta);
    }
  }

  status(sessionId) {
    const s = this.sessions.get(sessionId);
    return s ? { session_id: sessionId, status: s.status, ...s.meta } : undefined;
  }
}

module.exports = { SessionManager, STATUS };
