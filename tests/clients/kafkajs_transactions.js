// kafkajs transactions: a committed and an aborted transaction over three partitions,
// sendOffsets (consume-transform-produce), and a consumer with readUncommitted: false
// (kafkajs' read_committed) that sees only what was committed.
// Usage: node kafkajs_transactions.js BOOTSTRAP
const { Kafka, logLevel } = require('kafkajs');
const bootstrap = process.argv[2].split(',');
const kafka = new Kafka({ clientId: 'kjs-tx', brokers: bootstrap, logLevel: logLevel.NOTHING });
const run = Math.random().toString(16).slice(2, 10);
const TOPIC = 'kjs-tx-' + run;

function check(cond, what) {
  if (!cond) { console.log('FAIL: ' + what); process.exit(1); }
  console.log('ok: ' + what);
}

async function readAll(readUncommitted, want) {
  const consumer = kafka.consumer({ groupId: 'kjs-tx-read-' + readUncommitted + '-' + run, readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const got = [];
  await consumer.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const deadline = Date.now() + 20000;
  while (got.length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 1500));
  await consumer.disconnect();
  return got;
}

(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] });
  await admin.disconnect();
  const producer = kafka.producer({ transactionalId: 'kjs-' + run, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const committed = await producer.transaction();
  await committed.send({ topic: TOPIC, messages: Array.from({ length: 12 }, (_, i) => ({ value: 'kjs-commit-' + i, partition: i % 3 })) });
  await committed.sendOffsets({ consumerGroupId: 'kjs-tx-group-' + run, topics: [{ topic: TOPIC, partitions: [{ partition: 0, offset: '4' }] }] });
  await committed.commit();
  const aborted = await producer.transaction();
  await aborted.send({ topic: TOPIC, messages: Array.from({ length: 12 }, (_, i) => ({ value: 'kjs-abort-' + i, partition: i % 3 })) });
  await aborted.abort();
  await producer.disconnect();
  // The offsets count once the commit marker reaches the group's partition (just after the
  // commit returns): ask until they show, as Kafka's own tools would.
  const a = kafka.admin();
  await a.connect();
  let p0;
  for (let i = 0; i < 50 && !(p0 && p0.offset === '4'); i++) {
    const o = await a.fetchOffsets({ groupId: 'kjs-tx-group-' + run, topics: [TOPIC] });
    p0 = o[0].partitions.find((p) => p.partition === 0);
    if (!(p0 && p0.offset === '4')) await new Promise((r) => setTimeout(r, 100));
  }
  await a.disconnect();
  check(p0 && p0.offset === '4', 'kafkajs sendOffsets in a committed transaction: offset ' + (p0 && p0.offset));
  const readCommitted = await readAll(false, 12);
  check(readCommitted.length === 12 && readCommitted.every((v) => v.startsWith('kjs-commit-')), 'kafkajs read_committed sees the 12 committed records only (' + readCommitted.length + ')');
  const readAllRecords = await readAll(true, 24);
  check(readAllRecords.length === 24, 'kafkajs read_uncommitted sees the aborted ones too (' + readAllRecords.length + ')');
  console.log('kafkajs transactions passed');
  process.exit(0);
})().catch((e) => { console.log('FAIL: ' + e.stack); process.exit(1); });
