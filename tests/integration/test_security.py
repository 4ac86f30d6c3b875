"""Keep-alive isolation: a request must never see the header fields of the request before it.

A connection reuses one parser, and so one HeaderList, for every request it carries. A bug in
HeaderList (clear() only reset a count while lookups scanned the whole backing vector, and
remove() parked removed fields past the count where lookups still found them) let a request
with fewer fields than an earlier one on the same connection "inherit" the earlier fields:
an unkeyed request passed key_auth as the earlier key, LLM calls were billed to it, the admin
API answered without a token, and x-request-id, x-ganglion-cache, anthropic-version, Expect
and header route matches leaked from one request to the next.

Every test here therefore talks over ONE raw socket, writes request N+1 only after response N
was read in full, and shrinks the header set from one request to the next. The fields that
vanish are always written LAST: in the old HeaderList, field i of a request overwrote field i
of the one before, so only fields at positions the next request does not reach stayed behind.
Host (and Content-Length, when there is a body) come first for the same reason.
"""

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, Response, Upstream, error_json, free_port, render, wait_until  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

ADMIN_TOKEN = "adm1n-T0ken-for-keepalive-tests"
ALICE = "sk-alice-0001-keepalive"
BOB = "sk-bob-0002-keepalive"


# --------------------------------------------------------------------------
# one raw keep-alive connection
# --------------------------------------------------------------------------

class KeepAliveConn:
    """A client connection that sends requests one at a time and reads each response in full
    (Content-Length or chunked) before the next request is written, so every request reaches
    the server's per-connection parser right after the one before it."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    # -- writing -----------------------------------------------------------------
    @staticmethod
    def head_bytes(method, target, fields, length=None):
        """Host first, then Content-Length (when there is a body), then `fields` in order."""
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: gateway.test"]
        if length is not None:
            lines.append("Content-Length: %d" % length)
        lines += ["%s: %s" % (name, value) for name, value in fields]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_head(self, method, target, fields, length=None):
        self.sock.sendall(self.head_bytes(method, target, fields, length))

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, fields=(), body=None):
        """One whole request, then its whole response (interim ones in .interim)."""
        data = body.encode() if isinstance(body, str) else body
        self.sock.sendall(self.head_bytes(method, target, fields, None if data is None else len(data))
                          + (data or b""))
        return self.read_response(method)

    # -- reading -----------------------------------------------------------------
    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection; so far: %r" % self.buf[:300])
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        """(status, lower-case headers dict) of the next response head, interim or final."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        return status, headers

    def read_response(self, method="GET"):
        interim = []
        while True:
            status, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                interim.append(status)
                continue
            break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line():  # trailer fields up to the empty line
                        pass
                    break
                body += self._take(size)
                self._take(2)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:
            raise AssertionError("response without framing on a keep-alive connection: %r" % headers)
        resp = Response(status, headers, body)
        resp.interim = interim
        return resp

    def received_within(self, seconds):
        """Whatever arrives within `seconds` (kept for later reads); b"" if nothing did."""
        before = len(self.buf)
        deadline = time.monotonic() + seconds
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    self._fill()
                except socket.timeout:
                    break
        finally:
            self.sock.settimeout(5.0)
        return self.buf[before:]


class KeepAliveCase(unittest.TestCase):
    def connect(self, port):
        conn = KeepAliveConn(port)
        self.addCleanup(conn.close)
        return conn

    def wait_records(self, gw, count, *needles):
        """The access-log records holding every needle, once at least `count` are written."""
        self.assertTrue(wait_until(lambda: len(gw.access_records(*needles)) >= count, timeout=3),
                        "access log lacks %d record(s) with %s:\n%s" % (count, needles, gw.log_text()))
        return gw.access_records(*needles)


# --------------------------------------------------------------------------
# proxy routes and the admin API
# --------------------------------------------------------------------------

PROXY_CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
upstreams:
  - name: backend
    targets: [ "127.0.0.1:@UP@" ]
  - name: v2
    targets: [ "127.0.0.1:@UP2@" ]
keys:
  - { name: alice, key: @ALICE@ }
  - { name: bob, key: @BOB@ }
