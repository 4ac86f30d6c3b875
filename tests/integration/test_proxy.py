"""Basic reverse-proxy behaviour through the gateway in front of an echo upstream."""

import hashlib
import http.client
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SingleUpstreamCase, Gateway, Upstream, free_port, http_request, keepalive_request,  # noqa: E402
                     parse_responses, raw_exchange, raw_request, render)

CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
upstreams:
  - name: backend
    targets: [ "127.0.0.1:@UP@" ]
    connect_timeout: 1s
routes:
  - name: all
    match: { path_prefix: / }
    upstream: backend
    timeout: 5s
"""


class ProxyTest(SingleUpstreamCase):
    CONFIG = CONFIG

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, **kw)

    def assertEcho(self, resp, method, path):
        self.assertEqual(resp.status, 200, resp)
        doc = resp.json()
        self.assertEqual(doc["method"], method)
        self.assertEqual(doc["path"], path)
        return doc

    # -- basics --------------------------------------------------------------
    def test_get_path_and_query(self):
        r = self.get("/foo/bar?x=1&y=two")
        doc = self.assertEcho(r, "GET", "/foo/bar?x=1&y=two")
        self.assertEqual(r.headers.get("x-upstream"), "backend")
        self.assertEqual(doc["body_length"], 0)

    def test_percent_encoded_path_is_passed_verbatim(self):
        r = self.get("/a%20b/c%2Fd?q=%41")
        self.assertEcho(r, "GET", "/a%20b/c%2Fd?q=%41")

    def test_host_header_passed_through(self):
        r = self.get("/host", headers={"Host": "myhost.test"})
        doc = self.assertEcho(r, "GET", "/host")
        self.assertEqual(doc["headers"]["host"], "myhost.test")

    def test_forwarded_headers(self):
        r = self.get("/fwd")
        doc = self.assertEcho(r, "GET", "/fwd")
        self.assertIn("127.0.0.1", doc["headers"].get("x-forwarded-for", ""))
        self.assertEqual(doc["headers"].get("x-forwarded-proto"), "http")

    def test_custom_headers_passed_both_ways(self):
        r = self.get("/hdr", headers={"X-Custom-Req": "abc", "X-Reply-Header": "x-from-up=42"})
        doc = self.assertEcho(r, "GET", "/hdr")
        self.assertEqual(doc["headers"].get("x-custom-req"), "abc")
        self.assertEqual(r.headers.get("x-from-up"), "42")

    def test_upstream_status_passed_through(self):
        for code in (201, 204, 404, 500, 503):
            r = self.get("/status/%d" % code)
            self.assertEqual(r.status, code)
            if code != 204:
                self.assertEqual(r.json(), {"status": code})
            else:
                self.assertEqual(r.body, b"")

    # -- request bodies ------------------------------------------------------
    def test_post_content_length(self):
        body = b"hello gateway body"
        r = http_request(self.port, "POST", "/post", body=body,
                         headers={"Content-Type": "text/plain"})
        doc = self.assertEcho(r, "POST", "/post")
        self.assertEqual(doc["body"], body.decode())
        self.assertEqual(doc["headers"].get("content-type"), "text/plain")

    def test_small_body_goes_upstream_with_the_head_in_one_write(self):
        # A body that came in the same read as its head is written upstream together with the
        # head, in one send (strace shows the buffers of each), not in a second one. Each
        # request is sent in one piece, so the gateway reads head and body together.
        trace = os.path.join(self.gw.dir, "sends.strace")
        raw_request(self.port, b"POST /warm HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}", expect=1)
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=sendmsg,sendto,write,writev", "-o", trace,
                                   "-p", str(self.gw.proc.pid)], stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)  # attached
            for i in range(40):
                body = b'{"n": %d, "pad": "%s"}' % (i, b"x" * 200)
                request = (b"POST /one-write HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body)) + body
                resps = parse_responses(raw_request(self.port, request, expect=1))
                self.assertEqual(resps[0][0], 200)
            time.sleep(0.2)
        finally:
            tracer.terminate()
            tracer.wait()
        with open(trace) as f:
            heads = [line for line in f if "POST /one-write" in line]
        self.assertEqual(len(heads), 40, heads[:3])
        alone = [line for line in heads if '{\\"n\\": ' not in line]
        self.assertEqual(alone, [], "heads sent without their body: %d\n%s" % (len(alone), "".join(alone)[:2000]))

    def test_post_chunked(self):
        parts = [b"first-", b"second-", b"third"]
        r = http_request(self.port, "POST", "/chunk", body=iter(parts), chunked=True)
        doc = self.assertEcho(r, "POST", "/chunk")
        self.assertEqual(doc["body"], "first-second-third")

    def test_post_chunked_raw_with_extension_and_trailer(self):
        req = (b"POST /rawchunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        resps = parse_responses(raw_request(self.port, req, expect=1))
        self.assertEqual(len(resps), 1)
        self.assertEqual(resps[0][0], 200)
        import json
        self.assertEqual(json.loads(resps[0][2])["body"], "hello world")

    def test_post_1mib_content_length(self):
        body = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
        r = http_request(self.port, "POST", "/big-cl", body=body, timeout=10)
        doc = self.assertEcho(r, "POST", "/big-cl")
        self.assertEqual(doc["body_length"], len(body))
        self.assertEqual(doc["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_post_1mib_chunked(self):
        body = bytes((i * 13 + 1) % 251 for i in range(1 << 20))
        pieces = [body[i:i + 10000] for i in range(0, len(body), 10000)]
        r = http_request(self.port, "POST", "/big-chunked", body=iter(pieces), chunked=True,
                         timeout=10)
        doc = self.assertEcho(r, "POST", "/big-chunked")
        self.assertEqual(doc["body_length"], len(body))
        self.assertEqual(doc["body_sha256"], hashlib.sha256(body).hexdigest())

    # -- response bodies -----------------------------------------------------
    def test_chunked_reply(self):
        r = self.get("/chunked/7")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"".join(b"chunk-%d\n" % i for i in range(7)))

    def test_big_reply(self):
        n = 3 * 1024 * 1024 + 17
        r = self.get("/big/%d" % n, timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), n)
        self.assertEqual(r.body, b"x" * n)

    def test_sse_streams_incrementally(self):
        n = 10
        before = len(self.up.sse_send_times)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            t0 = time.monotonic()
            s.sendall(b"GET /sse/%d HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n"
                      b"Connection: close\r\n\r\n" % n)
            buf = b""
            t_first = None
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if t_first is None and b"data: 0\n" in buf:
                    t_first = time.monotonic()
        finally:
            s.close()
        self.assertIsNotNone(t_first, buf)
        resps = parse_responses(buf)
        self.assertEqual(len(resps), 1, buf)
        status, headers, body = resps[0]
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/event-stream"))
        self.assertEqual(body, b"".join(b"data: %d\n\n" % i for i in range(n)))
        self.assertTrue(wait_for(lambda: len(self.up.sse_send_times) > before))
        last_sent = self.up.sse_send_times[-1][-1]
        # the upstream needs ~450 ms to send all events; the first must not wait for them
        self.assertLess(t_first, last_sent - 0.2,
                        "first event after %.3fs, last sent at %.3fs"
                        % (t_first - t0, last_sent - t0))
        self.assertLess(t_first - t0, 0.3)

    # -- connection management ----------------------------------------------
    def test_keepalive_50_requests_one_connection(self):
        conns_before = self.up.connections
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.connect()
            first_sock = conn.sock
            for i in range(50):
                r = keepalive_request(conn, "GET", "/ka/%d" % i)
                self.assertEcho(r, "GET", "/ka/%d" % i)
                self.assertIs(conn.sock, first_sock, "gateway closed the client connection")
        finally:
            conn.close()
        self.assertLessEqual(self.up.connections - conns_before, 5,
                             "upstream connections are not pooled")

    def test_upstream_pool_shared_across_client_connections(self):
        conns_before = self.up.connections
        for i in range(20):
            r = self.get("/pool/%d" % i, headers={"Connection": "close"})
            self.assertEcho(r, "GET", "/pool/%d" % i)
        self.assertLessEqual(self.up.connections - conns_before, 5)

    def test_pipelined_requests_answered_in_order(self):
        req = (b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"POST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
               b"GET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data, closed = raw_exchange(self.port, req, read_timeout=3)
        resps = parse_responses(data)
        self.assertEqual([r[0] for r in resps], [200, 200, 200], data[:500])
        import json
        docs = [json.loads(r[2]) for r in resps]
        self.assertEqual([d["path"] for d in docs], ["/p1", "/p2", "/p3"])
        self.assertEqual(docs[1]["body"], "abc")
        self.assertTrue(closed, "gateway kept the connection after Connection: close")

    def test_connection_close_honoured(self):
        data, closed = raw_exchange(
            self.port, b"GET /cc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 3)
        resps = parse_responses(data)
        self.assertEqual(len(resps), 1)
        self.assertEqual(resps[0][0], 200)
        self.assertTrue(closed)

    def test_head_has_no_body(self):
        r = http_request(self.port, "HEAD", "/big/1000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-length"), "1000")
        self.assertEqual(r.body, b"")
        # on the wire: a pipelined GET right after HEAD must parse cleanly
        req = (b"HEAD /big/1000 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /after-head HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = raw_request(self.port, req, read_timeout=3)
        resps = parse_responses(data, methods=["HEAD", "GET"])
        self.assertEqual(len(resps), 2, data[:600])
        self.assertEqual(resps[0][0], 200)
        self.assertEqual(resps[0][2], b"")
        self.assertEqual(resps[1][0], 200)
        self.assertIn(b'"/after-head"', resps[1][2])

    def test_upstream_closing_connection_is_handled(self):
        for path in ("/close", "/close-silent"):
            for i in range(3):
                r = self.get("%s?i=%d" % (path, i))
                self.assertEcho(r, "GET", "%s?i=%d" % (path, i))
                time.sleep(0.05)
                r = self.get("/after-close")
                self.assertEcho(r, "GET", "/after-close")

    # -- hop-by-hop ----------------------------------------------------------
    def test_hop_by_hop_request_headers_not_forwarded(self):
        r = self.get("/hop", headers={
            "Connection": "keep-alive, X-Custom-Hop",
            "X-Custom-Hop": "1",
            "Keep-Alive": "timeout=5",
            "X-End-To-End": "yes",
        })
        doc = self.assertEcho(r, "GET", "/hop")
        h = doc["headers"]
        self.assertNotIn("x-custom-hop", h)
        self.assertNotIn("keep-alive", h)
        self.assertNotIn("x-custom-hop", h.get("connection", "").lower())
        self.assertEqual(h.get("x-end-to-end"), "yes")

    def test_hop_by_hop_response_headers_not_forwarded(self):
        r = self.get("/hopresp", headers={"X-Reply-Header": "Connection=x-resp-hop",
                                          "x-reply-header": "X-Resp-Hop=1"})
        self.assertEcho(r, "GET", "/hopresp")
        self.assertNotIn("x-resp-hop", r.headers)
        self.assertNotIn("x-resp-hop", r.headers.get("connection", "").lower())


LB_CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
upstreams:
  - name: pair
    targets: [ { address: "127.0.0.1:@UP1@", weight: 1 }, { address: "127.0.0.1:@UP2@", weight: 3 } ]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: pair
"""


class LoadBalanceTest(unittest.TestCase):
    def test_weighted_targets_share_traffic(self):
        with Upstream("one") as u1, Upstream("two") as u2:
            port = free_port()
            with Gateway(render(LB_CONFIG, port=port, up1=u1.port, up2=u2.port)):
                seen = {"one": 0, "two": 0}
                for i in range(80):
                    r = http_request(port, "GET", "/lb/%d" % i)
                    self.assertEqual(r.status, 200)
                    seen[r.headers["x-upstream"]] += 1
                self.assertEqual(u1.request_count + u2.request_count, 80)
                # weight 1 : 3 -> about 20 : 60
                self.assertGreaterEqual(seen["one"], 8, seen)
                self.assertGreater(seen["two"], 2 * seen["one"], seen)


def wait_for(pred, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


if __name__ == "__main__":
    unittest.main()
