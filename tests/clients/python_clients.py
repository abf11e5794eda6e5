"""Unmodified Python Kafka clients against a Backwaters node.

Usage: python3 python_clients.py BOOTSTRAP [REPLICATION_FACTOR]
Runs confluent-kafka (bundled librdkafka), kafka-python and aiokafka: admin, idempotent
produce with compression, and reading everything back. Exits non-zero on any mismatch.
"""
import asyncio
import sys
import time

bs = sys.argv[1]
RF = int(sys.argv[2]) if len(sys.argv) > 2 else 1
TOPIC = "py-clients"


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

admin = AdminClient({"bootstrap.servers": bs})
admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=RF, config={"retention.ms": "3600000"})])[TOPIC].result()
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

# ---- consumer groups: each client family has its own join flow -----------------------
GT = "py-groups"
admin.create_topics([NewTopic(GT, num_partitions=2, replication_factor=RF)])[GT].result()
p.produce(GT, value=b"g0", partition=0)
p.produce(GT, value=b"g1", partition=1)
check(p.flush(15) == 0, "produce to the group topic")

t0 = time.time()
kg = KafkaConsumer(GT, bootstrap_servers=bs, group_id="py-kafka-python", auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10000)
first = next(iter(kg))
took = time.time() - t0
print("kafka-python group member: first record after %.2f s" % took)
check(took < 5, "kafka-python joins a group and receives a record in under 5 s")
kg.commit()
kg.close()
kc = KafkaConsumer(bootstrap_servers=bs, group_id="py-kafka-python")
committed = kc.committed(KTP(GT, first.partition))
kc.close()
check(committed == first.offset + 1, "kafka-python commit read back (%s)" % committed)


async def aio_group():
    t0 = time.time()
    co = AIOKafkaConsumer(GT, bootstrap_servers=bs, group_id="py-aiokafka", auto_offset_reset="earliest", enable_auto_commit=False)
    await co.start()
    m = await asyncio.wait_for(co.getone(), 10)
    took = time.time() - t0
    await co.commit()
    got = await co.committed(ATP(GT, m.partition))
    await co.stop()
    return took, got == m.offset + 1


took, ok = asyncio.run(aio_group())
print("aiokafka group member: first record after %.2f s" % took)
check(took < 5 and ok, "aiokafka joins a group, receives a record in under 5 s and commits")

# KIP-848: librdkafka's consumer group protocol (the coordinator assigns).
t0 = time.time()
cc = Consumer({"bootstrap.servers": bs, "group.id": "py-kip848", "group.protocol": "consumer", "auto.offset.reset": "earliest", "enable.auto.commit": False})
cc.subscribe([GT])
m = None
while time.time() - t0 < 20:
    m = cc.poll(0.5)
    if m is not None and m.error() is None:
        break
took = time.time() - t0
check(m is not None and m.error() is None, "confluent-kafka group.protocol=consumer receives a record (%.2f s)" % took)
cc.commit(message=m, asynchronous=False)
got = cc.committed([TopicPartition(GT, m.partition())], timeout=10)[0].offset
check(got == m.offset() + 1, "confluent-kafka commit with its member epoch (committed %s)" % got)
d = admin.describe_consumer_groups(["py-kip848"])["py-kip848"].result()
check(str(d.type).endswith("CONSUMER") and len(d.members) == 1 and str(d.state).endswith("STABLE"), "confluent-kafka describe_consumer_groups of a consumer-protocol group (%s, %s, %d members)" % (d.type, d.state, len(d.members)))
assigned = {(tp.topic, tp.partition) for tp in d.members[0].assignment.topic_partitions}
check(assigned == {(GT, 0), (GT, 1)}, "its member owns both partitions (%s)" % sorted(assigned))
cc.close()

groups = {g.group_id for g in admin.list_consumer_groups().result().valid}
check({"py-kafka-python", "py-aiokafka"} <= groups, "confluent-kafka list_consumer_groups (%s)" % sorted(groups))
d = admin.describe_consumer_groups(["py-kafka-python"])["py-kafka-python"].result()
check(str(d.state).endswith("EMPTY"), "confluent-kafka describe_consumer_groups (%s)" % d.state)

from kafka import KafkaAdminClient
ka = KafkaAdminClient(bootstrap_servers=bs)
dirs = ka.describe_log_dirs(topic_partitions=[TOPIC])
sizes = {}
for broker in dirs if isinstance(dirs, list) else [dirs]:
    for d in (broker.get("log_dirs") or broker.get("results") or []) if isinstance(broker, dict) else []:
        for t in d.get("topics", []):
            for part in t.get("partitions", []):
                sizes[(t.get("name"), part.get("partition_index"))] = sizes.get((t.get("name"), part.get("partition_index")), 0) + part.get("partition_size", 0)
if not sizes:
    print("describe_log_dirs answer:", dirs)
check(len(sizes) == 4 and sum(v > 0 for v in sizes.values()) >= 3, "kafka-python describe_log_dirs (%d partitions, %d bytes)" % (len(sizes), sum(sizes.values())))
q = ka.describe_metadata_quorum()["topics"][0]["partitions"][0]
check(q["error"] is None and q["leader_id"] >= 1 and q["high_watermark"] > 0 and len(q["current_voters"]) == RF, "kafka-python describe_metadata_quorum (leader %s, hw %s)" % (q["leader_id"], q["high_watermark"]))
prods = ka.describe_producers([KTP(TOPIC, i) for i in range(3)])
ids = {a.producer_id for state in prods.values() for a in state.active_producers}
check(len(ids) >= 1, "kafka-python describe_producers (%d idempotent producer ids)" % len(ids))
from confluent_kafka import TopicCollection
desc = admin.describe_topics(TopicCollection([TOPIC]))[TOPIC].result()
check(len(desc.partitions) == 4 and all(p.leader is not None for p in desc.partitions), "confluent-kafka describe_topics (DescribeTopicPartitions)")
page = ka.describe_topic_partitions([TOPIC], response_partition_limit=3)
cursor = page.get("next_cursor")
check(len(page["topics"][0]["partitions"]) == 3 and cursor is not None and cursor["partition_index"] == 3, "kafka-python describe_topic_partitions pages (cursor %s)" % cursor)
check(ka.list_partition_reassignments() == {}, "kafka-python list_partition_reassignments (none: replicas never move)")
ka.close()

admin.delete_topics([TOPIC])[TOPIC].result()
check(TOPIC not in admin.list_topics(timeout=5).topics, "confluent-kafka delete_topics")
print("all python clients passed")
