#!/usr/bin/env python3
"""Edge data plane side by side with Node-RED (issue 11): MQTT (mosquitto on this box) →
running statistics per device → HTTP, one output record per reading, counting every reading.

For each mode and run, a fresh mosquitto broker (Debian's, default queue limits unless
MAX_QUEUED is set; it logs connections and subscriptions, not each message), a fresh HTTP
receiver (its own Python process, asyncio, keep-alive) and a fresh server, one of:

- `ganglion`: an `mqtt` connector subscribing `plant/+/vibration` (format json, MQTT 5, its
  default `receive_maximum` 256) → a pipeline whose only stage is `detect` (`robust_zscore`
  on `value`, per series, history 100) → an `http` sink batched by BATCH records or
  MAX_DELAY_MS, its queue in memory. `workers: GANGLION_WORKERS` (1: one event loop, as
  Node-RED has).
- `ganglion-durable`: the same with `queue: { durable: true }` (the pipeline then keeps an
  ingest log and acknowledges QoS 1 only after fsync). Not in the default SYSTEMS.
- `node-red`: Node-RED (`bench/node_modules/node-red`, pinned in bench/package.json; run
  headless: settings and flows written to a temp dir used as userDir, no editor, no admin or
  node HTTP server, logging at warn) with the equivalent flow: `mqtt in` (same topic and QoS,
  parsed JSON; MQTT 3.1.1, Node-RED's default) → `function` keeping per device, in the node's
  context, a running mean and standard deviation (Welford) and adding mean, std and z to
  each message → `join` (an array of BATCH messages, or what came within MAX_DELAY_MS of the
  first) → `http request` POSTing the JSON (keep-alive).
- `node-red-unbatched`: the same without the `join`: one POST per reading. Run in the modes
  of UNBATCHED_MODES only (at the broker's full rate it opens thousands of connections at
  once).

The publisher (raw MQTT 3.1.1 over one TCP connection, every packet built before the clock
starts: about as fast as `mosquitto_pub -l` at QoS 0, and reliable at QoS 1, where
`mosquitto_pub -l` returned before all its messages had reached the broker) sends the
readings `{"value": v, "ts": t}` round robin across DEVICES topics `plant/pump-<i>/vibration`,
either as fast as the broker takes them (`max`, N readings: QoS 0 written back to back, TCP
pacing them; QoS 1 with up to PUB_WINDOW publishes unacknowledged) or at a fixed rate for
RATE_SECONDS. Each reading's `ts` is unique (base + its sequence number), so the receiver
knows exactly which readings arrived, which twice and which never. Publishing starts once
the broker's log shows the server's SUBSCRIBE (and 0.3 s more).

After publishing, the script waits until every reading arrived or none has arrived for
IDLE_S seconds (at most DRAIN_TIMEOUT). Per run: readings published, received (distinct),
lost (published − received), duplicates; pub/s (readings the broker took, or acknowledged,
per second); deliv/s (distinct readings over first to last arrival at the receiver); lag
(last arrival minus the end of publishing); CPU per reading of the server process (user +
system of all its threads, /proc/<pid>/stat, from just before the first publish to the end,
over readings received); peak RSS (VmHWM); ready (spawn to the broker logging its
SUBSCRIBE); and the broker's own drop count ($SYS/broker/publish/messages/dropped: messages
mosquitto discarded because the subscriber's queue was full), so that a loss can be placed.
For Ganglion a loss also prints its GET /edge counters (connector, pipeline, sink). Then the
medians of RUNS runs per system and mode, and the ratios Ganglion / Node-RED.

    GANGLION_BIN=build/ganglion python3 bench/edge_vs_nodered.py
    N=20000 RUNS=1 RATE_SECONDS=2 MODES="max/0 5000/1" python3 bench/edge_vs_nodered.py   # smoke

Knobs (environment): N (200000: readings in `max` modes), DEVICES (10), RUNS (3), MODES
("max/0 max/1 5000/1 20000/1 20000/0": `max` or a rate in readings/s, then the QoS),
RATE_SECONDS (10: a fixed-rate mode publishes rate × this many readings), SYSTEMS
("ganglion node-red"; also `ganglion-durable`, `node-red-unbatched`), UNBATCHED_MODES
("5000/1"), BATCH (500), MAX_DELAY_MS (200), PUB_WINDOW (1000), IDLE_S (15),
DRAIN_TIMEOUT (120), MAX_QUEUED (unset: mosquitto's default max_queued_messages, 1000; 0
lifts the broker's queue limit), GANGLION_WORKERS (1), GANGLION_RECEIVE_MAXIMUM (unset: the
connector's default, 256), GANGLION_BIN (build/ganglion),
NODE_BIN (node), NODE_RED_DIR (bench/node_modules/node-red; `npm ci --prefix bench` when
missing or not the locked version), KEEP_TMP (1 keeps the temp dirs: configs, flows, logs),
JSON_OUT (a file for every run's figures as JSON). Exit status 1 when a run failed (a
server that did not start or subscribe), else 0: losses are reported, not failures.
"""

