"""Protocol upgrades (WebSocket): the 101 and the bytes after it pass through both ways."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, RawServer, Upstream, free_port, read_request_head  # noqa: E402


def ws_upstream(sock, server):
    head = read_request_head(sock)
    with server.lock:
        server.received.append(head)
    request, _, rest = head.partition(b"\r\n\r\n")
    if b"upgrade: websocket" not in request.lower():
        sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        return
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: fake\r\n\r\nhello-from-upstream|")
    sock.settimeout(5)
    pending = rest
    while True:
        if pending:
            sock.sendall(b"echo:" + pending)
            pending = b""
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        pending = data


class UpgradeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = RawServer(ws_upstream).__enter__()
        cls.plain = Upstream().__enter__()
        cls.port = free_port()
        cls.gw = Gateway("""workers: 1
listeners:
  - name: public
    address: 127.0.0.1:%d
upstreams:
  - name: ws
    targets: [ "127.0.0.1:%d" ]
  - name: plain
    targets: [ "127.0.0.1:%d" ]
routes:
  - name: guarded
    match: { path_prefix: /guarded }
    upstream: ws
    filters:
      - output_guard: { deny: [ "(?i)hello-from-upstream" ] }
  - name: prompted
    match: { path_prefix: /prompted }
    upstream: ws
    filters:
      - prompt_guard: { deny: [ "(?i)early-bytes" ] }
  - { name: ws, match: { path_prefix: /ws }, upstream: ws, idle_timeout: 2s }
  - { name: plain, match: { path_prefix: / }, upstream: plain }
""" % (cls.port, cls.ws.port, cls.plain.port))
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.ws.__exit__(None, None, None)
        cls.plain.__exit__(None, None, None)

    def read_until(self, s, needle, timeout=3):
        s.settimeout(timeout)
        buf = b""
        deadline = time.time() + timeout
        while needle not in buf and time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf

    def test_websocket_tunnel_both_ways(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\nearly-bytes")
        got = self.read_until(s, b"echo:early-bytes")
        self.assertTrue(got.startswith(b"HTTP/1.1 101 "), got[:200])
        head = got.split(b"\r\n\r\n", 1)[0].lower()
        self.assertIn(b"upgrade: websocket", head)
        self.assertIn(b"connection: upgrade", head)
        self.assertNotIn(b"content-length", head)
        self.assertNotIn(b"transfer-encoding", head)
        self.assertIn(b"hello-from-upstream|", got)
        self.assertIn(b"echo:early-bytes", got)
        for i in range(5):
            msg = b"frame-%d" % i
            s.sendall(msg)
            self.assertIn(b"echo:" + msg, self.read_until(s, b"echo:" + msg))
        s.close()
        upstream_head = self.ws.received[-1].lower()
        self.assertIn(b"upgrade: websocket", upstream_head)
        self.assertIn(b"connection: upgrade", upstream_head)
        self.assertIn(b"sec-websocket-key: abc", upstream_head)

    def test_routes_that_read_bodies_take_no_upgrade(self):
        # A tunnel would carry the upstream's denied words (output_guard) and the client's
        # (prompt_guard) past the filters: refused before the upstream sees anything.
        for path in (b"/guarded/x", b"/prompted/x"):
            before = len(self.ws.received)
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\nearly-bytes")
            got = b""
            s.settimeout(3)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break  # the connection is closed after the refusal
                got += chunk
            s.close()
            self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got[:200])
            self.assertIn(b"upgrade_refused", got)
            self.assertNotIn(b"hello-from-upstream", got)
            self.assertNotIn(b"echo:", got)
            self.assertEqual(len(self.ws.received), before, "the upstream was reached")
        # Without Upgrade the guarded route answers as usual (the upstream wants one: 426).
        self.assertEqual(self.gw.request("GET", "/guarded/x").status, 426)

    def test_upgrade_refused_by_upstream_is_plain_http(self):
        r = self.gw.request("GET", "/ws/x", headers={"Upgrade": "h2c", "Connection": "Upgrade"})
        self.assertEqual(r.status, 426)

    def test_idle_tunnel_is_closed(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        self.assertIn(b"101", self.read_until(s, b"hello-from-upstream|"))
        s.settimeout(6)
        start = time.time()
        rest = b""
        try:
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                rest += chunk
        except socket.timeout:
            self.fail("idle tunnel was not closed")
        self.assertLess(time.time() - start, 5.0)
        s.close()
        self.assertEqual(self.gw.request("GET", "/").status, 200)

    def test_upgrade_without_101_request_for_plain_upstream(self):
        # A normal upstream ignores the Upgrade header and answers 200; the connection stays HTTP.
        r = self.gw.request("GET", "/plain", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
