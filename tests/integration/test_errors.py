"""Upstream failures are mapped to precise gateway error responses."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, RawServer, Upstream, error_json, free_port,  # noqa: E402
                     http_request, parse_responses, raw_exchange, read_request_head, render)

CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
upstreams:
  - name: ok
    targets: [ "127.0.0.1:@OK@" ]
  - name: dead
    targets: [ "127.0.0.1:@DEAD@" ]
    connect_timeout: 300ms
  - name: hang
    targets: [ "127.0.0.1:@HANG@" ]
  - name: garbage
    targets: [ "127.0.0.1:@GARBAGE@" ]
  - name: midclose
    targets: [ "127.0.0.1:@MIDCLOSE@" ]
  - name: slam
    targets: [ "127.0.0.1:@SLAM@" ]
  - name: swallow
    targets: [ "127.0.0.1:@SWALLOW@" ]
routes:
  - name: dead
    match: { path_prefix: /dead }
    upstream: dead
    timeout: 2s
  - name: hang
    match: { path_prefix: /hang }
    upstream: hang
    timeout: 300ms
  - name: garbage
    match: { path_prefix: /garbage }
    upstream: garbage
    timeout: 2s
  - name: midclose
    match: { path_prefix: /midclose }
    upstream: midclose
    timeout: 2s
  - name: slam
    match: { path_prefix: /slam }
    upstream: slam
    timeout: 2s
  - name: swallow
    match: { path_prefix: /swallow }
    upstream: swallow
    timeout: 2s
    retries: 0
  - name: ok
    match: { path_prefix: / }
    upstream: ok
    timeout: 2s
"""


def hang_handler(sock, server):
    read_request_head(sock)
    server.stop_event.wait(10)


def garbage_handler(sock, server):
    read_request_head(sock)
    sock.sendall(b"THIS IS NOT HTTP AT ALL\r\n\x00\x01\x02garbage\r\n\r\n")


def midclose_handler(sock, server):
    read_request_head(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
                 + b"y" * 1000)
    time.sleep(0.1)


def slam_handler(sock, server):
    # close immediately without reading or answering
    pass


def swallow_handler(sock, server):
    # Answers a connection's first request; reads its second (which it may have acted on),
    # then closes without answering.
    for n in (1, 2):
        head = read_request_head(sock)
        if not head:
            return
        with server.lock:
            server.received.append(head.split(b"\r\n", 1)[0].decode())
        if n == 1:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class ErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ok = Upstream("ok").__enter__()
        cls.hang = RawServer(hang_handler).__enter__()
        cls.garbage = RawServer(garbage_handler).__enter__()
        cls.midclose = RawServer(midclose_handler).__enter__()
        cls.slam = RawServer(slam_handler).__enter__()
        cls.swallow = RawServer(swallow_handler).__enter__()
        cls.port = free_port()
        cls.gw = Gateway(render(CONFIG, port=cls.port, ok=cls.ok.port, dead=free_port(),
                                hang=cls.hang.port, garbage=cls.garbage.port,
                                midclose=cls.midclose.port, slam=cls.slam.port,
                                swallow=cls.swallow.port))
        try:
            cls.gw.start()
        except Exception:
            cls._close_servers()
            raise

    @classmethod
    def _close_servers(cls):
        for s in (cls.ok, cls.hang, cls.garbage, cls.midclose, cls.slam, cls.swallow):
            s.__exit__(None, None, None)

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls._close_servers()

    def tearDown(self):
        self.assertTrue(self.gw.alive(), "gateway died; log:\n" + self.gw.log_text())
        r = http_request(self.port, "GET", "/still-ok")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], "/still-ok")

    def swallowed(self, method):
        """On one client connection: a GET the upstream answers (its connection is pooled),
        then `method` without a body, which the upstream reads and leaves unanswered."""
        with self.swallow.lock:
            self.swallow.received.clear()
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/swallow/first")
        r1 = c.getresponse()
        r1.read()
        self.assertEqual(r1.status, 200)
        time.sleep(0.05)
        c.request(method, "/swallow/second", headers={"Content-Length": "0"})
        r2 = c.getresponse()
        body = r2.read()
        c.close()
        with self.swallow.lock:
            seen = [line for line in self.swallow.received if "/swallow/second" in line]
        return r2.status, body, seen

    def test_post_closed_unanswered_on_pooled_connection_is_not_sent_again(self):
        # RFC 9110 9.2.2: a proxy must not retry a non-idempotent request the upstream may have
        # applied; it was sent twice (and answered 200 by the second copy).
        status, body, seen = self.swallowed("POST")
        self.assertEqual(status, 502, body)
        self.assertEqual(error_json(body)["type"], "upstream_closed")
        self.assertEqual(len(seen), 1, seen)

    def test_get_closed_unanswered_on_pooled_connection_is_sent_again(self):
        # The keep-alive race: an idempotent request goes again on a new connection.
        status, body, seen = self.swallowed("GET")
        self.assertEqual(status, 200, body)
        self.assertEqual(len(seen), 2, seen)

    def assertGatewayError(self, r, code, type_):
        self.assertEqual(r.status, code, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        err = error_json(r.body)
        self.assertEqual(err["code"], code)
        self.assertEqual(err["type"], type_)
        self.assertIsInstance(err.get("message"), str)
        self.assertTrue(err["message"])

    def test_connect_refused_is_502(self):
        t0 = time.monotonic()
        r = http_request(self.port, "GET", "/dead/x")
        self.assertGatewayError(r, 502, "upstream_connect_failed")
        self.assertLess(time.monotonic() - t0, 1.5)

    def test_connect_refused_post(self):
        r = http_request(self.port, "POST", "/dead/x", body=b"payload")
        self.assertGatewayError(r, 502, "upstream_connect_failed")

    def test_route_timeout_is_504(self):
        t0 = time.monotonic()
        r = http_request(self.port, "GET", "/hang/x", timeout=5)
        elapsed = time.monotonic() - t0
        self.assertGatewayError(r, 504, "upstream_timeout")
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertLess(elapsed, 1.5)

    def test_garbage_reply_is_502(self):
        r = http_request(self.port, "GET", "/garbage/x")
        self.assertGatewayError(r, 502, "upstream_protocol_error")

    def test_upstream_closes_without_reply_is_502(self):
        r = http_request(self.port, "GET", "/slam/x")
        self.assertEqual(r.status, 502, r)
        err = error_json(r.body)
        self.assertEqual(err["code"], 502)

    def test_upstream_closes_mid_body(self):
        data, closed = raw_exchange(
            self.port, b"GET /midclose/x HTTP/1.1\r\nHost: a\r\n\r\n", read_timeout=3)
        self.assertTrue(closed, "client connection should be closed when the upstream "
                                "response is cut short")
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        # the response must be visibly incomplete (never a complete framed response)
        self.assertEqual(parse_responses(data, eof=False), [], data[:300])
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertLess(len(body), 100000)

    def test_errors_do_not_break_keepalive_for_next_requests(self):
        for path in ("/dead/a", "/garbage/b", "/hang/c"):
            r = http_request(self.port, "GET", path)
            self.assertIn(r.status, (502, 504))
            r = http_request(self.port, "GET", "/fine")
            self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