routes:
  - name: auth
    match: { path_prefix: /auth/ }
    upstream: backend
    filters: [ { key_auth: {} } ]
  - name: ver-any
    match: { path_prefix: /ver/ }
    upstream: backend
  - name: ver-2
    match: { path_prefix: /ver/, headers: { x-version: "2" } }
    upstream: v2
  - name: open
    match: { path_prefix: /open/ }
    upstream: backend
admin:
  address: 127.0.0.1:@ADMIN@
  token: @TOKEN@
"""


class ProxyKeepAliveTest(KeepAliveCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Upstream("backend").__enter__()
        cls.up2 = Upstream("v2").__enter__()
        cls.port = free_port()
        cls.admin_port = free_port()
        try:
            cls.gw = Gateway(render(PROXY_CONFIG, port=cls.port, up=cls.up.port, up2=cls.up2.port,
                                    admin=cls.admin_port, token=ADMIN_TOKEN, alice=ALICE, bob=BOB),
                             admin_port=cls.admin_port, port=cls.port).__enter__()
        except Exception:
            cls.up2.__exit__(None, None, None)
            cls.up.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.up2.__exit__(None, None, None)
        cls.up.__exit__(None, None, None)

    def record(self, target):
        """The one access-log record of `target` (each test uses its own paths)."""
        records = self.wait_records(self.gw, 1, '"target":"%s"' % target)
        self.assertEqual(len(records), 1, records)
        return records[0]

    def test_key_then_no_key_is_refused(self):
        # Old bug: key_auth's remove() parked Authorization past the count, where the next
        # request's lookup found it: the unkeyed request passed as alice.
        c = self.connect(self.port)
        r = c.request("GET", "/auth/nokey-1", [("Authorization", "Bearer " + ALICE)])
        self.assertEqual(r.status, 200, r)
        r = c.request("GET", "/auth/nokey-2")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(error_json(r.body)["type"], "missing_api_key")
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertNotIn("/auth/nokey-2", self.up.paths())
        self.assertEqual(self.record("/auth/nokey-1").get("key"), "alice")
        rec = self.record("/auth/nokey-2")
        self.assertEqual(rec["status"], 401)
        self.assertNotIn("key", rec, "an unkeyed request is logged under a key")
        self.assertEqual(rec.get("error"), "missing_api_key")

    def test_two_credentials_are_refused_not_one_picked(self):
        # Found by an outside test: two Authorization headers passed with the first one's key
        # (a proxy in front may check the other). The same key twice over both headers is one.
        c = self.connect(self.port)
        for i, headers in enumerate(([("Authorization", "Bearer " + ALICE), ("Authorization", "Bearer " + BOB)],
                                     [("Authorization", "Bearer " + ALICE), ("Authorization", "Bearer nope")],
                                     [("X-API-Key", ALICE), ("X-API-Key", ALICE)],
                                     [("Authorization", "Bearer " + ALICE), ("X-API-Key", BOB)])):
            r = c.request("GET", "/auth/two-%d" % i, headers)
            self.assertEqual(r.status, 401, (headers, r))
            self.assertIn("send one API key", error_json(r.body)["message"])
            self.assertNotIn("/auth/two-%d" % i, self.up.paths())
        r = c.request("GET", "/auth/two-ok", [("Authorization", "Bearer " + ALICE), ("X-API-Key", ALICE)])
        self.assertEqual(r.status, 200, r)

    def test_key_then_invalid_key_is_refused(self):
        # The invalid key comes as X-API-Key, which key_auth reads only when there is no
        # Authorization: a stale Authorization would win over it and let the request in.
        c = self.connect(self.port)
        r = c.request("GET", "/auth/badkey-1", [("X-Pad", "1"), ("Authorization", "Bearer " + ALICE)])
        self.assertEqual(r.status, 200, r)
        r = c.request("GET", "/auth/badkey-2", [("X-API-Key", "sk-not-a-real-key-123")])
        self.assertEqual(r.status, 401, r)
        self.assertEqual(error_json(r.body)["type"], "invalid_api_key")
        self.assertNotIn("/auth/badkey-2", self.up.paths())
        rec = self.record("/auth/badkey-2")
        self.assertNotIn("key", rec)
        self.assertEqual(rec.get("error"), "invalid_api_key")

    def test_keys_in_turn_are_each_their_own(self):
        # alice, then bob with one field fewer, then nobody: each is served (or refused) and
        # logged as itself, and no credential reaches the upstream.
        c = self.connect(self.port)
        seen = []
        r = c.request("GET", "/auth/turn-1", [("X-Pad-1", "1"), ("X-Pad-2", "2"),
                                              ("Authorization", "Bearer " + ALICE)])
        self.assertEqual(r.status, 200, r)
        seen.append(r.json()["headers"])
        r = c.request("GET", "/auth/turn-2", [("X-Pad", "1"), ("X-API-Key", BOB)])
        self.assertEqual(r.status, 200, r)
        seen.append(r.json()["headers"])
        self.assertEqual(self.record("/auth/turn-1").get("key"), "alice")
        self.assertEqual(self.record("/auth/turn-2").get("key"), "bob", "bob's request passed as alice")
        r = c.request("GET", "/auth/turn-3")
        self.assertEqual(r.status, 401, r)
        self.assertNotIn("key", self.record("/auth/turn-3"))
        for headers in seen:
            self.assertNotIn("authorization", headers)
            self.assertNotIn("x-api-key", headers)

    def test_header_route_match_is_not_inherited(self):
        # Route matching looks headers up by name: a stale x-version: 2 matched route ver-2.
        c = self.connect(self.port)
        r = c.request("GET", "/ver/a", [("X-Version", "2")])
        self.assertEqual((r.status, r.headers.get("x-upstream")), (200, "v2"), r)
        r = c.request("GET", "/ver/b")
        self.assertEqual((r.status, r.headers.get("x-upstream")), (200, "backend"), r)
        self.assertNotIn("x-version", r.json()["headers"])
        self.assertEqual(self.record("/ver/b")["route"], "ver-any")

    def test_expect_continue_is_not_inherited(self):
        # The interim 100 is sent when the body is read and not yet here, if the request
        # asked for it; a stale Expect made the gateway send one the second client never
        # asked for (which a client takes as the final response's start, or an error).
        c = self.connect(self.port)
        c.send_head("POST", "/open/expect-1", [("Expect", "100-continue")], length=5)
        status, _ = c.read_head()
        self.assertEqual(status, 100, "the first request asked for 100-continue")
        c.send(b"hello")
        r = c.read_response("POST")
        self.assertEqual((r.status, r.json()["body"]), (200, "hello"), r)
        c.send_head("POST", "/open/expect-2", [], length=5)
        self.assertEqual(c.received_within(0.5), b"", "an answer before the body was sent")
        c.send(b"world")
        r = c.read_response("POST")
        self.assertEqual((r.status, r.json()["body"]), (200, "world"), r)
        self.assertEqual(r.interim, [])

    # -- admin API -----------------------------------------------------------------------
    def test_admin_token_is_not_inherited(self):
        # /healthz needs no token but takes one; the request after it must show its own.
        c = self.connect(self.admin_port)
        for path in ("/config", "/metrics", "/llm/keys", "/ready"):
            with self.subTest(path=path):
                r = c.request("GET", "/healthz", [("Authorization", "Bearer " + ADMIN_TOKEN)])
                self.assertEqual((r.status, r.body.strip()), (200, b"ok"), r)
                r = c.request("GET", path)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(error_json(r.body)["type"], "unauthorized")
        # The token still works on that connection when it is sent.
        r = c.request("GET", "/config", [("Authorization", "Bearer " + ADMIN_TOKEN)])
        self.assertEqual(r.status, 200, r)

    def test_admin_token_is_not_inherited_from_a_protected_call(self):
        c = self.connect(self.admin_port)
        r = c.request("GET", "/metrics", [("X-Pad", "1"), ("Authorization", "Bearer " + ADMIN_TOKEN)])
        self.assertEqual(r.status, 200, r)
        r = c.request("GET", "/config", [("X-Pad", "1")])
        self.assertEqual(r.status, 401, r)


# --------------------------------------------------------------------------
# the LLM API
# --------------------------------------------------------------------------

LLM_CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - { name: main, kind: openai, base_url: "http://@MAIN@/v1", api_key: sk-provider-main }
  - { name: claude, kind: anthropic, base_url: "http://@MAIN@", api_key: sk-ant-provider }
models:
  - name: gpt-4o-mini
    targets: [ { provider: main, model: gpt-4o-mini-2024-07-18, price: { input: 1, output: 1 } } ]
  - name: claude-haiku
    targets: [ { provider: claude, model: claude-3-5-haiku-latest, price: { input: 1, output: 1 } } ]
keys:
  - { name: alpha, key: sk-gw-alpha-0001, budget: { usd: 10, period: day } }
  - { name: beta, key: sk-gw-beta-0002, budget: { usd: 10, period: day } }
  - { name: cached, key: sk-gw-cached-0003, cache: true }
admin:
  address: 127.0.0.1:@ADMIN@
  token: @TOKEN@
"""

