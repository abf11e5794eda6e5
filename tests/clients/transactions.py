"""Kafka transactions through three Python client families, unmodified:

- confluent-kafka (librdkafka 2.x): consume-transform-produce exactly once, with
  send_offsets_to_transaction; one batch aborted and redone; the output read back with
  read_committed holds every input record once; the group's committed offsets are the input's
  ends; a second producer with the same transactional.id fences the first.
- kafka-python: a transactional producer commits one transaction and aborts another; its
  read_committed consumer sees only the committed one, read_uncommitted both.
- kafka-python's admin client (kafka-transactions.sh's calls): list_transactions,
  describe_transactions, find_hanging_transactions, and abort_transaction (WriteTxnMarkers)
  ending an open transaction on a partition so read_committed readers get past it.
- aiokafka: a transactional producer (its own coordinator lookup and request versions)
  commits and aborts; aiokafka's read_committed consumer agrees.

Usage: transactions.py BOOTSTRAP
"""

import asyncio
import sys
import time
import uuid

BOOTSTRAP = sys.argv[1]
RUN = uuid.uuid4().hex[:8]


def log(*a):
    print(*a, flush=True)


def create(topic, partitions=3):
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": BOOTSTRAP})
    a.create_topics([NewTopic(topic, partitions, -1)])[topic].result(30)


def read_values(topic, isolation, want, limit=20):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "check-" + uuid.uuid4().hex, "isolation.level": isolation, "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    got = []
    end = time.time() + limit
    while time.time() < end and len(got) < want:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
    tail = time.time() + 1.5
    while time.time() < tail:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    return got


def confluent_exactly_once():
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    src, dst, group = "eos-in-" + RUN, "eos-out-" + RUN, "eos-" + RUN
    create(src)
    create(dst)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    for i in range(90):
        p.produce(src, value=("in-%d" % i).encode(), partition=i % 3)
    p.flush(30)
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.auto.commit": False})
    c.subscribe([src])
    tp = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "eos-" + RUN})
    tp.init_transactions(30)
    copied, aborted_once = 0, False
    idle = time.time() + 30
    while time.time() < idle and copied < 90:
        msgs = [m for m in c.consume(25, 1.0) if not m.error()]
        if not msgs:
            continue
        tp.begin_transaction()
        for m in msgs:
            tp.produce(dst, value=m.value().replace(b"in-", b"out-"), partition=m.partition())
        tp.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if not aborted_once:
            tp.flush(30)
            tp.abort_transaction(30)
            aborted_once = True
            # Back to the committed positions: the aborted batch is done again.
            for t in c.committed(c.assignment(), 10):
                c.seek(TopicPartition(t.topic, t.partition, max(t.offset, 0)))
            log("confluent-kafka: aborted a batch of", len(msgs))
            continue
        tp.commit_transaction(30)
        copied += len(msgs)
    committed = c.committed([TopicPartition(src, p) for p in range(3)], 10)
    c.close()
    assert copied == 90, copied
    # Each partition's committed position is past its 30 records (markers may follow them).
    assert all(t.offset >= 30 for t in committed), committed
    out = read_values(dst, "read_committed", 90)
    assert sorted(out) == sorted("out-%d" % i for i in range(90)), (len(out), len(set(out)))
    everything = read_values(dst, "read_uncommitted", 90 + 25)
    assert len(everything) > 90, "the aborted batch is in the log for read_uncommitted readers"
    # A second instance fences the first.
    tp2 = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": "eos-" + RUN})
    tp2.init_transactions(30)
    tp.begin_transaction()
    tp.produce(dst, value=b"zombie", partition=0)
    try:
        tp.commit_transaction(30)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        err = e.args[0]
        assert err.fatal() or err.txn_requires_abort(), err
        log("confluent-kafka: the old instance is fenced:", err.name())
    log("confluent-kafka exactly-once passed: 90 records copied once, offsets", [t.offset for t in committed])


def kafka_python_transactions():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = "kp-tx-" + RUN
    create(topic)
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="kp-" + RUN, enable_idempotence=True)
    p.init_transactions()
    p.begin_transaction()
    for i in range(12):
        p.send(topic, value=("kp-commit-%d" % i).encode(), partition=i % 3)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(12):
        p.send(topic, value=("kp-abort-%d" % i).encode(), partition=i % 3)
    p.flush()
    p.abort_transaction()
    p.close()

    def consume(isolation, want):
        c = KafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level=isolation, enable_auto_commit=False, consumer_timeout_ms=3000)
        c.assign([TopicPartition(topic, i) for i in range(3)])
        c.seek_to_beginning()
        got = [m.value.decode() for m in c]
        c.close()
        return got

    committed = consume("read_committed", 12)
    assert sorted(committed) == sorted("kp-commit-%d" % i for i in range(12)), committed
    everything = consume("read_uncommitted", 24)
    assert len(everything) == 24, everything
    log("kafka-python transactions passed: read_committed", len(committed), "read_uncommitted", len(everything))


