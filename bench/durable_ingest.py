#!/usr/bin/env python3
"""Store and forward through the whole gateway (issue 11: >= 100,000 readings/s to disk with
batched fsync; one million queued readings drain in order).

Starts build/ganglion with HTTP ingest → a pass-all pipeline → an HTTP sink whose queue is
durable, and an HTTP receiver that answers 503 (the uplink is down). Fill: CONNS keep-alive
clients POST batches of BATCH readings (one device each, values counting up); the gateway
answers 202 only once the readings are on disk (the pipeline's ingest log, fsynced in
groups). The fill ends when the sink's queue holds every reading and the ingest log is
trimmed. Drain: the receiver answers 200; the drain ends when it has every reading. Checks
that each device's readings arrive once and in order.

Prints, per phase, readings/s (wall) and the gateway's CPU time (user + system) per reading.

    python3 bench/durable_ingest.py [--readings 1000000] [--batch 500] [--conns 4]
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("GANGLION_BIN", os.path.join(HERE, "..", "build", "ganglion"))
from harness import LOCALHOST, Gateway, free_port, render, wait_until  # noqa: E402

TOKEN = "Bench-Adm1n-T0ken-0123456789"
CONFIG = """
listeners:
  - { name: public, address: "@HOST@:@PORT@" }
admin: { address: "@HOST@:@ADMIN@", token: @TOKEN@ }
access_log: { enabled: false }
connectors:
  - { name: lab, kind: http, metric: vibration }
pipelines:
  - name: raw
    from: [ lab ]
    stages:
      - filter: "value > -1000000"
    to: [ uplink ]
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 500, max_delay: 100ms }
    retry: { initial: 100ms, max: 200ms }
    queue: { durable: true, max_bytes: 1GiB }
edge: { data_dir: "@DATA@" }
routes:
  - { name: ingest, match: { path_prefix: /ingest/ }, ingest: lab }
"""


class Receiver:
    """Counts records per device and checks their order; answers `status`. Parsing is kept
    cheap (the receiver must not be what is measured): ids and values are read by json."""

    def __init__(self):
        import http.server
        self.status = 503
        self.lock = threading.Lock()
        self.next = {}
        self.received = 0
        self.errors = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = owner.status
                if status == 200:
                    records = json.loads(body)["records"]
                    with owner.lock:
                        for r in records:
                            want = owner.next.get(r["device"], 0)
                            if r["value"] != want and len(owner.errors) < 5:
                                owner.errors.append(f"{r['device']}: {r['value']} where {want} was due")
                            owner.next[r["device"]] = int(r["value"]) + 1
                        owner.received += len(records)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--conns", type=int, default=4)
    args = ap.parse_args()
    per_conn = args.readings // args.conns
    total = per_conn * args.conns
    data = os.path.abspath(f"/tmp/ganglion-durable-bench-{os.getpid()}")
    rx = Receiver()
    port, admin = free_port(), free_port()
    text = render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, sink=rx.port, data=data)
    with Gateway(text, admin_port=admin, port=port) as gw:
        def edge():
            return gw.admin("GET", "/edge", token=TOKEN).json()

        # Bodies built beforehand: the client's JSON encoding is not measured.
        bodies = [[json.dumps([{"value": v} for v in range(i, min(i + args.batch, per_conn))]).encode()
                   for i in range(0, per_conn, args.batch)] for _ in range(args.conns)]
        failures = []

        def client(c):
            conn = http.client.HTTPConnection(LOCALHOST, port, timeout=30)
            for body in bodies[c]:
                conn.request("POST", f"/ingest/pump-{c}", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status != 202:
                    failures.append(r.status)
                    return
            conn.close()

        cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(args.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked = time.monotonic() - t0
        if failures:
            sys.exit(f"ingest answered {failures[0]}")
        ok = wait_until(lambda: edge()["sinks"][0]["queued_records"] == total
                        and edge()["pipelines"][0]["ingest_log"]["frames"] == 0, timeout=120, interval=0.02)
        fill, fill_cpu = time.monotonic() - t0, cpu_seconds(gw.pid) - cpu0
        if not ok:
            sys.exit(f"the queue holds {edge()['sinks'][0]['queued_records']} of {total}")
        sink = edge()["sinks"][0]
        print(f"fill: {total / fill:.0f} readings/s (wall; all acknowledged after {acked:.2f} s), "
              f"{fill_cpu * 1e9 / total:.0f} ns gateway CPU per reading, "
              f"{sink['queued_bytes'] / 1e6:.0f} MB queued")

        cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
        rx.status = 200
        ok = wait_until(lambda: rx.received >= total, timeout=600, interval=0.02)
        drain, drain_cpu = time.monotonic() - t0, cpu_seconds(gw.pid) - cpu0
        if not ok:
            sys.exit(f"received {rx.received} of {total}")
        if rx.errors or rx.received != total or any(v != per_conn for v in rx.next.values()):
            sys.exit(f"out of order or lost: {rx.errors} received {rx.received}")
        print(f"drain: {total / drain:.0f} readings/s (wall), {drain_cpu * 1e9 / total:.0f} ns gateway CPU per "
              f"reading, every reading once and in order")
    os.system(f"rm -rf {data}")


if __name__ == "__main__":
    main()