ALPHA = "sk-gw-alpha-0001"
BETA = "sk-gw-beta-0002"
CACHED = "sk-gw-cached-0003"
CHAT = "/v1/chat/completions"


def chat(text="echo: keep alive"):
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})


def messages(text="echo: hello claude"):
    return json.dumps({"model": "claude-haiku", "max_tokens": 50,
                       "messages": [{"role": "user", "content": text}]})


class LlmKeepAliveTest(KeepAliveCase):
    """A gateway per test: spend, provider calls and access-log records are counted from zero."""

    @classmethod
    def setUpClass(cls):
        cls.main = FakeProvider(name="main").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.main.__exit__(None, None, None)

    def setUp(self):
        self.main.clear()
        self.port = free_port()
        admin = free_port()
        self.gw = Gateway(render(LLM_CONFIG, port=self.port, main=self.main.address, admin=admin,
                                 token=ADMIN_TOKEN), admin_port=admin, port=self.port).__enter__()
        self.addCleanup(self.gw.__exit__, None, None, None)

    def spend(self):
        """{key name: spent_usd} once no call holds a reservation (calls settle after their
        last byte is sent)."""
        def keys():
            body = self.gw.admin("GET", "/llm/keys", token=ADMIN_TOKEN).json()
            return {k["name"]: k for k in body["keys"]}
        self.assertTrue(wait_until(lambda: all(k.get("reserved_usd") == "0.000000"
                                               for k in keys().values()), timeout=3), keys())
        return {name: k.get("spent_usd") for name, k in keys().items()}

    def llm_records(self, count):
        return self.wait_records(self.gw, count, '"target":"%s"' % CHAT)

    def assertOpenAIError(self, resp, status, code):
        self.assertEqual(resp.status, status, resp)
        err = resp.json()["error"]
        self.assertEqual(err["code"], code)
        self.assertEqual(err["type"], "invalid_request_error")
        return err

    def test_bearer_key_then_no_key_is_401_and_not_billed(self):
        c = self.connect(self.port)
        r = c.request("POST", CHAT, [("Authorization", "Bearer " + ALPHA)], chat())
        self.assertEqual(r.status, 200, r)
        spent = self.spend()["alpha"]
        self.assertGreater(float(spent), 0)
        r = c.request("POST", CHAT, [], chat())
        self.assertOpenAIError(r, 401, "missing_api_key")
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertEqual(len(self.main.requests), 1, "the unkeyed call reached the provider")
        time.sleep(0.2)  # a wrongly served call would settle just after its answer
        self.assertEqual(self.spend()["alpha"], spent, "the unkeyed call was billed to alpha")
        first, second = self.llm_records(2)
        self.assertEqual(first.get("key"), "alpha")
        self.assertEqual((second["status"], second.get("error")), (401, "missing_api_key"))
        self.assertNotIn("key", second)

    def test_x_api_key_then_no_key_is_401(self):
        c = self.connect(self.port)
        r = c.request("POST", CHAT, [("x-api-key", ALPHA)], chat())
        self.assertEqual(r.status, 200, r)
        r = c.request("POST", CHAT, [], chat())
        self.assertOpenAIError(r, 401, "missing_api_key")
        self.assertEqual(len(self.main.requests), 1)
        self.assertNotIn("key", self.llm_records(2)[1])

    def test_keys_in_turn_are_billed_to_themselves(self):
        # alpha (Bearer), beta (x-api-key, one field fewer), then no key: the same call twice
        # costs the same, so each key must show exactly one call's spend.
        c = self.connect(self.port)
        r = c.request("POST", CHAT, [("X-Pad", "1"), ("Authorization", "Bearer " + ALPHA)], chat())
        self.assertEqual(r.status, 200, r)
        r = c.request("POST", CHAT, [("x-api-key", BETA)], chat())
        self.assertEqual(r.status, 200, r)
        spend = self.spend()
        self.assertGreater(float(spend["alpha"]), 0)
        self.assertEqual(spend["beta"], spend["alpha"], "beta's call was billed to alpha: %s" % spend)
        self.assertEqual([rec.get("key") for rec in self.llm_records(2)], ["alpha", "beta"])
        r = c.request("POST", CHAT, [], chat())
        self.assertOpenAIError(r, 401, "missing_api_key")
        self.assertEqual(self.spend(), spend)
        self.assertEqual([rec.get("key") for rec in self.llm_records(3)], ["alpha", "beta", None])
        self.assertEqual(len(self.main.requests), 2)

    def test_messages_key_then_no_key_is_401(self):
        c = self.connect(self.port)
        r = c.request("POST", "/v1/messages", [("anthropic-version", "2023-06-01"), ("x-api-key", ALPHA)],
                      messages())
        self.assertEqual(r.status, 200, r)
        r = c.request("POST", "/v1/messages", [("anthropic-version", "2023-06-01")], messages())
        self.assertEqual(r.status, 401, r)
        body = r.json()
        self.assertEqual((body["type"], body["error"]["type"]), ("error", "authentication_error"))
        self.assertEqual(len(self.main.requests), 1)

    def test_messages_anthropic_version_is_not_inherited(self):
        # To an Anthropic target the client's anthropic-version wins; without one the provider
        # gets the default, not the version the previous client asked for.
        c = self.connect(self.port)
        r = c.request("POST", "/v1/messages", [("x-api-key", ALPHA), ("anthropic-version", "2099-01-01")],
                      messages())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.main.last()["headers"].get("anthropic-version"), "2099-01-01")
        r = c.request("POST", "/v1/messages", [("x-api-key", ALPHA)], messages())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.main.last()["headers"].get("anthropic-version"), "2023-06-01")

    def test_request_id_is_not_inherited(self):
        c = self.connect(self.port)
        auth = ("Authorization", "Bearer " + ALPHA)
        r = c.request("POST", CHAT, [auth, ("x-request-id", "abc")], chat())
        self.assertEqual((r.status, r.headers.get("x-request-id")), (200, "abc"), r)
        r = c.request("POST", CHAT, [auth], chat())
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.headers.get("x-request-id"), "abc")
        self.assertRegex(r.headers.get("x-request-id", ""), r"^req_[0-9a-f]{24}$")
        # Errors carry a request id too: a fresh one.
        r = c.request("POST", CHAT, [], chat())
        self.assertEqual(r.status, 401, r)
        self.assertRegex(r.headers.get("x-request-id", ""), r"^req_[0-9a-f]{24}$")

    def test_cache_choice_is_not_inherited(self):
        c = self.connect(self.port)
        body = chat("echo: cache or not")
        # alpha has no cache: only a request's own `x-ganglion-cache: on` makes it look up.
        r = c.request("POST", CHAT, [("Authorization", "Bearer " + ALPHA), ("x-ganglion-cache", "on")], body)
        self.assertEqual((r.status, r.headers.get("x-ganglion-cache")), (200, "miss"), r)
        r = c.request("POST", CHAT, [("Authorization", "Bearer " + ALPHA)], body)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("x-ganglion-cache", r.headers, "looked up the cache it did not ask for")
        self.assertEqual(len(self.main.requests), 2, "answered from a cache it did not ask for")
        # `cached` has the cache on: only a request's own `off` skips it.
        r = c.request("POST", CHAT, [("Authorization", "Bearer " + CACHED), ("x-ganglion-cache", "off")],
                      body)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("x-ganglion-cache", r.headers)
        r = c.request("POST", CHAT, [("Authorization", "Bearer " + CACHED)], body)
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.headers.get("x-ganglion-cache"), ("hit", "miss"), "did not look the cache up")


if __name__ == "__main__":
    unittest.main()