def kafka_python_transaction_admin():
    from kafka import KafkaProducer, TopicPartition
    from kafka.admin import AbortTransactionSpec, KafkaAdminClient

    topic = "kp-adm-" + RUN
    create(topic, 1)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    def listing(**filters):
        # Every broker is asked; only the coordinator lists (no duplicates across brokers).
        by_broker = admin.list_transactions(**filters)
        assert sum(1 for ts in by_broker.values() if ts) <= 1, by_broker
        return [t for ts in by_broker.values() for t in ts]

    listed = {t.transactional_id: t for t in listing()}
    assert listed.get("kp-" + RUN) is not None and str(listed["kp-" + RUN].state).endswith(("CompleteAbort", "COMPLETE_ABORT")), listed
    # An open transaction: listed as Ongoing, described with its partition and start time.
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="kp-open-" + RUN, enable_idempotence=True)
    p.init_transactions()
    p.begin_transaction()
    p.send(topic, value=b"open", partition=0)
    p.flush()
    ongoing = [t for t in listing(state_filters=["Ongoing"]) if t.transactional_id == "kp-open-" + RUN]
    assert len(ongoing) == 1, listing()
    # ListTransactions v2: the whole id must match the pattern.
    by_pattern = [t.transactional_id for t in listing(transactional_id_pattern="kp-op.n-" + RUN)]
    assert by_pattern == ["kp-open-" + RUN], by_pattern
    assert listing(transactional_id_pattern="kp-open") == [], "a pattern matches whole ids only"
    try:
        listing(transactional_id_pattern="kp-(")
        raise AssertionError("a pattern that does not compile is refused")
    except AssertionError:
        raise
    except Exception as e:  # error 128, INVALID_REGULAR_EXPRESSION (kafka-python has no name for it)
        assert "128" in str(e) or "Unrecognized" in type(e).__name__, repr(e)
    d = admin.describe_transactions(["kp-open-" + RUN])["kp-open-" + RUN]
    assert str(d.state).endswith(("Ongoing", "ONGOING")) and d.transaction_start_time_ms > 0, d
    assert TopicPartition(topic, 0) in d.topic_partitions, d
    hanging = admin.find_hanging_transactions()
    assert hanging == [], hanging
    # An operator ends it on the partition (kafka-transactions abort): the last stable offset
    # moves past it.
    admin.abort_transaction(AbortTransactionSpec(TopicPartition(topic, 0), d.producer_id, d.producer_epoch, -1))
    other = KafkaProducer(bootstrap_servers=BOOTSTRAP, enable_idempotence=True)
    other.send(topic, value=b"after", partition=0).get(30)
    other.close()
    got = read_values(topic, "read_committed", 1, limit=10)
    assert got == ["after"], got
    p.close(timeout=1)
    admin.close()
    log("kafka-python transaction admin passed: listed, described, aborted by an operator")


async def aiokafka_transactions():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "aio-tx-" + RUN
    create(topic)
    p = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id="aio-" + RUN, enable_idempotence=True)
    await p.start()
    try:
        async with p.transaction():
            for i in range(9):
                await p.send(topic, value=("aio-commit-%d" % i).encode(), partition=i % 3)
        try:
            async with p.transaction():
                for i in range(9):
                    await p.send_and_wait(topic, value=("aio-abort-%d" % i).encode(), partition=i % 3)
                raise RuntimeError("abort this one")
        except RuntimeError:
            pass
    finally:
        await p.stop()
    c = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, isolation_level="read_committed", enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        c.assign([TopicPartition(topic, i) for i in range(3)])
        await c.seek_to_beginning()
        got = []
        end = time.time() + 15
        while time.time() < end:
            batch = await c.getmany(timeout_ms=500)
            for msgs in batch.values():
                got.extend(m.value.decode() for m in msgs)
            if len(got) >= 9:
                await asyncio.sleep(1)
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    got.extend(m.value.decode() for m in msgs)
                break
    finally:
        await c.stop()
    assert sorted(got) == sorted("aio-commit-%d" % i for i in range(9)), got
    log("aiokafka transactions passed:", len(got), "committed records, the aborted ones skipped")


confluent_exactly_once()
kafka_python_transactions()
kafka_python_transaction_admin()
asyncio.run(aiokafka_transactions())
log("all transaction clients passed")
