// Tells the backend what happened to a session: a signed POST per event, fire and forget with two quick retries.
const crypto = require('node:crypto');

class WebhookNotifier {
  constructor({ url, secret, instanceUrl, logger }) {
    this.url = url;
    this.secret = secret;
    this.instanceUrl = instanceUrl;
    this.logger = logger;
  }

  async send(event, sessionId, data = {}) {
    const body = JSON.stringify({ event, session_id: sessionId, data, timestamp: new Date().toISOString() });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const signature = crypto
        .createHmac('sha256', this.secret)
        .update(timestamp + body)
        .digest('hex');
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-timestamp': timestamp,
            'x-hmac-signature': signature,
            'x-instance-url': this.instanceUrl,
          },
          body,
          signal: AbortSignal.timeout(5000),
        });
        if (res.ok) return;
        this.logger.warn('webhook rejected', { event, status: res.status });
      } catch (err) {
        this.logger.warn('webhook failed', { event, attempt, error: err.message });
      }
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
    this.logger.error('webhook dropped', { event });
  }
}

module.exports = { WebhookNotifier };
