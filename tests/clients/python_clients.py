"""Unmodified Python Kafka clients against a Backwaters node.

Usage: python3 python_clients.py BOOTSTRAP
Runs confluent-kafka (bundled librdkafka), kafka-python and aiokafka: admin, idempotent
produce with compression, and reading everything back. Exits non-zero on any mismatch.
"""
import asyncio
import sys
import time

bs = sys.argv[1]
TOPIC = "py-clients"


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

admin = AdminClient({"bootstrap.servers": bs})
admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})])[TOPIC].result()
p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all", "compression.type": "zstd"})
for i in range(1000):
    p.produce(TOPIC, key=str(i % 7), value=f"ck{i}")
check(p.flush(15) == 0, "confluent-kafka idempotent zstd produce")
cfg = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, TOPIC)])
check(list(cfg.values())[0].result()["retention.ms"].value == "3600000", "confluent-kafka describe_configs")
admin.create_partitions([NewPartitions(TOPIC, 4)])[TOPIC].result()
check(len(admin.list_topics(timeout=5).topics[TOPIC].partitions) == 4, "confluent-kafka create_partitions")

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

kp = KafkaProducer(bootstrap_servers=bs, acks="all", compression_type="gzip")
for i in range(100):
    kp.send(TOPIC, key=b"k", value=b"kp%d" % i)
kp.flush()
kc = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, consumer_timeout_ms=3000)
kc.assign([KTP(TOPIC, i) for i in range(4)])
kc.seek_to_beginning()
check(sum(1 for _ in kc) == 1100, "kafka-python gzip produce + read back")

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as ATP


async def aio():
    pr = AIOKafkaProducer(bootstrap_servers=bs, enable_idempotence=True, compression_type="lz4")
    await pr.start()
    for i in range(100):
        await pr.send_and_wait(TOPIC, b"ai%d" % i, key=b"a")
    await pr.stop()
    co = AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False)
    await co.start()
    co.assign([ATP(TOPIC, i) for i in range(4)])
    await co.seek_to_beginning()
    n = 0
    while True:
        r = await co.getmany(timeout_ms=2000)
        k = sum(len(v) for v in r.values())
        if k == 0:
            break
        n += k
    await co.stop()
    return n


check(asyncio.run(aio()) == 1200, "aiokafka idempotent lz4 produce + read back")

c = Consumer({"bootstrap.servers": bs, "group.id": "py", "enable.auto.commit": False})
c.assign([TopicPartition(TOPIC, i, 0) for i in range(4)])
n, t0 = 0, time.time()
while n < 1200 and time.time() - t0 < 20:
    m = c.poll(1)
    if m is not None and not m.error():
        n += 1
c.close()
check(n == 1200, "confluent-kafka reads every record (zstd, gzip, lz4 batches)")
admin.delete_topics([TOPIC])[TOPIC].result()
check(TOPIC not in admin.list_topics(timeout=5).topics, "confluent-kafka delete_topics")
print("all python clients passed")
