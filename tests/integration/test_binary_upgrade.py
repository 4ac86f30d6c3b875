"""Binary upgrade: SIGUSR2 starts a successor on the same listening sockets; the old process
drains and exits; no request fails meanwhile."""

import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, Receiver, Upstream, free_port, http_request, wait_until  # noqa: E402

TOKEN = "upgrade-test-token"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class BinaryUpgradeTest(unittest.TestCase):
    def upgrade(self, gw, old_pid, timeout):
        """SIGUSR2 to the old process; it must exit cleanly once its successor is ready."""
        os.kill(old_pid, signal.SIGUSR2)
        self.assertTrue(wait_until(lambda: gw.proc.poll() is not None, timeout=timeout),
                        "the old process did not exit after its successor was ready")
        self.assertEqual(gw.proc.returncode, 0)

    def test_usr2_hands_sockets_to_successor_without_failures(self):
        with Upstream() as up:
            port, admin = free_port(), free_port()
            cfg = """workers: 2
listeners:
  - name: public
    address: 127.0.0.1:%d
upstreams:
  - name: backend
    targets: [ "127.0.0.1:%d" ]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: backend
admin:
  address: 127.0.0.1:%d
  token: %s
""" % (port, up.port, admin, TOKEN)
            gw = Gateway(cfg, admin_port=admin)
            gw.start()
            new_pid = None
            try:
                old_pid = json.loads(gw.admin("GET", "/ready", token=TOKEN).body)["pid"]
                self.assertEqual(old_pid, gw.pid)
                stop = threading.Event()
                results = {"ok": 0, "failed": []}

                def load():
                    while not stop.is_set():
                        try:
                            r = http_request(port, "GET", "/during-upgrade", timeout=5)
                            if r.status == 200:
                                results["ok"] += 1
                            else:
                                results["failed"].append(r.status)
                        except Exception as e:  # a refused or reset connection is a failure
                            results["failed"].append(repr(e))

                threads = [threading.Thread(target=load) for _ in range(3)]
                for t in threads:
                    t.start()
                time.sleep(0.3)
                self.upgrade(gw, old_pid, timeout=15)
                time.sleep(0.3)
                stop.set()
                for t in threads:
                    t.join()
                ready = json.loads(gw.admin("GET", "/ready", token=TOKEN).body)
                new_pid = ready["pid"]
                self.assertNotEqual(new_pid, old_pid)
                self.assertTrue(ready["ready"])
                self.assertEqual(results["failed"], [])
                self.assertGreater(results["ok"], 20)
                self.assertEqual(http_request(port, "GET", "/after").status, 200)
                log = gw.log_text()
                self.assertIn("binary upgrade: pid %d is serving" % new_pid, log)
            finally:
                if new_pid:
                    os.kill(new_pid, signal.SIGTERM)
                    wait_until(lambda: not pid_alive(new_pid), timeout=10)
                gw.stop()

    def test_failed_successor_keeps_old_process(self):
        with Upstream() as up:
            port, admin = free_port(), free_port()
            cfg = """listeners: [ { name: p, address: "127.0.0.1:%d" } ]
upstreams: [ { name: b, targets: [ "127.0.0.1:%d" ] } ]
routes: [ { name: all, upstream: b } ]
admin: { address: "127.0.0.1:%d", token: %s }
""" % (port, up.port, admin, TOKEN)
            gw = Gateway(cfg, admin_port=admin)
            gw.start()
            try:
                gw.reload_file("this: is: not: valid: yaml: [")  # the successor reads this and fails
                os.kill(gw.pid, signal.SIGUSR2)
                self.assertTrue(wait_until(lambda: "did not become ready" in gw.log_text(), timeout=10))
                self.assertIsNone(gw.proc.poll())
                self.assertEqual(http_request(port, "GET", "/").status, 200)
            finally:
                gw.stop()

    def test_usr2_hands_the_edge_over_and_loses_no_accepted_reading(self):
        # The successor cannot open edge.data_dir while the old process holds it, and the old
        # one lets go only as it drains, once the successor is ready: the successor serves at
        # once, answers ingest 503 + Retry-After: 1 until it has the edge, then takes it over.
        # (Before, the successor gave up after 5 s and the old process kept serving.)
        with Receiver() as rx:
            port, admin = free_port(), free_port()
            cfg = """workers: 2
listeners: [ { name: public, address: "127.0.0.1:%d" } ]
admin: { address: "127.0.0.1:%d", token: %s }
connectors:
  - { name: lab, kind: http, metric: temp }
sinks:
  - name: uplink
    kind: http
    url: http://127.0.0.1:%d/ingest
    batch: { max_records: 100, max_delay: 50ms }
    queue: { durable: true }
pipelines:
  - { name: raw, from: [ lab ], stages: [], to: [ uplink ] }
routes:
  - { name: ingest, match: { path_prefix: /ingest/ }, ingest: lab }
edge: { data_dir: ./edge-data }
""" % (port, admin, TOKEN, rx.port)
            gw = Gateway(cfg, admin_port=admin)
            gw.start()
            new_pid = None
            try:
                old_pid = gw.pid
                stop = threading.Event()
                results = {"accepted": [], "starting": 0, "failed": []}

                def load():
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            r = http_request(port, "POST", "/ingest/dev-1", body=str(n).encode(),
                                             headers={"Content-Type": "application/json"}, timeout=5)
                        except Exception as e:  # a refused or reset connection is a failure
                            results["failed"].append(repr(e))
                            continue
                        if r.status == 202:
                            results["accepted"].append(n)
                        elif r.status == 503 and r.headers.get("retry-after") == "1" and \
                                r.json()["error"]["type"] == "edge_starting":
                            results["starting"] += 1
                            time.sleep(0.02)
                        else:
                            results["failed"].append((r.status, r.body[:200]))

                loader = threading.Thread(target=load)
                loader.start()
                time.sleep(0.3)
                self.upgrade(gw, old_pid, timeout=20)
                edge = lambda: gw.admin("GET", "/edge", token=TOKEN).json()  # noqa: E731
                self.assertTrue(wait_until(lambda: edge()["running"], timeout=10), edge())
                time.sleep(0.3)
                stop.set()
                loader.join()
                new_pid = json.loads(gw.admin("GET", "/ready", token=TOKEN).body)["pid"]
                self.assertNotEqual(new_pid, old_pid)
                self.assertEqual(results["failed"], [])
                self.assertGreater(len(results["accepted"]), 10)
                if os.environ.get("VERBOSE"):
                    print("accepted %d, 503 edge_starting %d" % (len(results["accepted"]), results["starting"]))
                # Every reading answered 202, by either process, reaches the receiver.
                accepted = set(results["accepted"])
                self.assertTrue(wait_until(lambda: accepted <= {r["value"] for r in rx.records()}, timeout=10),
                                sorted(accepted - {r["value"] for r in rx.records()})[:20])
                log = gw.log_text()
                self.assertIn("edge: waiting for the previous process to let go of", log)
                self.assertIn("let go of by the previous process: the edge starts", log)
                self.assertNotIn("in memory", log)  # no queue fell back to memory
                sink = edge()["sinks"][0]
                self.assertTrue(sink["durable"], sink)
            finally:
                if new_pid:
                    os.kill(new_pid, signal.SIGTERM)
                    wait_until(lambda: not pid_alive(new_pid), timeout=10)
                gw.stop()


if __name__ == "__main__":
    unittest.main()
