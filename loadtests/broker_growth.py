"""How the embedded broker (tansu 0.6, memory storage) slows down as a partition fills up.

tansu answers every fetch that finds new data by listing all the record batches the partition holds, so a
hop's cost grows with the batches already stored and nothing ever removes them (no retention, no
delete_records). This fills one partition to increasing levels with single-record batches (what a
low-rate producer writes) and, at each level, relays 20 messages/s produce -> consume with the stack's
client settings (shared.bus), recording hop latency and the broker's CPU. It stops at the first level
where the hop p50 passes a second or nothing arrives.

    .venv/bin/python loadtests/broker_growth.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer as BatchPerRecordProducer

from shared.bus import Consumer, Producer, ensure_topics
from shared.settings import KafkaSettings
from shared.stack.components import tansu_argv
from shared.stack.config import HOST
from shared.stack.processes import Probe, spawn, wait_healthy
from shared.testing import free_port

RESULTS = Path(__file__).resolve().parent / "results" / "broker_growth.json"
RATE = 20.0
COLLAPSED_P50_MS = 1000.0
SENT_AT = "sent-at"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Hops:
    """A consumer thread that records produce -> consume latency of the messages carrying SENT_AT."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.latencies_ms: list[float] = []
        self._consumer = Consumer(settings, "growth", [topic], "growth")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for record in self._consumer.poll_batch(100, 0.05):
                if SENT_AT in record.headers:
                    self.latencies_ms.append((time.time() - float(record.headers[SENT_AT])) * 1000)
                self._consumer.processed(record)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def measure(levels: list[int], seconds: float) -> list[dict]:
    port = free_port()
    broker = spawn("tansu", tansu_argv(port), Path(tempfile.mkdtemp(prefix="orate-growth-")))
    try:
        wait_healthy(broker, Probe("tcp", HOST, port).check, timeout_s=20)
        settings = KafkaSettings(
            bootstrap_servers=f"{HOST}:{port}",
            topic_prefix="growth",
            partitions=1,
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
        )
        topic = "growth.hops"
        ensure_topics(settings, [topic])
        hops = Hops(settings, topic)
        producer = Producer(settings, "growth-hops")
        # linger 0 and one message per batch: each filler record is a batch object of its own.
        filler = BatchPerRecordProducer(
            {"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 0, "batch.num.messages": 1}
        )
        # Warm up: the group join and the first fetches, so the first level measures hops only.
        deadline, stored = time.monotonic() + 30, 0
        while not hops.latencies_ms and time.monotonic() < deadline:
            producer.send(topic, "hop", b"y", {SENT_AT: repr(time.time())})
            producer.flush()
            stored += 1
            time.sleep(0.2)
        rows = []
        for level in levels:
            while stored < level:  # the measured hops count too: each was flushed alone
                filler.produce(topic, b"x" * 100, key=b"filler")
                stored += 1
                if stored % 500 == 0:
                    filler.flush()
            filler.flush()
            time.sleep(2)  # the consumer catches up with the filler records
            hops.latencies_ms.clear()
            cpu_before, start = cpu_seconds(broker.pid), time.monotonic()
            sent = 0
            while time.monotonic() - start < seconds:
                producer.send(topic, "hop", b"y" * 100, {SENT_AT: repr(time.time())})
                producer.flush()
                sent += 1
                stored += 1
                time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
            time.sleep(1)  # stragglers
            elapsed = time.monotonic() - start
            got = list(hops.latencies_ms)
            row = {
                "batches_stored": stored,
                "sent": sent,
                "received": len(got),
                "hop_p50_ms": round(float(np.percentile(got, 50)), 1) if got else None,
                "hop_p99_ms": round(float(np.percentile(got, 99)), 1) if got else None,
                "broker_cpu_percent": round((cpu_seconds(broker.pid) - cpu_before) / elapsed * 100, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
            if not got or row["hop_p50_ms"] > COLLAPSED_P50_MS:
                break
        hops.close()
        producer.close()
        return rows
    finally:
        broker.stop(grace_s=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="0,1000,2000,4000,6000,8000,10000,12000,16000,20000")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per level")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    rows = measure(levels, args.seconds)
    result = {
        "benchmark": "embedded broker hop latency vs record batches stored in the partition",
        "command": f"python loadtests/broker_growth.py --levels {args.levels} --seconds {args.seconds:g}",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "broker": "tansu 0.6.0 (memory storage)",
            "kafka_client": "confluent-kafka (librdkafka)",
        },
        "rate_messages_per_s": RATE,
        "levels": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'batches stored':>14} {'hop p50/p99 ms':>16} {'broker CPU':>10}")
    for row in rows:
        p50, p99 = row["hop_p50_ms"], row["hop_p99_ms"]
        hop = f"{p50}/{p99}" if p50 is not None else f"none of {row['sent']} arrived"
        print(f"{row['batches_stored']:>14} {hop:>16} {row['broker_cpu_percent']:>9.0f}%")


if __name__ == "__main__":
    main()
