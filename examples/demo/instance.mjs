// One wafleet instance: what a whatsapp-service host embeds. Sessions here are plain claims (no browser); a real
// host starts whatsapp-web.js on 'assigned' and destroys it on 'fenced'.
import { createFleet } from '@wafleet/core';

const [redis, instanceId, maxSessions] = process.argv.slice(2);
const fleet = createFleet({
  redis,
  namespace: 'demo',
  instanceId,
  url: `http://127.0.0.1/${instanceId}`,
  maxSessions: Number(maxSessions),
  stopSession: async () => {}, // a real host: await client.destroy()
});

const say = (msg) => process.stdout.write(`${JSON.stringify({ t: Date.now(), instance: instanceId, ...msg })}\n`);
fleet.on('assigned', ({ sessionId, epoch, reason }) => {
  say({ ev: 'start', session: sessionId, epoch, reason });
  fleet.setStatus(sessionId, 'WORKING').catch(() => {});
});
fleet.on('fenced', ({ sessionIds, reason }) => say({ ev: 'stop', sessions: sessionIds, reason }));

// The host, not the library, owns signals: drain (hand every session off) and exit.
process.on('SIGTERM', async () => {
  const result = await fleet.drain();
  say({ ev: 'drained', handedOff: result.handedOff, pending: result.pending });
  await fleet.close();
  process.exit(0);
});

await fleet.start();
say({ ev: 'ready' });
