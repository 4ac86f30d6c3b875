#!/usr/bin/env python3
"""Edge memory soak (issue 11: 10,000 series with windows and detectors under 100 MB RSS,
flat over a one-hour soak).

Starts build/ganglion with HTTP ingest → filter → 1 s tumbling windows by device and metric
(count, mean, min, max, rms) → robust z-score on each window's rms (history 120) → an HTTP
sink (a receiver that reads and discards). Every second a client POSTs one reading for each
of SERIES devices (line protocol, timestamped now); every SAMPLE seconds the gateway's RSS is
read from /proc. Prints the samples, then RSS after the detectors' histories filled (120
windows), the peak, the last, and the growth per hour fitted over the second half.

    python3 bench/edge_soak.py [--series 10000] [--duration 3600] [--sample 10]
"""

import argparse
import http.client
import http.server
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("GANGLION_BIN", os.path.join(HERE, "..", "build", "ganglion"))
from harness import LOCALHOST, Gateway, free_port, render  # noqa: E402

TOKEN = "Soak-Adm1n-T0ken-0123456789abcdef"
CONFIG = """
listeners:
  - { name: public, address: "@HOST@:@PORT@" }
admin: { address: "@HOST@:@ADMIN@", token: @TOKEN@ }
access_log: { enabled: false }
connectors:
  - { name: plant, kind: http, metric: vibration }
pipelines:
  - name: pump-health
    from: [ plant ]
    stages:
      - filter: "value > -1000 and value < 1000"
      - window: { tumbling: 1s, by: [ device, metric ], aggregates: [ count, mean, min, max, rms ] }
      - detect: { name: vib, method: robust_zscore, field: rms, metric: vibration, history: 120, threshold: 6 }
    to: [ uplink ]
sinks:
  - name: uplink
    kind: http
    url: http://@HOST@:@SINK@/ingest
    batch: { max_records: 2000, max_delay: 200ms }
    queue: { max_bytes: 16MiB }
edge: { data_dir: "@DATA@" }
routes:
  - { name: ingest, match: { path_prefix: /ingest/ }, ingest: plant }
"""


class Discard(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    received = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Discard.received += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_hour(points):
    """Least-squares slope of (seconds, MB) in MB per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 3600 * sum((t - mx) * (v - my) for t, v in points) / den if den else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--duration", type=int, default=3600)
    ap.add_argument("--sample", type=int, default=10)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Discard)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = f"/tmp/ganglion-soak-{os.getpid()}"
    port, admin = free_port(), free_port()
    text = render(CONFIG, host=LOCALHOST, port=port, admin=admin, token=TOKEN, sink=server.server_address[1],
                  data=data)
    samples = []
    with Gateway(text, admin_port=admin, port=port) as gw:
        conn = http.client.HTTPConnection(LOCALHOST, port, timeout=30)
        t0 = time.monotonic()
        next_sample = 0
        second = 0
        while time.monotonic() - t0 < args.duration:
            now_ns = time.time_ns()
            body = "\n".join("vibration,device=pump-%d value=%.4f %d" % (d, 0.1 + (d % 7) * 0.01 + (second % 3) * 0.001,
                                                                          now_ns) for d in range(args.series))
            conn.request("POST", "/ingest/x", body=body.encode(), headers={"Content-Type": "text/plain"})
            r = conn.getresponse()
            r.read()
            if r.status != 202:
                sys.exit(f"ingest answered {r.status}")
            elapsed = time.monotonic() - t0
            if elapsed >= next_sample:
                samples.append((elapsed, rss_mb(gw.pid)))
                print("t=%5.0f s  rss=%.1f MB" % samples[-1], flush=True)
                next_sample += args.sample
            second += 1
            time.sleep(max(0.0, t0 + second - time.monotonic()))
        edge = gw.admin("GET", "/edge", token=TOKEN).json()
    os.system(f"rm -rf {data}")
    warm = [v for t, v in samples if t >= 125] or [samples[-1][1]]
    half = [(t, v) for t, v in samples if t >= args.duration / 2]
    p = edge["pipelines"][0]
    print("series %d, %.0f s: rss after warm-up %.1f MB, peak %.1f MB, last %.1f MB, growth over the second half "
          "%+.1f MB/h; readings_in %d, sink delivered %d, dropped %d (goal: < 100 MB, flat)"
          % (args.series, samples[-1][0], warm[0], max(v for _, v in samples), samples[-1][1], slope_per_hour(half),
             p["readings_in"], edge["sinks"][0]["delivered"], edge["sinks"][0]["dropped"]))


if __name__ == "__main__":
    main()
