// kafkajs (pure JavaScript client) against a Backwaters node.
// Usage: node kafkajs_client.js BOOTSTRAP
const { Kafka, logLevel } = require('kafkajs');
const bootstrap = process.argv[2];
const kafka = new Kafka({ clientId: 'kjs', brokers: [bootstrap], logLevel: logLevel.NOTHING });
const TOPIC = 'kafkajs-topic';

function check(cond, what) {
  if (!cond) { console.log('FAIL: ' + what); process.exit(1); }
  console.log('ok: ' + what);
}

(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }] });
  check((await admin.listTopics()).includes(TOPIC), 'kafkajs admin createTopics/listTopics');
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = Array.from({ length: 200 }, (_, i) => ({ key: 'k' + (i % 5), value: 'js' + i }));
  await producer.send({ topic: TOPIC, acks: -1, messages });
  await producer.disconnect();
  const offsets = await admin.fetchTopicOffsets(TOPIC);
  const total = offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
  check(total === 200, 'kafkajs idempotent produce (fetchTopicOffsets says ' + total + ')');
  await admin.deleteTopics({ topics: [TOPIC] });
  await admin.disconnect();
  console.log('kafkajs passed');
})().catch((e) => { console.log('FAIL: ' + e.stack); process.exit(1); });
