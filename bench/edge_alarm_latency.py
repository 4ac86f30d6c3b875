#!/usr/bin/env python3
"""From a reading's arrival to its alarm's publish (issue 11: p99 under 1 ms).

Runs build/ganglion with an MQTT connector reading `plant/+/vibration`, a pipeline that
filters them, and a rule `value > 100` (no hold-off) that publishes the record to
`alarms/{device}`, one alarming reading every --interval ms (its `ts` tells them apart), twice:

1. Against a broker played by this script on one connection (DirectBroker): each reading is
   written to the gateway's socket and its alarm timed as it is read back from the same
   socket. This is the goal's figure, the gateway's arrival → publish, with only a loopback
   write and read in Python on top.
2. Against the Debian mosquitto, a client publishing and a subscriber timing the alarms: the
   round trip an operator sees (publisher → broker → gateway → broker → subscriber), beside
   the broker alone (publisher → broker → subscriber) measured first.

    python3 bench/edge_alarm_latency.py [--count 2000] [--interval 5] [--qos 0] [--durable]
"""

import argparse
import json
import os
import re
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("GANGLION_BIN", os.path.join(HERE, "..", "build", "ganglion"))
from harness import LOCALHOST, Gateway, Mosquitto, free_port, render, wait_until  # noqa: E402
from mqtt_raw import connect, packet, utf8  # noqa: E402

TOKEN = "Latency-Adm1n-T0ken-0123456789ab"
CONFIG = """
listeners:
  - { name: public, address: "@HOST@:@PORT@" }
admin: { address: "@HOST@:@ADMIN@", token: @TOKEN@ }
access_log: { enabled: false }
connectors:
  - name: plant
    kind: mqtt
    url: @URL@
    client_id: ganglion-latency
    outbox: { durable: @DURABLE@ }
    subscribe:
      - { topic: "plant/+/vibration", qos: 0, format: json, metric: vibration }
pipelines:
  - name: pump-health
    from: [ plant ]
    stages:
      - filter: "value > -1000 and value < 1000"
    to: []
rules:
  - name: bearing-alarm
    when: "value > 100"
    actions:
      - publish: { connector: plant, topic: "alarms/{device}", qos: @QOS@ }
edge: { data_dir: "@DATA@" }
"""