import asyncio
import getpass
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
os.environ.setdefault("GANGLION_BIN", os.path.join(REPO, "build", "ganglion"))
import harness  # noqa: E402
from harness import LOCALHOST, Gateway, free_port, render, wait_for_port, wait_until  # noqa: E402
from mqtt_raw import connect, packet, utf8  # noqa: E402


def env_int(name, default):
    return int(os.environ.get(name, default))


N = env_int("N", 200_000)
DEVICES = env_int("DEVICES", 10)
RUNS = env_int("RUNS", 3)
MODES = os.environ.get("MODES", "max/0 max/1 5000/1 20000/1 20000/0").split()
RATE_SECONDS = float(os.environ.get("RATE_SECONDS", "10"))
SYSTEMS = os.environ.get("SYSTEMS", "ganglion node-red").split()
UNBATCHED_MODES = os.environ.get("UNBATCHED_MODES", "5000/1").split()
MAX_QUEUED = os.environ.get("MAX_QUEUED", "")
BATCH = env_int("BATCH", 500)
MAX_DELAY_MS = env_int("MAX_DELAY_MS", 200)
PUB_WINDOW = env_int("PUB_WINDOW", 1000)
IDLE_S = float(os.environ.get("IDLE_S", "15"))
DRAIN_TIMEOUT = float(os.environ.get("DRAIN_TIMEOUT", "120"))
GANGLION_WORKERS = env_int("GANGLION_WORKERS", 1)
GANGLION_RECEIVE_MAXIMUM = os.environ.get("GANGLION_RECEIVE_MAXIMUM", "")
NODE_BIN = os.environ.get("NODE_BIN", "node")
NODE_RED_DIR = os.environ.get("NODE_RED_DIR", os.path.join(HERE, "node_modules", "node-red"))
KEEP_TMP = os.environ.get("KEEP_TMP") == "1"
TOPIC_FILTER = "plant/+/vibration"
TOKEN = "NodeRed-Bench-Adm1n-T0ken-0123456789"


# --------------------------------------------------------------------------
# the receiver: its own process (the publisher's GIL is not its problem), asyncio, HTTP/1.1
# keep-alive; counts which readings arrived by their ts
# --------------------------------------------------------------------------

