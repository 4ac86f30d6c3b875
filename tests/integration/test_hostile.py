"""Hostile clients: malformed requests, limits, slow clients, smuggling, fuzz.

After every test the gateway must still be alive and serve a normal GET."""

import json
import os
import random
import socket
import sys
import struct
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, SingleUpstreamCase, free_port, http_request, parse_responses,  # noqa: E402
                     raw_exchange, render)

CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
    max_uri_bytes: 1024
    max_header_bytes: 4096
    header_timeout: 300ms
    body_timeout: 300ms
    idle_timeout: 5s
upstreams:
  - name: backend
    targets: [ "127.0.0.1:@UP@" ]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: backend
    timeout: 5s
    max_body_bytes: 1000
"""


class HostileTest(SingleUpstreamCase):
    CONFIG = CONFIG

    def tearDown(self):
        self.assertTrue(self.gw.alive(), "gateway died; log:\n" + self.gw.log_text()[-4000:])
        r = http_request(self.port, "GET", "/healthy-after")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], "/healthy-after")

    # -- helpers ---------------------------------------------------------------
    def send(self, data, timeout=2.0):
        """Returns (responses, raw bytes, peer_closed)."""
        raw, closed = raw_exchange(self.port, data, read_timeout=timeout, expect=1)
        return parse_responses(raw), raw, closed

    def assertRejected(self, data, statuses, upstream_must_not_see=None):
        if isinstance(statuses, int):
            statuses = (statuses,)
        before = self.up.request_count
        resps, raw, _ = self.send(data)
        self.assertTrue(resps, "no response; got %r" % raw[:300])
        status, headers, body = resps[0]
        self.assertIn(status, statuses, raw[:500])
        if body and headers.get("content-type", "").startswith("application/json"):
            err = json.loads(body)["error"]
            self.assertEqual(err["code"], status)
        if upstream_must_not_see is not None:
            time.sleep(0.05)
            self.assertNotIn(upstream_must_not_see, self.up.paths())
        return resps, raw, before

    def assertNotForwarded(self, before):
        time.sleep(0.05)
        self.assertEqual(self.up.request_count, before,
                         "rejected request reached the upstream: %r" % self.up.paths()[before:])

    # -- malformed heads -------------------------------------------------------
    def test_garbage_request_line(self):
        _, _, before = self.assertRejected(b"GARBAGE\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_bad_header_line(self):
        _, _, before = self.assertRejected(
            b"GET /bad-header HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_space_before_colon(self):
        self.assertRejected(b"GET /sp HTTP/1.1\r\nHost: a\r\nX-Foo : bar\r\n\r\n", 400)

    # -- RFC 9110/9112 conformance (each class found by an outside probe) ----------
    def test_invalid_host_fields(self):
        for host in (b"h:80/path", b"", b"user@h", b"a.example, b.example", b"h:", b"h:99999", b"[::1", b"h h"):
            _, _, before = self.assertRejected(b"GET /host-check HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 400)
            self.assertNotForwarded(before)

    def test_valid_host_fields_pass(self):
        for host in (b"h", b"h:8080", b"127.0.0.1:1", b"[::1]:80", b"my_host.internal"):
            resps, raw, _ = self.send(b"GET /host-ok HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            self.assertEqual(resps[0][0], 200, (host, raw[:200]))

    def test_absolute_form_is_forwarded_as_origin_form(self):
        resps, raw, _ = self.send(b"GET http://abs.example:81/abs/p?q=1 HTTP/1.1\r\nHost: other\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertEqual(resps[0][0], 200, raw[:300])
        echo = json.loads(resps[0][2])
        self.assertEqual(echo["path"], "/abs/p?q=1")
        self.assertEqual(echo["headers"]["host"], "abs.example:81")
        # userinfo in the authority, and schemes other than http(s), are refused
        self.assertRejected(b"GET http://u@abs.example/ HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        self.assertRejected(b"GET ftp://abs.example/ HTTP/1.1\r\nHost: x\r\n\r\n", 400)

    def test_options_asterisk_is_answered(self):
        before = self.up.request_count
        resps, raw, _ = self.send(b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        status, headers, _ = resps[0]
        self.assertEqual(status, 200, raw[:300])
        self.assertIn("GET", headers.get("allow", ""))
        self.assertNotForwarded(before)
        self.assertRejected(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400)

    def test_obsolete_line_folding_is_refused(self):
        _, _, before = self.assertRejected(
            b"GET /fold HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_whitespace_inside_a_header_name_is_refused(self):
        _, _, before = self.assertRejected(b"GET /ws HTTP/1.1\r\nHost: a\r\nX Foo: bar\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_malformed_request_lines_are_400_not_505(self):
        for line in (b"GET / HTTP/1\r\n", b"GET / HTTP/01.01\r\n", b"GET / HTTP/ 1.1\r\n"):
            self.assertRejected(line + b"Host: a\r\n\r\n", 400)
        self.assertRejected(b"GET / HTTP/1.1\rHost: a\r\r", 400)
        self.assertRejected(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505)  # well formed, not spoken
        self.assertRejected(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505)

    def test_empty_transfer_encoding_with_length_is_refused(self):
        _, _, before = self.assertRejected(
            b"POST /emptyte HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc", 400)
        self.assertNotForwarded(before)

    def test_chunk_data_must_end_with_crlf(self):
        # Any two bytes after a chunk's data were taken as its CRLF: "lo" was skipped, "AB0"
        # read as the next chunk's size, and the pipelined request became body bytes.
        resps, raw, before = self.assertRejected(
            b"POST /crlf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhelloAB0\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400)
        time.sleep(0.05)
        self.assertFalse([p for p in self.up.paths()[before:] if "smuggled" in p or "crlf" in p], self.up.paths())

    def test_transfer_codings_other_than_chunked_are_501(self):
        # Relayed as plain chunked, "gzip, chunked" would hand the upstream compressed bytes as the body.
        _, _, before = self.assertRejected(
            b"POST /gz2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501)
        self.assertNotForwarded(before)

    def test_fragment_in_target_is_refused(self):
        for target in (b"/app/x#frag", b"http://h/secret/x#f"):
            _, _, before = self.assertRejected(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n", 400)
            self.assertNotForwarded(before)

    def test_underscore_headers_are_dropped(self):
        resps, raw, _ = self.send(b"POST /under HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent_Length: 9\r\n"
                                  b"Transfer_Encoding: chunked\r\nX_Real_IP: 6.6.6.6\r\nConnection: close\r\n\r\nok")
        self.assertEqual(resps[0][0], 200, raw[:300])
        echo = json.loads(resps[0][2])
        for name in ("content_length", "transfer_encoding", "x_real_ip"):
            self.assertNotIn(name, echo["headers"])
        self.assertEqual(echo["body"], "ok")

    def test_underscore_headers_kept_when_the_listener_allows(self):
        cfg = ("listeners: [ { name: p, address: '127.0.0.1:@PORT@', underscores_in_headers: true } ]\n"
               "upstreams: [ { name: b, targets: [ '127.0.0.1:@UP@' ] } ]\n"
               "routes: [ { name: r, match: { path_prefix: / }, upstream: b } ]\n")
        port = free_port()
        with Gateway(render(cfg, port=port, up=self.up.port)):
            r = http_request(port, "GET", "/keep", headers={"X_Tenant": "t1"})
            self.assertEqual(r.json()["headers"].get("x_tenant"), "t1")

    def test_content_length_not_a_number(self):
        self.assertRejected(b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400)

    def test_content_length_negative(self):
        self.assertRejected(b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400)

    def test_two_different_content_lengths(self):
        _, _, before = self.assertRejected(
            b"POST /cl2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
            b"hello!", 400)
        self.assertNotForwarded(before)

    def test_content_length_and_chunked(self):
        _, _, before = self.assertRejected(
            b"POST /clte HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_unsupported_transfer_encoding(self):
        _, _, before = self.assertRejected(
            b"POST /gz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx", (400, 501))
        self.assertNotForwarded(before)

    def test_invalid_chunk_size(self):
        self.assertRejected(
            b"POST /chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nhello\r\n0\r\n\r\n", 400)

    def test_chunk_size_overflow(self):
        self.assertRejected(
            b"POST /chunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", (400, 413))

    def test_http11_without_host(self):
        _, _, before = self.assertRejected(b"GET /nohost HTTP/1.1\r\n\r\n", 400)
        self.assertNotForwarded(before)

    def test_http10_without_host_works(self):
        resps, raw, closed = self.send(b"GET /h10 HTTP/1.0\r\n\r\n", timeout=3)
        self.assertTrue(resps, raw[:300])
        self.assertEqual(resps[0][0], 200, raw[:300])
        self.assertEqual(json.loads(resps[0][2])["path"], "/h10")

    # -- limits ----------------------------------------------------------------
    def test_uri_too_long(self):
        _, _, before = self.assertRejected(
            b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414)
        self.assertNotForwarded(before)

    def test_uri_below_limit_ok(self):
        path = "/" + "b" * 900
        r = http_request(self.port, "GET", path)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], path)

    def test_header_too_big(self):
        _, _, before = self.assertRejected(
            b"GET /big-header HTTP/1.1\r\nHost: a\r\nX-Big: " + b"h" * 5000 + b"\r\n\r\n", 431)
        self.assertNotForwarded(before)

    def test_many_headers_too_big(self):
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(150))
        self.assertRejected(b"GET /many HTTP/1.1\r\nHost: a\r\n" + hdrs + b"\r\n", 431)

    def test_header_below_limit_ok(self):
        r = http_request(self.port, "GET", "/h-ok", headers={"X-Mid": "m" * 3000})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["headers"]["x-mid"], "m" * 3000)

    def test_body_too_large_content_length(self):
        # the announced length alone must trigger 413 (body not sent)
        _, _, before = self.assertRejected(
            b"POST /big-body HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n", 413)
        self.assertNotForwarded(before)

    def test_body_too_large_chunked(self):
        self.assertRejected(
            b"POST /big-chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"258\r\n" + b"c" * 600 + b"\r\n258\r\n" + b"c" * 600 + b"\r\n", 413)

    def test_body_at_limit_ok(self):
        r = http_request(self.port, "POST", "/limit", body=b"k" * 1000)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_length"], 1000)
        r = http_request(self.port, "POST", "/limit-chunked", body=iter([b"k" * 500] * 2),
                         chunked=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_length"], 1000)

    # -- slow clients ----------------------------------------------------------
    def assertTimedOut(self, data, low=0.2, high=2.0):
        t0 = time.monotonic()
        raw, closed = raw_exchange(self.port, data, read_timeout=high + 1.0, expect=1)
        elapsed = time.monotonic() - t0
        resps = parse_responses(raw)
        if resps:
            self.assertEqual(resps[0][0], 408, raw[:300])
        else:
            self.assertTrue(closed, "connection neither answered nor closed; got %r" % raw[:200])
        self.assertGreaterEqual(elapsed, low, "gave up before the configured timeout")
        self.assertLessEqual(elapsed, high)

    def test_slowloris_half_head(self):
        self.assertTimedOut(b"GET /slow HTTP/1.1\r\nHost: a\r\n")

    def test_slowloris_trickle(self):
        # one byte every 100 ms: the header timeout covers the whole head, not each read
        s = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        data = b"GET /trickle HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: " + b"p" * 100
        t0 = time.monotonic()
        ended = None
        try:
            for b in data:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    ended = time.monotonic()
                    break
                s.settimeout(0.1)
                try:
                    got = s.recv(4096)
                    if got == b"" or got.startswith(b"HTTP/1.1 408") or got.startswith(b"HTTP/1.0 408"):
                        ended = time.monotonic()
                        break
                    self.fail("unexpected reply %r" % got[:100])
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    ended = time.monotonic()
                    break
                if time.monotonic() - t0 > 3:
                    break
        finally:
            s.close()
        self.assertIsNotNone(ended, "trickling client was never cut off")
        self.assertLess(ended - t0, 2.0)

    def test_body_stall(self):
        self.assertTimedOut(
            b"POST /stall HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"s" * 10)

    def test_chunked_body_stall(self):
        self.assertTimedOut(
            b"POST /stall HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"a\r\n0123456789\r\n")

    # -- smuggling ---------------------------------------------------------------
    def test_smuggling_cl_te(self):
        data = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        raw, _ = raw_exchange(self.port, data, read_timeout=1.0)
        resps = parse_responses(raw)
        self.assertTrue(resps, raw[:300])
        self.assertEqual(resps[0][0], 400)
        self.assertTrue(all(r[0] != 200 for r in resps), raw[:800])
        time.sleep(0.1)
        self.assertFalse([p for p in self.up.paths() if "smuggled" in p])

    def test_smuggling_te_obfuscated(self):
        data = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: xchunked\r\n\r\n5c\r\n"
                b"GET /smuggled2 HTTP/1.1\r\nHost: a\r\n\r\n")
        raw, _ = raw_exchange(self.port, data, read_timeout=1.0)
        resps = parse_responses(raw)
        self.assertTrue(resps, raw[:300])
        self.assertIn(resps[0][0], (400, 501))
        time.sleep(0.1)
        self.assertFalse([p for p in self.up.paths() if "smuggled" in p])

    # -- fuzz ---------------------------------------------------------------------
    def test_random_garbage_1000(self):
        rng = random.Random(1234)
        valid = (b"POST /fuzz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\nX-A: b\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        for i in range(1000):
            kind = i % 3
            if kind == 0:
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
                payload += b"\r\n\r\n"
            elif kind == 1:
                buf = bytearray(valid)
                for _ in range(rng.randrange(1, 8)):
                    buf[rng.randrange(len(buf))] = rng.randrange(256)
                payload = bytes(buf)
            else:
                words = [b"GET", b"POST", b" ", b"/", b"HTTP/1.1", b"HTTP/9.9", b"\r\n",
                         b"\n", b":", b"Host", b"Content-Length", b"Transfer-Encoding",
                         b"chunked", b"-1", b"99999999999999999999", b"\x00", b"\xff", b"0",
                         b"\t", b"%", b"?"]
                payload = b"".join(rng.choice(words) for _ in range(rng.randrange(1, 40)))
                payload += b"\r\n\r\n"
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            try:
                if rng.random() < 0.3:
                    # abortive close (RST) after sending
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(payload)
                if rng.random() < 0.5:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                s.close()
            if i % 100 == 99:
                self.assertTrue(self.gw.alive(), "gateway died at fuzz case %d; log:\n%s"
                                % (i, self.gw.log_text()[-4000:]))
                r = http_request(self.port, "GET", "/fuzz-check/%d" % i)
                self.assertEqual(r.status, 200)
        self.assertTrue(self.gw.alive())


if __name__ == "__main__":
    unittest.main()
