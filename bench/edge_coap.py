#!/usr/bin/env python3
"""CoAP ingest rate: one device (a client socket) sending confirmable POSTs one after the
other, each waiting for its 2.04, to a `coap` connector feeding an HTTP sink (the receiver
answers at once), with and without a durable queue (then every answer waits for the ingest
log's fsync). Prints requests/s and the gateway's CPU time per request.

    GANGLION_BIN=build/ganglion python3 bench/edge_coap.py [seconds]
"""

import os
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from harness import LOCALHOST, Gateway, Receiver, free_port  # noqa: E402


def post(mid, device, payload):
    """A confirmable POST /readings/<device> with Content-Format 50 (json)."""
    head = struct.pack("!BBH", 0x42, 0x02, mid & 0xFFFF) + struct.pack("!H", mid & 0xFFFF)  # TKL 2
    opts = bytes([0xB8]) + b"readings" + bytes([len(device)]) + device.encode() + bytes([0x11, 50])
    return head + opts + b"\xff" + payload.encode()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(durable, seconds):
    udp = free_port(udp=True)
    data = tempfile.mkdtemp(prefix="ganglion-bench-coap-")
    with Receiver() as rx:
        text = """
listeners: [ { name: public, address: "%s:%d" } ]
admin: { address: "%s:%d", token: Bench-Adm1n-T0ken-0123456789 }
connectors: [ { name: field, kind: coap, listen: "%s:%d", metric: temperature } ]
sinks:
  - { name: uplink, kind: http, url: "http://%s:%d/ingest", batch: { max_records: 500, max_delay: 50ms }%s }
pipelines: [ { name: raw, from: [ field ], to: [ uplink ] } ]
access_log: { enabled: false }
edge: { data_dir: %s }
""" % (LOCALHOST, free_port(), LOCALHOST, free_port(), LOCALHOST, udp, LOCALHOST, rx.port,
       ", queue: { durable: true }" if durable else "", data)
        with Gateway(text) as gw:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.connect((LOCALHOST, udp))
            mid, done = 1, 0
            cpu0, t0 = cpu_seconds(gw.proc.pid), time.time()
            while time.time() - t0 < seconds:
                s.send(post(mid, "pump-1", '{"value": %d}' % mid))
                reply = s.recv(2048)
                if reply[1] != 0x44:  # 2.04
                    raise RuntimeError("answered %d.%02d" % (reply[1] >> 5, reply[1] & 0x1F))
                mid += 1
                done += 1
            elapsed = time.time() - t0
            cpu = cpu_seconds(gw.proc.pid) - cpu0
            print("%-8s %7.0f requests/s  %6.1f us CPU per request  (%d requests)" % (
                "durable" if durable else "memory", done / elapsed, cpu / done * 1e6, done))


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    for durable in (False, True):
        run(durable, seconds)