def receiver_main(base, count):
    seen = bytearray(count)
    st = {"distinct": 0, "duplicates": 0, "events": 0, "unknown": 0, "posts": 0, "bad_posts": 0,
          "out_of_order": 0, "first": None, "last": None}
    last_ts = {}

    def take(body):
        now = time.monotonic()
        try:
            doc = json.loads(body)
        except ValueError:
            st["bad_posts"] += 1
            return
        if isinstance(doc, dict):
            records = doc["records"] if isinstance(doc.get("records"), list) else [doc]
        else:
            records = doc if isinstance(doc, list) else [doc]
        st["posts"] += 1
        for r in records:
            if not isinstance(r, dict):
                st["unknown"] += 1
                continue
            if r.get("kind", "reading") != "reading":
                st["events"] += 1
                continue
            ts = r.get("ts")
            i = ts - base if isinstance(ts, int) else -1
            if not 0 <= i < count:
                st["unknown"] += 1
                continue
            if seen[i]:
                st["duplicates"] += 1
                continue
            seen[i] = 1
            st["distinct"] += 1
            device = r.get("device")
            if last_ts.get(device, -1) > ts:
                st["out_of_order"] += 1
            last_ts[device] = ts
        if records:
            if st["first"] is None:
                st["first"] = now
            st["last"] = now

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    body = b""
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                        if size == 0:
                            while await reader.readuntil(b"\r\n") != b"\r\n":
                                pass
                            break
                        body += (await reader.readexactly(size + 2))[:-2]
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and target == "/stats":
                    reply = json.dumps(st).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(reply), reply))
                else:
                    if method == "POST":
                        take(body)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(serve, LOCALHOST, 0, backlog=1024, limit=1 << 20)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    # The parent closes our stdin when it is done (or dies): leave then.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    asyncio.run(main())


