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

  // A group member: kafkajs joins with its own flow (JoinGroup v5, MEMBER_ID_REQUIRED).
  const t0 = Date.now();
  const consumer = kafka.consumer({ groupId: 'kjs-group', sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let firstAt = 0;
  let seen = 0;
  await consumer.run({ eachMessage: async () => { seen += 1; if (!firstAt) firstAt = Date.now(); } });
  while (seen < 200 && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 50));
  console.log('kafkajs group member: first record after ' + ((firstAt - t0) / 1000) + ' s');
  check(firstAt && firstAt - t0 < 5000, 'kafkajs joins a group and receives a record in under 5 s');
  check(seen === 200, 'kafkajs group member reads all 200 records (' + seen + ')');
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: 'kjs-group', topics: [TOPIC] });
  const sum = committed[0].partitions.reduce((s, p) => s + Number(p.offset), 0);
  check(sum === 200, 'kafkajs committed offsets read back (' + sum + ')');
  const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
  check(groups.includes('kjs-group'), 'kafkajs admin listGroups');
  await admin.deleteGroups(['kjs-group']);
  check(!(await admin.listGroups()).groups.some((g) => g.groupId === 'kjs-group'), 'kafkajs admin deleteGroups');
  await admin.deleteTopics({ topics: [TOPIC] });
  await admin.disconnect();
  console.log('kafkajs passed');
})().catch((e) => { console.log('FAIL: ' + e.stack); process.exit(1); });
