"""A compacted topic read by three Python client families, unmodified: each must read exactly
one record per live key with its latest value, walking over the offset gaps and emptied
batches compaction leaves (confluent-kafka / librdkafka 2.x, kafka-python's own record
parser, aiokafka's).

Usage: compacted.py BOOTSTRAP TOPIC KEY=VALUE...
"""

import asyncio
import sys
import time

BOOTSTRAP, TOPIC = sys.argv[1], sys.argv[2]
WANT = dict(kv.split("=", 1) for kv in sys.argv[3:])


def log(*a):
    print(*a, flush=True)


def check(client, got):
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys)), f"{client}: a key read twice: {sorted(keys)}"
    assert dict(got) == WANT, f"{client}: read {dict(got)}, want {WANT}"
    log(f"{client}: {len(got)} records, one per live key")


def confluent():
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "compacted-confluent", "enable.auto.commit": False, "enable.partition.eof": True})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    c.assign([TopicPartition(TOPIC, p, 0) for p in parts])
    got, eof, end = [], set(), time.time() + 30
    while len(eof) < len(parts) and time.time() < end:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            eof.add(m.partition())
            continue
        got.append((m.key().decode(), m.value().decode()))
    c.close()
    check("confluent-kafka", got)


def kafka_python():
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(TOPIC, p) for p in c.partitions_for_topic(TOPIC)]
    c.assign(parts)
    c.seek_to_beginning()
    ends = c.end_offsets(parts)
    got = []
    for m in c:
        got.append((m.key.decode(), m.value.decode()))
        if all(c.position(tp) >= ends[tp] for tp in parts):
            break
    c.close()
    check("kafka-python", got)


async def aiokafka():
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await c.start()
    try:
        parts = [TopicPartition(TOPIC, p) for p in c.partitions_for_topic(TOPIC) or []]
        if not parts:
            await c._client.force_metadata_update()
            parts = [TopicPartition(TOPIC, p) for p in c.partitions_for_topic(TOPIC)]
        c.assign(parts)
        await c.seek_to_beginning(*parts)
        ends = await c.end_offsets(parts)
        got, end = [], time.time() + 30
        while time.time() < end:
            positions = [await c.position(tp) for tp in parts]
            if all(pos >= ends[tp] for pos, tp in zip(positions, parts)):
                break
            batch = await c.getmany(timeout_ms=500)
            for msgs in batch.values():
                got.extend((m.key.decode(), m.value.decode()) for m in msgs)
    finally:
        await c.stop()
    check("aiokafka", got)


confluent()
kafka_python()
asyncio.run(aiokafka())
log("compacted topic read by all clients")
