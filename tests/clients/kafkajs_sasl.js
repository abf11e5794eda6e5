// kafkajs with SASL (SaslHandshake v1 + SaslAuthenticate) against a Backwaters cluster.
// Usage: node kafkajs_sasl.js BOOTSTRAP USER PASSWORD
const { Kafka, logLevel } = require('kafkajs');
const [bootstrap, user, password] = process.argv.slice(2);
const TOPIC = 'kafkajs-sasl';
const client = (mechanism, pw, retries = 5) => new Kafka({ clientId: 'kjs-sasl', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING,
  sasl: { mechanism, username: user, password: pw }, retry: { retries } });

function check(cond, what) {
  if (!cond) { console.log('FAIL: ' + what); process.exit(1); }
  console.log('ok: ' + what);
}

(async () => {
  const admin = client('scram-sha-512', password).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true });
  for (const mechanism of ['scram-sha-256', 'scram-sha-512', 'plain']) {
    const kafka = client(mechanism, password);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 50 }, (_, i) => ({ value: mechanism + i })) });
    await producer.disconnect();
    check(true, 'kafkajs produces with ' + mechanism);
  }
  const offsets = await admin.fetchTopicOffsets(TOPIC);
  const total = offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
  check(total === 150, 'kafkajs reads back the offsets of 150 records (' + total + ')');
  await admin.disconnect();
  let refused = '';
  try {
    const bad = client('scram-sha-256', password + '-wrong', 0).admin();
    await bad.connect();
    await bad.listTopics();
  } catch (e) {
    refused = e.name + ': ' + e.message;
  }
  check(/SASL|[Aa]uthentication/.test(refused), 'kafkajs with a wrong password is refused (' + refused + ')');
  console.log('kafkajs sasl passed');
})().catch((e) => { console.log('FAIL: ' + e.stack); process.exit(1); });
