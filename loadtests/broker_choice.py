"""The embedded broker, measured: tansu 0.6 (memory storage, the old default) against noida-db 0.2.3 (the
new one), with the stack's client settings (shared.bus, shared.settings.KafkaSettings).

Per broker, on a fresh broker and data directory each round, rounds interleaved (tansu, noida, tansu,
noida, ...) so that load from other processes on the machine falls on both alike:
  - start time (spawn -> first metadata answer) and RSS idle;
  - broker CPU with the stack's idle polling consumers (the engine's and one per runner: none other
    consumes Kafka, the API follows events through Redis), and for noida also without idle pausing
    (idle_fetch_interval_ms=0), which is why the stack's consumers pause;
  - hop latency (produce -> consume, one record at a time at a steady rate) at 20 and 100 records/s,
    with broker CPU at 100/s;
  - acknowledged records lost when the broker is SIGKILLed while a producer sends 100 records/s (and
    restarted on the same data), and after a graceful stop (SIGTERM);
  - hop latency at 20 records/s once the partition holds 20,000+ single-record batches (tansu lists
    every stored batch on each fetch: the fill stall).
Every measurement records how busy the machine's cores were meanwhile.

    .venv/bin/python loadtests/broker_choice.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer
from confluent_kafka import TopicPartition

from shared.bus import Consumer, Producer, ensure_topics
from shared.settings import KafkaSettings
from shared.stack.components import (
    BROKER_IDLE_FETCH_INTERVAL_MS,
    broker_argv,
    load_deployment_list,
    tansu_argv,
)
from shared.stack.config import HOST
from shared.stack.processes import ManagedProcess, Probe, spawn, wait_healthy
from shared.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "loadtests" / "results" / "broker_choice.json"
SENT_AT = "sent-at"
FILL_BATCHES = 20_000


BROKERS: dict[str, Callable[[int, Path], list[str]]] = {
    "tansu": lambda port, data: tansu_argv(port),
    "noida": broker_argv,
}
# tansu holds an empty fetch for fetch.wait.max.ms, so its consumers never needed pausing; the old stack
# ran them unpaused.
PAUSE_MS = {"tansu": 0, "noida": BROKER_IDLE_FETCH_INTERVAL_MS}


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores together, from /proc/stat."""
    with open("/proc/stat") as stat:
        jiffies = [int(v) for v in stat.readline().split()[1:9]]
    return sum(jiffies) - jiffies[3] - jiffies[4], sum(jiffies)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return round(int(line.split()[1]) / 1024, 1)


class Meter:
    """Broker CPU (% of one core), this process's CPU and the machine's busy share over a stretch."""

    def __init__(self, broker_pid: int) -> None:
        self._pid = broker_pid
        self._start = (time.monotonic(), cpu_seconds(broker_pid), cpu_seconds(os.getpid()), machine_cpu())

    def read(self) -> dict[str, float]:
        wall0, broker0, own0, machine0 = self._start
        wall, machine = time.monotonic() - wall0, machine_cpu()
        return {
            "broker_cpu_pct": round(100 * (cpu_seconds(self._pid) - broker0) / wall, 1),
            "clients_cpu_pct": round(100 * (cpu_seconds(os.getpid()) - own0) / wall, 1),
            "machine_busy_pct": round(100 * (machine[0] - machine0[0]) / max(machine[1] - machine0[1], 1), 1),
        }


class Broker:
    def __init__(self, kind: str, folder: Path) -> None:
        self.kind, self.folder, self.port = kind, folder, free_port()
        self.data = folder / "data"
        self.process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> float:
        """Seconds from spawn to the first answered metadata request."""
        began = time.monotonic()
        self.process = spawn(self.kind, BROKERS[self.kind](self.port, self.data), self.folder)
        wait_healthy(self.process, Probe("tcp", HOST, self.port).check, timeout_s=20, interval_s=0.005)
        RawConsumer({"bootstrap.servers": self.bootstrap, "group.id": "probe"}).list_topics(timeout=10)
        return round(time.monotonic() - began, 3)

    def kill(self) -> None:
        assert self.process is not None and self.process.popen is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=10)

    def restart(self) -> None:
        # A port just released can still be held for a moment (noida-db): retry the start.
        deadline = time.monotonic() + 20
        while True:
            try:
                self.start()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise


def settings(broker: Broker, prefix: str, pause_ms: int, partitions: int = 1) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=prefix,
        partitions=partitions,
        idle_fetch_interval_ms=pause_ms,
    )


