"""Upstream resilience: active health checks, passive outlier ejection, retries on connect
failure and on 502/503/504 for safe requests, consistent hashing, no-healthy-upstream."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, RawServer, Upstream, error_json, free_port,  # noqa: E402
                     read_request_head, wait_until)

TOKEN = "upstreams-test-token"


def always(status):
    """A raw upstream answering every request on a connection with `status`."""
    def handler(sock, server):
        while True:
            head = read_request_head(sock)
            if not head:
                return
            with server.lock:
                server.received.append(head)
            body = b'{"from":"bad"}'
            sock.sendall(b"HTTP/1.1 %d Oops\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (status, len(body), body))
    return handler


def closed_port():
    return free_port()  # nothing listens there


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return float(m.group(1)) if m else None


class UpstreamsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.good = Upstream("good").__enter__()
        cls.good2 = Upstream("good2").__enter__()
        cls.bad500 = RawServer(always(500)).__enter__()
        cls.bad503 = RawServer(always(503)).__enter__()
        cls.dead = closed_port()
        cls.port = free_port()
        cls.admin_port = free_port()
        cfg = """workers: 1
listeners:
  - name: public
    address: 127.0.0.1:{port}
upstreams:
  - name: checked
    targets: [ "127.0.0.1:{good}", "127.0.0.1:{bad500}" ]
    health_check: {{ path: /healthz, interval: 100ms, timeout: 200ms, unhealthy_threshold: 2, healthy_threshold: 1 }}
  - name: ejecting
    targets: [ "127.0.0.1:{good}", "127.0.0.1:{dead}" ]
    outlier: {{ consecutive_failures: 1, base_ejection: 30s }}
  - name: retrying
    targets: [ "127.0.0.1:{bad503}", "127.0.0.1:{good}" ]
    outlier: {{ consecutive_failures: 0 }}
  - name: all-down
    targets: [ "127.0.0.1:{dead}" ]
    health_check: {{ interval: 100ms, timeout: 100ms, unhealthy_threshold: 1 }}
  - name: hashed
    balance: hash
    hash_on: header:x-user
    targets: [ "127.0.0.1:{good}", "127.0.0.1:{good2}" ]
  - name: least
    balance: least_request
    targets: [ "127.0.0.1:{good}", "127.0.0.1:{good2}" ]
routes:
  - {{ name: checked, match: {{ path_prefix: /checked }}, upstream: checked }}
  - {{ name: ejecting, match: {{ path_prefix: /ejecting }}, upstream: ejecting, retries: 1 }}
  - {{ name: retrying, match: {{ path_prefix: /retrying }}, upstream: retrying, retries: 1 }}
  - {{ name: down, match: {{ path_prefix: /down }}, upstream: all-down }}
  - {{ name: hashed, match: {{ path_prefix: /hashed }}, upstream: hashed }}
  - {{ name: least, match: {{ path_prefix: /least }}, upstream: least }}
admin:
  address: 127.0.0.1:{admin}
  token: {token}
""".format(port=cls.port, admin=cls.admin_port, token=TOKEN, good=cls.good.port, good2=cls.good2.port,
           bad500=cls.bad500.port, bad503=cls.bad503.port, dead=cls.dead)
        cls.gw = Gateway(cfg, admin_port=cls.admin_port)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        for s in (cls.good, cls.good2, cls.bad500, cls.bad503):
            s.__exit__(None, None, None)

    def metrics(self):
        return self.gw.admin("GET", "/metrics", token=TOKEN).text

    def test_failing_health_checks_take_target_out(self):
        target = "127.0.0.1:%d" % self.bad500.port
        self.assertTrue(wait_until(
            lambda: metric(self.metrics(), "ganglion_upstream_target_up", upstream="checked", target=target) == 0,
            timeout=5), "the target answering 500 to health checks stayed in rotation")
        self.assertEqual(metric(self.metrics(), "ganglion_upstream_target_up", upstream="checked",
                                target="127.0.0.1:%d" % self.good.port), 1)
        statuses = {self.gw.request("GET", "/checked/x").status for _ in range(10)}
        self.assertEqual(statuses, {200})
        self.assertIn("failed 2 health checks", self.gw.log_text())

    def test_connect_failure_retried_then_target_ejected(self):
        statuses = [self.gw.request("GET", "/ejecting/x").status for _ in range(6)]
        self.assertEqual(statuses, [200] * 6)
        dead = "127.0.0.1:%d" % self.dead
        m = self.metrics()
        self.assertEqual(metric(m, "ganglion_upstream_target_up", upstream="ejecting", target=dead), 0)
        self.assertEqual(metric(m, "ganglion_upstream_target_ejections_total", upstream="ejecting", target=dead), 1)

    def test_503_retried_for_get_not_for_post_with_body(self):
        before = len(self.bad503.received)
        statuses = [self.gw.request("GET", "/retrying/x").status for _ in range(4)]
        self.assertEqual(statuses, [200] * 4)
        self.assertGreater(len(self.bad503.received), before, "the 503 target was never tried")
        posts = [self.gw.request("POST", "/retrying/x", body=b"data").status for _ in range(4)]
        self.assertIn(503, posts, "a POST with a body must not be replayed to another target")

    def test_no_healthy_target_gives_503(self):
        def down():
            r = self.gw.request("GET", "/down")
            return r.status == 503 and error_json(r.body)["type"] == "no_healthy_upstream"
        self.assertTrue(wait_until(down, timeout=5))

    def test_consistent_hash_sticks_per_key(self):
        seen = {}
        # Ports (hence ring positions) change per run: 32 keys make "all on one target" a
        # 1-in-2^31 event rather than the 1-in-32 that six keys gave.
        for user in ("user-%d" % i for i in range(32)):
            ups = {self.gw.request("GET", "/hashed", headers={"x-user": user}).headers.get("x-upstream")
                   for _ in range(3)}
            self.assertEqual(len(ups), 1, "user %s moved between targets" % user)
            seen[user] = ups.pop()
        self.assertEqual(set(seen.values()), {"good", "good2"}, "every key hashed to one target")

    def test_least_request_spreads_sequential_load(self):
        ups = [self.gw.request("GET", "/least").headers.get("x-upstream") for _ in range(30)]
        self.assertEqual(set(ups), {"good", "good2"})


if __name__ == "__main__":
    unittest.main()
