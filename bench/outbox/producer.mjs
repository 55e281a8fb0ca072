#!/usr/bin/env node
// Child process of bench/outbox.mjs (the kill -9 scenarios); not meant to be run by hand.
//
// Enqueues webhook events as fast as it can from `loops` concurrent loops and prints each event id on its own
// line to stdout only after the enqueue resolved: for wafleet after `outbox.enqueue()` (the SQLite commit), for
// BullMQ after `queue.add()` (Redis replied). The parent SIGKILLs this process and then counts which printed
// ids never reached its receiver. The first line is `ready` once the outbox / queue is open.
//
// Config: JSON in argv[2]:
//   { system: 'wafleet' | 'bullmq', loops, sessions, url, secret,           (all)
//     store,                                                                (wafleet: the SQLite file)
//     port, queue, jobOptions }                                             (bullmq: Redis port, queue name)
//
// wafleet: the outbox lives in the producer, as it does in a WhatsApp instance, so it also delivers while it
// enqueues (concurrency 16, ratePerSecond raised). BullMQ: this process only adds jobs; the parent runs the
// Worker, as a typical deployment runs workers apart from the code that adds jobs.

import { bullEnvelope, webhookEvent } from '../lib.mjs';

const config = JSON.parse(process.argv[2]);
const INSTANCE = { id: 'wa-producer', url: 'http://wa-producer.invalid:3000' };

const eventFor = (i) => webhookEvent(i, config.sessions);

const write = (line) => process.stdout.write(`${line}\n`);

let next = 0;
let enqueueOne;

if (config.system === 'wafleet') {
  const { createOutbox } = await import('@wafleet/core');
  const outbox = createOutbox({
    store: config.store,
    endpoint: { url: config.url, secrets: [config.secret] },
    instance: { instanceId: INSTANCE.id, url: INSTANCE.url },
    concurrency: 16,
    ratePerSecond: 100_000,
  });
  outbox.on('error', (err) => process.stderr.write(`outbox error: ${err.message}\n`));
  await outbox.start();
  enqueueOne = async (i) => (await outbox.enqueue(eventFor(i))).id;
} else if (config.system === 'bullmq') {
  const { Queue } = await import('bullmq');
  const queue = new Queue(config.queue, { connection: { host: '127.0.0.1', port: config.port }, defaultJobOptions: config.jobOptions });
  queue.on('error', (err) => process.stderr.write(`queue error: ${err.message}\n`));
  await queue.waitUntilReady();
  enqueueOne = async (i) => {
    const event = eventFor(i);
    const data = bullEnvelope(event, INSTANCE);
    await queue.add(event.type, data);
    return data.id;
  };
} else {
  throw new Error(`unknown system ${config.system}`);
}

write('ready');
await Promise.all(
  Array.from({ length: config.loops }, async () => {
    for (;;) write(await enqueueOne(next++));
  }),
);