def idle_consumers(broker: Broker, count: int, pause_ms: int, seconds: float) -> dict[str, float]:
    """Broker CPU while count consumers (6 partitions each, as the stack's topics) poll empty topics."""
    kafka = settings(broker, f"idle{pause_ms}", pause_ms, partitions=6)
    topics = [f"{kafka.topic_prefix}.work.{i}" for i in range(count)]
    ensure_topics(kafka, topics)
    consumers = [Consumer(kafka, f"idle-{topic}", [topic], f"idle-{i}") for i, topic in enumerate(topics)]
    stop = threading.Event()

    def run(consumer: Consumer) -> None:
        while not stop.is_set():
            consumer.poll_batch(100, 0.1)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    time.sleep(3)  # group joins; measured from here
    meter = Meter(broker.process.pid)
    time.sleep(seconds)
    result = meter.read()
    stop.set()
    for thread in threads:
        thread.join(5)
    for consumer in consumers:
        consumer.close()
    return result


class Hops:
    """A consumer thread recording produce -> consume latency of records carrying SENT_AT."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.latencies_ms: list[float] = []
        self._consumer = Consumer(kafka, f"hops-{topic}", [topic], "hops")
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


def hops(broker: Broker, topic: str, pause_ms: int, rate: float, seconds: float) -> dict[str, float]:
    """Relay records at rate/s through one partition; p50/p99 hop latency and the CPU meanwhile."""
    kafka = settings(broker, topic.split(".")[0], pause_ms)
    ensure_topics(kafka, [topic])
    hop = Hops(kafka, topic)
    producer = Producer(kafka, "hops")
    deadline = time.monotonic() + 30
    while not hop.latencies_ms and time.monotonic() < deadline:  # warm up: the group join
        producer.send(topic, "warm", b"w", {SENT_AT: repr(time.time())})
        producer.flush()
        time.sleep(0.1)
    hop.latencies_ms.clear()
    meter, start, sent = Meter(broker.process.pid), time.monotonic(), 0
    while time.monotonic() - start < seconds:
        producer.send(topic, f"k{sent}", b"x" * 200, {SENT_AT: repr(time.time())})
        producer.poll(0)
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    producer.flush()
    usage = meter.read()
    wait_until = time.monotonic() + 3
    while len(hop.latencies_ms) < sent and time.monotonic() < wait_until:
        time.sleep(0.05)
    got = list(hop.latencies_ms)
    hop.close()
    producer.close()
    return {
        "rate": rate,
        "sent": sent,
        "received": len(got),
        "p50_ms": round(float(np.percentile(got, 50)), 2) if got else None,
        "p99_ms": round(float(np.percentile(got, 99)), 2) if got else None,
        **usage,
    }


def count_records(broker: Broker, topic: str) -> int:
    consumer = RawConsumer({"bootstrap.servers": broker.bootstrap, "group.id": "count"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in metadata.partitions]
        return sum(high - low for low, high in ends)
    finally:
        consumer.close()


def loss_under_kill(broker: Broker, kills: int = 3) -> dict:
    """kill_once() kills times, then the acknowledged records kept across a graceful stop."""
    killed = [kill_once(broker, f"loss.kill{i}") for i in range(kills)]
    topic = "loss.stop"
    ensure_topics(settings(broker, "loss", 0), [topic])
    graceful = RawProducer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1})
    for i in range(500):
        graceful.produce(topic, b"y" * 200, key=str(i).encode())
    graceful.flush(10)
    broker.stop()
    broker.restart()
    return {
        "sigkill": {key: sum(k[key] for k in killed) for key in ("acked", "kept", "lost")},
        "sigkill_lost_s_at_100_per_s": [k["lost_s_at_rate"] for k in killed],
        "sigterm": {"acked": 500, "kept": count_records(broker, topic)},
    }


def kill_once(broker: Broker, topic: str, rate: float = 100.0, seconds: float = 3.0) -> dict[str, float]:
    """Produce at rate/s with acks; SIGKILL the broker mid-stream; restart it on the same data and count
    the acknowledged records still there."""
    kafka = settings(broker, "loss", 0)
    ensure_topics(kafka, [topic])
    producer = RawProducer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                            "linger.ms": 1, "message.timeout.ms": 2000})  # fmt: skip
    acked = [0]

    def delivered(error: object, _message: object) -> None:
        if error is None:
            acked[0] += 1

    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        producer.produce(topic, b"x" * 200, key=str(sent).encode(), on_delivery=delivered)
        producer.poll(0)
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    producer.poll(0.05)  # the acks of what was just sent
    acked_at_kill = acked[0]
    broker.kill()
    producer.purge()
    producer.flush(1)
    broker.restart()
    kept = count_records(broker, topic)
    lost = max(acked_at_kill - kept, 0)
    return {"acked": acked_at_kill, "kept": kept, "lost": lost, "lost_s_at_rate": round(lost / rate, 2)}


def fill_stall(broker: Broker, pause_ms: int, seconds: float) -> dict[str, float]:
    """Fill one partition with FILL_BATCHES single-record batches, then relay 20 records/s through it."""
    topic = "fill.hops"
    kafka = settings(broker, "fill", pause_ms)
    ensure_topics(kafka, [topic])
    filler = RawProducer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(FILL_BATCHES):
        filler.produce(topic, b"f" * 100, key=b"filler")
        if i % 500 == 0:
            filler.flush(30)
    filler.flush(30)
    result = hops(broker, topic, pause_ms, 20.0, seconds)
    return {"batches_before": FILL_BATCHES, **result, "broker_rss_mb": rss_mb(broker.process.pid)}


def measure(kind: str, idle_count: int, seconds: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"orate-broker-{kind}-"))
    broker = Broker(kind, folder)
    pause = PAUSE_MS[kind]
    try:
        row: dict = {"broker": kind, "start_s": broker.start()}
        time.sleep(1)
        row["rss_idle_mb"] = rss_mb(broker.process.pid)
        row["idle_consumers"] = idle_consumers(broker, idle_count, pause, seconds)
        if kind == "noida":
            row["idle_consumers_unpaused"] = idle_consumers(broker, idle_count, 0, seconds)
        row["hops_20"] = hops(broker, "h20.hops", pause, 20.0, seconds)
        row["hops_100"] = hops(broker, "h100.hops", pause, 100.0, seconds)
        row["rss_after_load_mb"] = rss_mb(broker.process.pid)
        row["fill"] = fill_stall(broker, pause, seconds)
        row["loss"] = loss_under_kill(broker)
        return row
    finally:
        broker.stop()


def table(rounds: list[dict]) -> str:
    def cell(value: object) -> str:
        return "-" if value is None else str(value)

    head = ("broker", "start s", "RSS MB", "idle CPU %", "hop20 p50/p99", "hop100 p50/p99", "CPU@100 %",
            "fill 20k p50/p99", "SIGKILL lost/acked", "SIGTERM kept", "busy %")  # fmt: skip
    rows = [head]
    for row in rounds:
        idle = row["idle_consumers"]["broker_cpu_pct"]
        if "idle_consumers_unpaused" in row:
            idle = f"{idle} ({row['idle_consumers_unpaused']['broker_cpu_pct']} unpaused)"
        h20, h100, fill, loss = row["hops_20"], row["hops_100"], row["fill"], row["loss"]
        fill_cell = f"{cell(fill['p50_ms'])}/{cell(fill['p99_ms'])}" + (
            f" ({fill['received']}/{fill['sent']})" if fill["received"] < fill["sent"] else ""
        )
        busy = [row["idle_consumers"]["machine_busy_pct"], h20["machine_busy_pct"], h100["machine_busy_pct"]]
        rows.append((
            row["broker"], str(row["start_s"]), f"{row['rss_idle_mb']}/{row['rss_after_load_mb']}", str(idle),
            f"{cell(h20['p50_ms'])}/{cell(h20['p99_ms'])}", f"{cell(h100['p50_ms'])}/{cell(h100['p99_ms'])}",
            str(h100["broker_cpu_pct"]), fill_cell,
            f"{loss['sigkill']['lost']}/{loss['sigkill']['acked']}",
            f"{loss['sigterm']['kept']}/{loss['sigterm']['acked']}", "/".join(str(b) for b in busy),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measured stretch")
    parser.add_argument("--deployments", type=Path, default=ROOT / "deploy" / "embedded" / "deployments.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # The stack's idle consumers: the engine's plus one per runner (one runner per deployment).
    idle_count = 1 + len(load_deployment_list(args.deployments).deployments)
    rounds = []
    for _ in range(args.rounds):
        for kind in BROKERS:
            rounds.append(measure(kind, idle_count, args.seconds))
            print(json.dumps(rounds[-1]), flush=True)
    result = {
        "benchmark": "embedded broker: tansu 0.6 (memory) vs noida-db 0.2.3 with the stack's client settings",
        "command": f"python loadtests/broker_choice.py --rounds {args.rounds} --seconds {args.seconds:g}",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kafka_client": "confluent-kafka (librdkafka)",
            "note": "a shared 2-core VM: machine_busy_pct includes other processes' load",
        },
        "idle_consumers": idle_count,
        "idle_fetch_interval_ms": PAUSE_MS,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(rounds))


if __name__ == "__main__":
    main()