class ReceiverProcess:
    def __init__(self, base, count):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--receiver", str(base), str(count)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def stats(self):
        import http.client
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=10)
        try:
            conn.request("GET", "/stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------
# the broker: Debian mosquitto on a free port, logging connections and subscriptions (not
# every message: log_type all would log each PUBLISH and slow the broker down)
# --------------------------------------------------------------------------

class Broker:
    def __init__(self, workdir):
        self.port = free_port()
        self.dir = workdir
        self.log_path = os.path.join(workdir, "mosquitto.log")
        self.proc = None

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("user %s\nlistener %d %s\nallow_anonymous true\npersistence false\nsys_interval 1\n"
                    "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                    "log_type subscribe\n%s" % (getpass.getuser(), self.port, LOCALHOST, self.log_path,
                                                 "max_queued_messages %d\n" % int(MAX_QUEUED) if MAX_QUEUED else ""))
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, self.proc):
            raise RuntimeError("mosquitto did not start: " + self.log()[-2000:])
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def subscribed(self, client_id):
        return any(line.split(": ", 1)[-1].startswith(client_id + " ") and TOPIC_FILTER in line
                   for line in self.log().splitlines())

    def sys_value(self, topic):
        """A retained $SYS value (published every second)."""
        r = subprocess.run(["mosquitto_sub", "-h", LOCALHOST, "-p", str(self.port), "-t", topic, "-C", "1", "-W", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            return int(r.stdout.strip())
        except ValueError:
            return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


# --------------------------------------------------------------------------
# the publisher: raw MQTT 3.1.1, packets built before the clock starts
# --------------------------------------------------------------------------

def build_packets(count, qos, base):
    rng = random.Random(11)
    topics = [utf8("plant/pump-%d/vibration" % d) for d in range(DEVICES)]
    packets = []
    for i in range(count):
        payload = b'{"value":%.4f,"ts":%d}' % (rng.gauss(1.0, 0.1), base + i)
        if qos == 0:
            packets.append(packet(0x30, topics[i % DEVICES] + payload))
        else:
            packets.append(packet(0x32, topics[i % DEVICES] + struct.pack(">H", i % 65535 + 1) + payload))
    return packets


class Publisher:
    def __init__(self, port):
        self.sock = socket.create_connection((LOCALHOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect("bench-pub-%d" % os.getpid(), keep_alive=600))
        connack = self.sock.recv(4)
        if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
            raise RuntimeError("CONNACK %r" % connack)
        self.acked = 0
        self.pong = threading.Event()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        """Counts PUBACKs (0x40 0x02 id id) and PINGRESP (0xD0 0x00); nothing else comes."""
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            acks = 0
            i = 0
            while len(buf) - i >= 2:
                if buf[i] == 0x40:
                    if len(buf) - i < 4:
                        break
                    acks += 1
                    i += 4
                elif buf[i] == 0xD0:
                    self.pong.set()
                    i += 2
                else:
                    raise RuntimeError("unexpected packet 0x%02x from the broker" % buf[i])
            buf = buf[i:]
            if acks:
                with self.cond:
                    self.acked += acks
                    self.cond.notify_all()

    def publish(self, packets, qos, rate):
        """Sends every packet (at `rate` per second, or as fast as the broker takes them); returns
        the seconds until the broker had them all (QoS 1: the last PUBACK; QoS 0: the PINGRESP
        to a PINGREQ sent after the last, which the broker answers in order)."""
        n = len(packets)
        sent = 0
        chunk = 256
        t0 = time.monotonic()
        while sent < n:
            due = n if rate is None else min(n, int((time.monotonic() - t0) * rate) + 1)
            if sent >= due:
                time.sleep(0.0005)
                continue
            upto = min(due, sent + chunk)
            if qos:
                with self.cond:
                    while sent - self.acked > PUB_WINDOW - chunk:
                        self.cond.wait(1)
            self.sock.sendall(b"".join(packets[sent:upto]))
            sent = upto
        if qos:
            with self.cond:
                while self.acked < n:
                    if not self.cond.wait(30):
                        raise RuntimeError("broker acknowledged %d of %d" % (self.acked, n))
        else:
            self.sock.sendall(b"\xc0\x00")
            if not self.pong.wait(60):
                raise RuntimeError("no PINGRESP")
        return time.monotonic() - t0

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------
# the servers
# --------------------------------------------------------------------------

GANGLION_CONFIG = """
workers: @WORKERS@
listeners:
  - { name: public, address: "@HOST@:@PORT@" }
admin: { address: "@HOST@:@ADMIN@", token: @TOKEN@ }
access_log: { enabled: false }
connectors:
  - name: plant
    kind: mqtt
    url: mqtt://@HOST@:@BROKER@
    client_id: ganglion-bench@RECEIVE_MAXIMUM@
    subscribe:
      - { topic: "plant/+/vibration", qos: @QOS@, format: json, metric: vibration }
pipelines:
  - name: vib-stats
    from: [ plant ]
    stages:
      - detect: { name: vib, method: robust_zscore, field: value, history: 100, threshold: 6 }
    to: [ uplink ]
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: @BATCH@, max_delay: @DELAY@ms }
    queue: { durable: @DURABLE@ }
edge: { data_dir: "@DATA@" }
"""

FUNCTION = """
// Running mean and standard deviation per device (Welford), kept in the node's context.
const dev = msg.topic.split('/')[1];
const x = msg.payload.value;
let s = context.get(dev);
if (!s) { s = { n: 0, mean: 0, m2: 0 }; context.set(dev, s); }
s.n += 1;
const d = x - s.mean;
s.mean += d / s.n;
s.m2 += d * (x - s.mean);
const std = s.n > 1 ? Math.sqrt(s.m2 / (s.n - 1)) : 0;
msg.payload = { device: dev, metric: 'vibration', ts: msg.payload.ts, value: x, n: s.n,
                mean: s.mean, std: std, z: std > 0 ? (x - s.mean) / std : 0 };
return msg;
"""


class GanglionServer:
    client_id = "ganglion-bench"

    def __init__(self, workdir, broker, sink_port, qos, durable):
        self.port, self.admin = free_port(), free_port()
        self.data = os.path.join(workdir, "data")
        text = render(GANGLION_CONFIG, host=LOCALHOST, port=self.port, admin=self.admin, token=TOKEN,
                      broker=broker.port, qos=qos, sink=sink_port, batch=BATCH, delay=MAX_DELAY_MS,
                      durable="true" if durable else "false", data=self.data, workers=GANGLION_WORKERS,
                      receive_maximum="\n    receive_maximum: %d" % int(GANGLION_RECEIVE_MAXIMUM)
                      if GANGLION_RECEIVE_MAXIMUM else "")
        self.gw = Gateway(text, admin_port=self.admin, port=self.port, start_timeout=10)

    def start(self):
        self.gw.start()
        return self.gw.pid

    def edge(self):
        try:
            return self.gw.admin("GET", "/edge", token=TOKEN).json()
        except Exception as e:  # noqa: BLE001 (diagnostics only)
            return {"error": str(e)}

    def alive(self):
        return self.gw.alive()

    def log_tail(self):
        return self.gw.log_text()[-3000:]

    def stop(self):
        self.gw.stop()
        if not KEEP_TMP and self.gw.dir:
            shutil.rmtree(self.gw.dir, ignore_errors=True)


class NodeRedServer:
    client_id = "nodered-bench"

    def __init__(self, workdir, broker, sink_port, qos, batched):
        self.dir = os.path.join(workdir, "node-red")
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "node-red.log")
        flows = [
            {"id": "tab1", "type": "tab", "label": "bench"},
            {"id": "broker1", "type": "mqtt-broker", "name": "local", "broker": LOCALHOST, "port": str(broker.port),
             "clientid": self.client_id, "autoConnect": True, "usetls": False, "protocolVersion": "4",
             "keepalive": "60", "cleansession": True, "autoUnsubscribe": True,
             "birthTopic": "", "closeTopic": "", "willTopic": ""},
            {"id": "in1", "type": "mqtt in", "z": "tab1", "name": "readings", "topic": TOPIC_FILTER,
             "qos": str(qos), "datatype": "json", "broker": "broker1", "nl": False, "rap": True, "rh": 0,
             "inputs": 0, "wires": [["fn1"]]},
            {"id": "fn1", "type": "function", "z": "tab1", "name": "running stats", "func": FUNCTION,
             "outputs": 1, "timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": [],
             "wires": [["join1" if batched else "post1"]]},
            {"id": "post1", "type": "http request", "z": "tab1", "name": "uplink", "method": "POST", "ret": "txt",
             "paytoqs": "ignore", "url": "http://%s:%d/ingest" % (LOCALHOST, sink_port), "persist": True,
             "insecureHTTPParser": False, "authType": "", "senderr": False, "headers": [], "wires": [[]]},
        ]
        if batched:
            flows.append({"id": "join1", "type": "join", "z": "tab1", "name": "batch", "mode": "custom",
                          "build": "array", "property": "payload", "propertyType": "msg", "key": "topic",
                          "joiner": "\\n", "joinerType": "str", "useparts": False, "accumulate": False,
                          "timeout": str(MAX_DELAY_MS / 1000), "count": str(BATCH), "reduceRight": False,
                          "wires": [["post1"]]})
        with open(os.path.join(self.dir, "flows.json"), "w") as f:
            json.dump(flows, f, indent=1)
        with open(os.path.join(self.dir, "settings.js"), "w") as f:
            f.write("""module.exports = {
    uiPort: %d, uiHost: "%s",
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    contextStorage: { default: { module: "memory" } },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    functionExternalModules: false,
    editorTheme: { projects: { enabled: false } }
};
""" % (free_port(), LOCALHOST))
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, NODE_ENV="production")
        self.proc = subprocess.Popen([NODE_BIN, os.path.join(NODE_RED_DIR, "red.js"), "--settings",
                                     os.path.join(self.dir, "settings.js"), "--userDir", self.dir,
                                     os.path.join(self.dir, "flows.json")],
                                    stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=self.dir)
        return self.proc.pid

    def edge(self):
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------

def run_once(system, mode, run_no):
    rate_s, qos_s = mode.split("/")
    qos = int(qos_s)
    rate = None if rate_s == "max" else float(rate_s)
    count = N if rate is None else int(rate * RATE_SECONDS)
    base = int(time.time() * 1000) - count - 60_000
    packets = build_packets(count, qos, base)
    workdir = tempfile.mkdtemp(prefix="ganglion-nrbench-")
    broker = Broker(workdir).start()
    rx = ReceiverProcess(base, count)
    if system.startswith("ganglion"):
        server = GanglionServer(workdir, broker, rx.port, qos, durable=system == "ganglion-durable")
    else:
        server = NodeRedServer(workdir, broker, rx.port, qos, batched=system == "node-red")
    res = {"system": system, "mode": mode, "run": run_no, "published": count}
    try:
        t_spawn = time.monotonic()
        pid = server.start()
        if not wait_until(lambda: broker.subscribed(server.client_id) or not server.alive(), timeout=60, interval=0.005):
            raise RuntimeError("%s did not subscribe within 60 s; log:\n%s" % (system, server.log_tail()))
        if not server.alive():
            raise RuntimeError("%s exited during start-up; log:\n%s" % (system, server.log_tail()))
        res["ready_s"] = time.monotonic() - t_spawn
        time.sleep(0.3)  # the SUBACK is on its way; let the server settle
        rss_idle = status_kb(pid, "VmRSS")
        pub = Publisher(broker.port)
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        res["publish_s"] = pub.publish(packets, qos, rate)
        pub.close()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        st = rx.stats()
        last_change, last_seen = time.monotonic(), st["distinct"] + st["duplicates"]
        while st["distinct"] < count and time.monotonic() < deadline and server.alive():
            time.sleep(0.1)
            st = rx.stats()
            if st["distinct"] + st["duplicates"] != last_seen:
                last_change, last_seen = time.monotonic(), st["distinct"] + st["duplicates"]
            elif time.monotonic() - last_change > IDLE_S:
                break
        res["alive"] = server.alive()
        if res["alive"]:
            res["cpu_s"] = cpu_seconds(pid) - cpu0
            res["rss_peak_mb"] = status_kb(pid, "VmHWM") / 1024
            res["rss_end_mb"] = status_kb(pid, "VmRSS") / 1024
        res["rss_idle_mb"] = rss_idle / 1024
        res["received"] = st["distinct"]
        res["lost"] = count - st["distinct"]
        res["duplicates"] = st["duplicates"]
        res["unknown"] = st["unknown"]
        res["events"] = st["events"]
        res["posts"] = st["posts"]
        res["out_of_order"] = st["out_of_order"]
        res["publish_rate"] = count / res["publish_s"]
        span = (st["last"] - st["first"]) if st["first"] is not None else 0
        res["delivered_rate"] = st["distinct"] / span if span > 0 else float("nan")
        res["e2e_s"] = (st["last"] - t0) if st["last"] is not None else float("nan")
        res["lag_s"] = max(0.0, res["e2e_s"] - res["publish_s"])
        time.sleep(1.2)  # the broker's $SYS counters are published every second
        res["broker_dropped"] = broker.sys_value("$SYS/broker/publish/messages/dropped")
        res["broker_drop_notices"] = [line.split(": ", 1)[-1] for line in broker.log().splitlines()
                                      if "Outgoing messages are being dropped" in line]
        edge = server.edge()
        if edge is not None:
            res["edge"] = summarize_edge(edge)
        if res["lost"] or res["duplicates"] or not res["alive"]:
            res["log_tail"] = server.log_tail()
    finally:
        server.stop()
        rx.stop()
        broker.stop()
        if not KEEP_TMP:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            res["dir"] = workdir
    return res


def summarize_edge(edge):
    """The counters of GET /edge that place a loss: connector, pipeline, sink."""
    out = {}
    try:
        c = edge["connectors"][0]
        out["connector"] = {k: c.get(k) for k in ("connected", "messages", "readings", "rejected", "refused",
                                                  "paused_ms", "disconnects", "last_error", "last_rejection")
                            if k in c}
        p = edge["pipelines"][0]
        out["pipeline"] = {k: p.get(k) for k in ("readings_in", "records_out", "waiting", "dropped") if k in p}
        s = edge["sinks"][0]
        out["sink"] = {k: s.get(k) for k in ("delivered", "batches", "failures", "dropped", "queued_records",
                                             "last_error") if k in s}
    except (KeyError, IndexError, TypeError):
        out["raw"] = edge
    return out


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def fmt(v, spec):
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return format(v, spec)


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    return statistics.median(values) if values else None


def node_red_version():
    try:
        with open(os.path.join(NODE_RED_DIR, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_node_red():
    want = None
    try:
        with open(os.path.join(HERE, "package-lock.json")) as f:
            want = json.load(f)["packages"]["node_modules/node-red"]["version"]
    except (OSError, ValueError, KeyError):
        pass
    have = node_red_version()
    if have is None or (want and have != want and NODE_RED_DIR == os.path.join(HERE, "node_modules", "node-red")):
        print("# installing the pinned node-red (npm ci --prefix bench)", flush=True)
        subprocess.run(["npm", "ci", "--prefix", HERE, "--no-audit", "--no-fund"], check=True)
    if node_red_version() is None:
        sys.exit("node-red not found at %s" % NODE_RED_DIR)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--receiver":
        receiver_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    if any(s.startswith("node-red") for s in SYSTEMS):
        ensure_node_red()
    harness.require_binary()
    node_version = subprocess.run([NODE_BIN, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip() \
        if any(s.startswith("node-red") for s in SYSTEMS) else "-"
    mosq = subprocess.run([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0]
    print("# edge MQTT -> pipeline -> HTTP, ganglion vs node-red, %s" % time.strftime("%Y-%m-%d %H:%M:%S"))
    print("# ganglion %s (workers: %d, receive_maximum: %s); node-red %s on node %s; %s (max_queued_messages: %s); "
          "%d CPUs" % (harness.BIN, GANGLION_WORKERS, GANGLION_RECEIVE_MAXIMUM or "default",
                       node_red_version() if node_version != "-" else "-", node_version, mosq,
                       MAX_QUEUED or "default", os.cpu_count()))
    print("# N=%d DEVICES=%d RUNS=%d MODES=%s RATE_SECONDS=%g BATCH=%d MAX_DELAY_MS=%d PUB_WINDOW=%d" % (
        N, DEVICES, RUNS, ",".join(MODES), RATE_SECONDS, BATCH, MAX_DELAY_MS, PUB_WINDOW))
    print()
    header = "%-8s %-19s %3s %9s %9s %8s %5s %10s %10s %8s %9s %8s %8s %8s" % (
        "mode", "system", "run", "published", "received", "lost", "dup", "pub/s", "deliv/s", "lag s",
        "cpu us/r", "rss MB", "ready s", "brk drop")
    print(header, flush=True)
    results = []
    failed = False
    def systems_of(mode):
        extra = ["node-red-unbatched"] if mode in UNBATCHED_MODES and "node-red-unbatched" not in SYSTEMS else []
        return SYSTEMS + extra

    for mode in MODES:
        for run_no in range(1, RUNS + 1):
            order = systems_of(mode) if run_no % 2 else list(reversed(systems_of(mode)))
            for system in order:
                try:
                    r = run_once(system, mode, run_no)
                except Exception as e:  # noqa: BLE001 (reported, the other systems go on)
                    print("%-8s %-19s %3d FAILED: %s" % (mode, system, run_no, e), flush=True)
                    failed = True
                    continue
                results.append(r)
                cpu_per = (r["cpu_s"] * 1e6 / r["received"]) if r.get("cpu_s") is not None and r["received"] else None
                r["cpu_us_per_reading"] = cpu_per
                print("%-8s %-19s %3d %9d %9d %8d %5d %10s %10s %8s %9s %8s %8s %8s%s" % (
                    mode, system, run_no, r["published"], r["received"], r["lost"], r["duplicates"],
                    fmt(r["publish_rate"], ".0f"), fmt(r["delivered_rate"], ".0f"), fmt(r["lag_s"], ".2f"),
                    fmt(cpu_per, ".1f"), fmt(r.get("rss_peak_mb"), ".1f"), fmt(r.get("ready_s"), ".2f"),
                    fmt(r.get("broker_dropped"), "d"), "" if r["alive"] else "  (server died)"), flush=True)
                if r["lost"] or r["duplicates"] or not r["alive"] or r.get("unknown"):
                    print("    details: %s" % json.dumps({k: r.get(k) for k in (
                        "edge", "broker_drop_notices", "unknown", "events", "posts", "out_of_order", "dir")}),
                        flush=True)
                    noise = ("Projects disabled", "unencrypted credentials", " serving on ")
                    lines = [line for line in (r.get("log_tail") or "").splitlines()
                             if not any(n in line for n in noise)]
                    if lines:
                        print("    server log tail:\n      " + "\n      ".join(lines[-15:]), flush=True)

    print()
    print("== medians over %d run(s)" % RUNS)
    print("%-8s %-19s %9s %9s %8s %10s %10s %8s %9s %8s %8s" % (
        "mode", "system", "published", "received", "lost", "pub/s", "deliv/s", "lag s", "cpu us/r", "rss MB",
        "ready s"))
    med = {}
    for mode in MODES:
        for system in systems_of(mode):
            rs = [r for r in results if r["mode"] == mode and r["system"] == system]
            if not rs:
                continue
            m = {k: median([r.get(k) for r in rs]) for k in (
                "published", "received", "lost", "publish_rate", "delivered_rate", "lag_s", "cpu_us_per_reading",
                "rss_peak_mb", "ready_s")}
            m["lost_max"] = max(r["lost"] for r in rs)
            med[(mode, system)] = m
            print("%-8s %-19s %9s %9s %8s %10s %10s %8s %9s %8s %8s" % (
                mode, system, fmt(m["published"], ".0f"), fmt(m["received"], ".0f"),
                fmt(m["lost"], ".0f") + ("" if m["lost_max"] == m["lost"] else "/%d" % m["lost_max"]),
                fmt(m["publish_rate"], ".0f"), fmt(m["delivered_rate"], ".0f"), fmt(m["lag_s"], ".2f"),
                fmt(m["cpu_us_per_reading"], ".1f"), fmt(m["rss_peak_mb"], ".1f"), fmt(m["ready_s"], ".2f")))
    print("(lost: median, then /the worst run when they differ)")
    print()
    for mode in MODES:
        g = med.get((mode, "ganglion")) or med.get((mode, "ganglion-durable"))
        n = med.get((mode, "node-red"))
        if not g or not n:
            continue

        def ratio(a, b):
            return fmt(a / b, ".2f") if a is not None and b else "n/a"
        print("%-8s ganglion/node-red: delivered rate %s (higher is better), CPU per reading %s, peak RSS %s "
              "(lower is better); lost %s vs %s" % (
                  mode, ratio(g["delivered_rate"], n["delivered_rate"]),
                  ratio(g["cpu_us_per_reading"], n["cpu_us_per_reading"]), ratio(g["rss_peak_mb"], n["rss_peak_mb"]),
                  fmt(g["lost"], ".0f"), fmt(n["lost"], ".0f")))
    if os.environ.get("JSON_OUT"):
        with open(os.environ["JSON_OUT"], "w") as f:
            json.dump(results, f, indent=1, default=str)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
