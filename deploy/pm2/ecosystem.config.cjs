// pm2 start deploy/pm2/ecosystem.config.cjs: four wafleet instances on one host (ports 3001-3004).
// SIGTERM drains (every session handed off, its login saved, its browser closed) before the process exits: pm2 must
// wait for it. kill_timeout covers 20 sessions in the worst case (a handoff takes up to the supervisor's 15 s stop
// deadline, 4 at once); raise it with MAX_SESSIONS. Never use `pm2 reload` on all instances at once: restart them
// one by one, so the others can take the sessions.
const instances = [1, 2, 3, 4].map((n) => ({
  name: `wafleet-wa-${n}`,
  script: 'examples/whatsapp-service/server.mjs',
  cwd: '/srv/wafleet',
  exec_mode: 'fork',
  kill_timeout: 90_000,
  // Do not let pm2 send SIGINT first: the service drains on SIGTERM.
  shutdown_with_message: false,
  treekill: false,
  autorestart: true,
  restart_delay: 2000,
  env: {
    NODE_ENV: 'production',
    INSTANCE_ID: `wa-${n}`,
    PORT: String(3000 + n),
    PUBLIC_URL: `http://127.0.0.1:${3000 + n}`,
    OUTBOX_FILE: `/srv/wafleet/data/wa-${n}-outbox.sqlite`,
  },
}));

module.exports = { apps: instances };
