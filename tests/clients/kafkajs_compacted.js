// kafkajs (its own record-batch parser) reading a compacted topic: exactly one record per
// live key with its latest value, past the offset gaps and emptied batches compaction leaves.
// Usage: node kafkajs_compacted.js BOOTSTRAP TOPIC KEY=VALUE...
const { Kafka, logLevel } = require('kafkajs');
const [bootstrap, topic, ...pairs] = process.argv.slice(2);
const want = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
const kafka = new Kafka({ clientId: 'kjs-compacted', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING });

(async () => {
  const consumer = kafka.consumer({ groupId: 'kjs-compacted-' + Date.now(), sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await consumer.run({ eachMessage: async ({ message }) => { got.push([message.key.toString(), message.value.toString()]); } });
  const t0 = Date.now();
  while (Date.now() - t0 < 30000 && got.length < Object.keys(want).length) await new Promise((r) => setTimeout(r, 100));
  // A little longer: a record beyond those wanted is one compaction should have removed.
  await new Promise((r) => setTimeout(r, 2000));
  await consumer.disconnect();
  const keys = got.map(([k]) => k);
  if (new Set(keys).size !== keys.length) { console.log('FAIL: a key read twice: ' + keys.sort()); process.exit(1); }
  const read = Object.fromEntries(got);
  const same = Object.keys(want).length === keys.length && Object.entries(want).every(([k, v]) => read[k] === v);
  if (!same) { console.log('FAIL: read ' + JSON.stringify(read) + ', want ' + JSON.stringify(want)); process.exit(1); }
  console.log('kafkajs read the compacted topic: ' + keys.length + ' records, one per live key');
})().catch((e) => { console.log('FAIL: ' + e.stack); process.exit(1); });
