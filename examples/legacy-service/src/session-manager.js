// One whatsapp-web.js Client per session, LocalAuth under the shared SESSION_STORAGE_PATH. Which instance runs a
// session, its restarts, its adoption after a crash and its metadata are wafleet's (see server.js).
const { Client, LocalAuth } = require(process.env.WWEBJS_MODULE || 'whatsapp-web.js');

const STATUS = { qr_scanning: 'qr_scanning', connected: 'connected', disconnected: 'disconnected' };

class SessionManager {
  constructor({ storagePath, notifier, logger, chromium }) {
    this.storagePath = storagePath;
    this.notifier = notifier;
    this.logger = logger;
    this.chromium = chromium;
    this.sessions = new Map(); // sessionId -> { client, status, qr, meta }
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

  status(sessionId) {
    const s = this.sessions.get(sessionId);
    return s ? { session_id: sessionId, status: s.status, ...s.meta } : undefined;
  }
}

module.exports = { SessionManager, STATUS };