class PacketReader:
    """Whole MQTT packets from a socket: (type, (first byte, body))."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def packet(self):
        first = self.read(1)[0]
        length, mult = 0, 1
        while True:
            b = self.read(1)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return first & 0xF0, (first, self.read(length))


class Client(PacketReader):
    """Just enough MQTT 3.1.1: CONNECT, SUBSCRIBE, PUBLISH at QoS 0, PUBLISH in at QoS 0/1."""

    def __init__(self, port, client_id):
        super().__init__(socket.create_connection((LOCALHOST, port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect(client_id))
        kind, _ = self.packet()
        assert kind == 0x20, kind

    def subscribe(self, topic, qos):
        self.sock.sendall(packet(0x82, struct.pack(">H", 1) + utf8(topic) + bytes([qos])))
        kind, _ = self.packet()
        assert kind == 0x90, kind

    def publish(self, topic, payload):
        self.sock.sendall(packet(0x30, utf8(topic) + payload))

    def messages(self, on_message):
        while True:
            try:
                kind, (first, body) = self.packet()
            except (EOFError, OSError):
                return
            if kind != 0x30:
                continue
            tlen = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + tlen].decode()
            at = 2 + tlen
            qos = (first >> 1) & 3
            if qos:
                pid = body[at:at + 2]
                at += 2
                self.sock.sendall(b"\x40\x02" + pid)
            on_message(topic, body[at:], time.perf_counter())


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def measure(broker_port, listen_topic, count, interval_ms):
    """Publishes `count` readings; returns the latencies (µs) of the messages on `listen_topic`."""
    sent = {}
    got = {}
    sub = Client(broker_port, "latency-sub-%d" % os.getpid())
    sub.subscribe(listen_topic, 1)
    lock = threading.Lock()

    def on_message(topic, payload, at):
        try:
            ts = json.loads(payload)["ts"]
        except (ValueError, KeyError):
            return
        with lock:
            got.setdefault(ts, at)

    threading.Thread(target=sub.messages, args=(on_message,), daemon=True).start()
    pub = Client(broker_port, "latency-pub-%d" % os.getpid())
    base = int(time.time() * 1000) - 10 * 60 * 1000
    time.sleep(0.2)
    for i in range(count):
        ts = base + i
        payload = json.dumps({"value": 500, "ts": ts}).encode()
        sent[ts] = time.perf_counter()
        pub.publish("plant/pump-1/vibration", payload)
        time.sleep(interval_ms / 1000)
    wait_until(lambda: len(got) >= count, timeout=5)
    sub.sock.close()
    pub.sock.close()
    return [(got[ts] - sent[ts]) * 1e6 for ts in sent if ts in got], count - len(got)


class Sniffer:
    """The kernel's own timestamps of the packets on the loopback to and from `port`
    (AF_PACKET with SO_TIMESTAMPNS, needs root): when each reading was written to the
    gateway's socket and when the gateway wrote its alarm, keyed by the JSON's `ts`. This takes
    Python's scheduling out of the figure: what is left is the gateway's own arrival →
    publish. It runs as a child process (`--sniff PORT FILE`) behind a socket filter that
    passes only that port's TCP packets, so that it costs the measuring threads nothing."""

    TS = re.compile(rb'"ts":\s*(\d+)')
    SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python may not name it
    SO_ATTACH_FILTER = 26

    def __init__(self, port):
        import subprocess
        import tempfile
        self.out = tempfile.mktemp(prefix="ganglion-sniff-")
        self.child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sniff", str(port), self.out],
                                      stdout=subprocess.PIPE)
        if self.child.stdout.readline().strip() != b"ready":
            self.child.wait()
            raise OSError("the sniffer could not start (not root?)")

    def latencies(self):
        import signal
        self.child.send_signal(signal.SIGTERM)
        self.child.wait(timeout=30)
        with open(self.out) as f:
            readings, alarms = json.load(f)
        os.unlink(self.out)
        return [(alarms[ts] - at) * 1e6 for ts, at in readings.items() if ts in alarms]

    @classmethod
    def child_main(cls, port, out):
        import signal
        # Classic BPF: IPv4, TCP, source or destination `port`, not the outgoing copy that lo
        # shows of each packet beside the incoming one.
        ops = [  # (code, jump if true, jump if false, k); jumps count from the next instruction
            (0x20, 0, 0, 0xFFFFF004),  # 0  ld pkttype
            (0x15, 10, 0, 4),          # 1  PACKET_OUTGOING: drop
            (0x28, 0, 0, 12),          # 2  ldh ethertype
            (0x15, 0, 8, 0x0800),      # 3  not IPv4: drop
            (0x30, 0, 0, 23),          # 4  ldb protocol
            (0x15, 0, 6, 6),           # 5  not TCP: drop
            (0xB1, 0, 0, 14),          # 6  ldx 4 * IHL
            (0x48, 0, 0, 14),          # 7  ldh source port
            (0x15, 2, 0, port),        # 8  == port: accept
            (0x48, 0, 0, 16),          # 9  ldh destination port
            (0x15, 0, 1, port),        # 10 != port: drop
            (0x06, 0, 0, 0xFFFF),      # 11 accept
            (0x06, 0, 0, 0),           # 12 drop
        ]
        code = b"".join(struct.pack("HBBI", *op) for op in ops)
        import ctypes
        buf = ctypes.create_string_buffer(code)
        prog = struct.pack("HL", len(ops), ctypes.addressof(buf))
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.setsockopt(socket.SOL_SOCKET, cls.SO_ATTACH_FILTER, prog)
        sock.bind(("lo", 0))
        sock.setsockopt(socket.SOL_SOCKET, cls.SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        readings, alarms = {}, {}
        done = []
        signal.signal(signal.SIGTERM, lambda *_: done.append(1))
        sock.setblocking(False)
        print("ready", flush=True)
        while True:
            # The kernel stamps each packet as it passes: reading them 50 ms later changes
            # nothing, and waking for each would take a core from the gateway at that moment.
            try:
                data, anc, _, _ = sock.recvmsg(65600, 64)
            except (BlockingIOError, InterruptedError):
                if done:
                    break
                time.sleep(0.05)
                continue
            stamp = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == cls.SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
            if stamp is None or len(data) < 54:
                continue
            ip = 14 + (data[14] & 0x0F) * 4
            sport = struct.unpack(">H", data[ip:ip + 2])[0]
            payload = data[ip + (data[ip + 12] >> 4) * 4:]
            table = readings if sport == port else alarms  # from the broker: a reading
            for m in cls.TS.finditer(payload):
                table.setdefault(m.group(1).decode(), stamp)
        sock.close()
        with open(out, "w") as f:
            json.dump([readings, alarms], f)


class DirectBroker:
    """Plays the broker to the gateway alone, on one connection: answers CONNECT and SUBSCRIBE,
    writes readings to the gateway's socket and times each alarm PUBLISH read back from it
    (acknowledged when QoS 1, PUBREC/PUBCOMP when QoS 2). No mosquitto hop on either side: the
    figure is the gateway's arrival → publish, plus one loopback write and read in Python."""

    def __init__(self, puback_delay_ms=0):
        self.puback_delay = puback_delay_ms / 1000.0  # a broker that far away acknowledges that late
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.got = {}
        self.subscribed = threading.Event()
        self.conn = None
        self.v5 = True
        self.write_lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def url(self):
        return "mqtt://%s:%d" % (LOCALHOST, self.port)

    def send(self, data):
        with self.write_lock:
            self.conn.sendall(data)

    def serve(self):
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = conn
        reader = PacketReader(conn)
        try:
            kind, (_, body) = reader.packet()
            assert kind == 0x10, kind
            self.v5 = body[6] == 5
            self.send(packet(0x20, b"\x00\x00" + (b"\x00" if self.v5 else b"")))
            while True:
                kind, (first, body) = reader.packet()
                at = time.perf_counter()
                if kind == 0x80:  # SUBSCRIBE: grant what was asked
                    pid = body[:2]
                    at = 2 + (1 + body[2] if self.v5 else 0)  # properties' length is one byte here
                    granted = b""
                    while at < len(body):
                        tlen = struct.unpack(">H", body[at:at + 2])[0]
                        granted += bytes([body[at + 2 + tlen] & 3])
                        at += 3 + tlen
                    self.send(packet(0x90, pid + (b"\x00" if self.v5 else b"") + granted))
                    self.subscribed.set()
                elif kind == 0x30:
                    tlen = struct.unpack(">H", body[:2])[0]
                    pos = 2 + tlen
                    qos = (first >> 1) & 3
                    if qos:
                        pid = body[pos:pos + 2]
                        pos += 2
                        ack = packet(0x40 if qos == 1 else 0x50, pid)
                        if self.puback_delay and qos == 1:
                            threading.Timer(self.puback_delay, self.send, args=(ack,)).start()
                        else:
                            self.send(ack)
                    if self.v5:
                        plen, mult = 0, 1
                        while True:
                            b = body[pos]
                            pos += 1
                            plen += (b & 0x7F) * mult
                            mult *= 128
                            if not b & 0x80:
                                break
                        pos += plen
                    try:
                        self.got.setdefault(json.loads(body[pos:])["ts"], at)
                    except (ValueError, KeyError):
                        pass
                elif kind == 0x60:  # PUBREL: the QoS 2 exchange ends
                    self.send(packet(0x70, body[:2]))
                elif kind == 0xC0:
                    self.send(b"\xd0\x00")
        except (EOFError, OSError, AssertionError):
            return

    def measure(self, count, interval_ms):
        sent = {}
        base = int(time.time() * 1000) - 10 * 60 * 1000
        topic = utf8("plant/pump-1/vibration")
        for i in range(count):
            ts = base + i
            body = topic + (b"\x00" if self.v5 else b"") + json.dumps({"value": 500, "ts": ts}).encode()
            data = packet(0x30, body)
            sent[ts] = time.perf_counter()
            self.send(data)
            time.sleep(interval_ms / 1000)
        wait_until(lambda: len(self.got) >= count, timeout=5)
        return [(self.got[ts] - sent[ts]) * 1e6 for ts in sent if ts in self.got], count - len(self.got)


def run_gateway(url, args, data, measure):
    """Runs the gateway against the broker at `url`; returns measure()'s result and the
    gateway's own publish-latency histogram (le, count)."""
    port, admin = free_port(), free_port()
    text = render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, url=url,
                  qos=args.qos, data=data, durable="true" if args.durable else "false")
    with Gateway(text, admin_port=admin, port=port) as gw:
        wait_until(lambda: any(c.get("connected") for c in
                               gw.admin("GET", "/edge", token=TOKEN).json()["connectors"]), timeout=5)
        time.sleep(0.3)
        result = measure()
        metrics = gw.admin("GET", "/metrics", token=TOKEN).text
    os.system("rm -rf " + data)
    buckets = []
    for line in metrics.splitlines():
        if line.startswith("ganglion_edge_rule_publish_latency_seconds_bucket"):
            le = line.split(',le="', 1)[1].split('"', 1)[0]
            buckets.append((le, int(line.rsplit(" ", 1)[1])))
    return result, buckets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--qos", type=int, default=0, choices=[0, 1, 2])
    ap.add_argument("--durable", action="store_true",
                    help="the connector's outbox on disk (and the pipeline's ingest log with it)")
    ap.add_argument("--puback-delay-ms", type=float, default=0,
                    help="the scripted broker acknowledges QoS 1 alarms this late (a broker far away)")
    args = ap.parse_args()
    data = "/tmp/ganglion-latency-%d" % os.getpid()
    direct = DirectBroker(args.puback_delay_ms)
    try:
        sniffer = Sniffer(direct.port)
    except (PermissionError, OSError):
        sniffer = None
    (alone, lost_alone), buckets = run_gateway(direct.url(), args, data,
                                               lambda: direct.measure(args.count, args.interval))
    at_socket = sniffer.latencies() if sniffer else []
    with Mosquitto() as broker:
        brokers_only, lost0 = measure(broker.port, "plant/+/vibration", args.count, args.interval)
        (through, lost), _ = run_gateway(broker.url(), args, data,
                                         lambda: measure(broker.port, "alarms/#", args.count, args.interval))
    if not through or not alone:
        sys.exit("no alarm arrived")
    b50, b99 = percentile(brokers_only, 50), percentile(brokers_only, 99)
    g50, g99 = percentile(through, 50), percentile(through, 99)
    under = 100.0 * sum(1 for v in alone if v < 1000) / len(alone)
    print("the gateway alone (reading written to its socket → alarm read from it, alarm QoS %d%s): "
          "p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs, %.2f%% under 1 ms, %d of %d missing (goal: p99 < 1000 µs)"
          % (args.qos, ", durable" if args.durable else "", percentile(alone, 50), percentile(alone, 99),
             percentile(alone, 99.9), max(alone), under, lost_alone, args.count))
    if at_socket:
        under = 100.0 * sum(1 for v in at_socket if v < 1000) / len(at_socket)
        print("the gateway alone at its socket (kernel timestamps of the reading's packet in and the alarm's out, "
              "%d alarms): p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs, %.2f%% under 1 ms (goal: p99 < 1000 µs)"
              % (len(at_socket), percentile(at_socket, 50), percentile(at_socket, 99), percentile(at_socket, 99.9),
                 max(at_socket), under))
    else:
        print("(not root: no kernel timestamps; the figure above includes Python's own scheduling)")
    print("broker alone (publisher → broker → subscriber): p50 %.0f µs, p99 %.0f µs, %d lost" % (b50, b99, lost0))
    print("through mosquitto (→ broker → ganglion → broker → subscriber): p50 %.0f µs, p99 %.0f µs, "
          "max %.0f µs, %d of %d alarms missing" % (g50, g99, max(through), lost, args.count))
    total = buckets[-1][1] if buckets else 0
    if total:
        print("inside the gateway (reading handed over → alarm handed to the MQTT writer, its own histogram, "
              "direct run): " + ", ".join("%.1f%% ≤ %s s" % (100.0 * n / total, le) for le, n in buckets
                                          if le != "+Inf"))

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sniff":
        Sniffer.child_main(int(sys.argv[2]), sys.argv[3])
    else:
        main()
