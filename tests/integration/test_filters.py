"""Built-in filters: key_auth, rate_limit, cors, ip_filter, headers; ordering and config errors."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, RedisServer, Upstream, error_json, free_port, run_cli  # noqa: E402

CONFIG = """workers: 2
listeners:
  - name: public
    address: 127.0.0.1:{port}
  - name: raw
    address: 127.0.0.1:{raw_port}
    normalize_path: false
upstreams:
  - name: backend
    targets: [ "127.0.0.1:{up}" ]
keys:
  - name: alice
    key: sk-alice-0001
  - name: bob
    key_sha256: {bob_hash}
routes:
  - name: auth
    match: {{ path_prefix: /auth }}
    upstream: backend
    filters:
      - key_auth: {{}}
  - name: only-bob
    match: {{ path_prefix: /bob }}
    upstream: backend
    filters:
      - key_auth: {{ keys: [ bob ] }}
  - name: limited
    match: {{ path_prefix: /limited }}
    upstream: backend
    filters:
      - rate_limit: {{ requests: 3, per: 1m }}
  - name: per-key
    match: {{ path_prefix: /perkey }}
    upstream: backend
    filters:
      - key_auth: {{}}
      - rate_limit: {{ requests: 2, per: 1m, by: key }}
  - name: cors
    match: {{ path_prefix: /cors }}
    upstream: backend
    filters:
      - cors: {{ allow_origins: [ "https://app.example" ], allow_methods: [ GET, POST ], expose_headers: [ x-trace ], max_age: 10m, allow_credentials: true }}
  - name: denied
    match: {{ path_prefix: /denied }}
    upstream: backend
    filters:
      - ip_filter: {{ deny: [ "127.0.0.0/8" ] }}
  - name: allowed
    match: {{ path_prefix: /allowed }}
    upstream: backend
    filters:
      - ip_filter: {{ allow: [ "10.0.0.0/8", "127.0.0.1" ] }}
  - name: hdr
    match: {{ path_prefix: /hdr }}
    upstream: backend
    filters:
      - headers: {{ request: {{ add: {{ x-from-filter: "yes" }}, remove: [ x-drop ] }}, response: {{ add: {{ x-served-by: ganglion }} }} }}
  - name: open
    match: {{ path_prefix: /open }}
    upstream: backend
"""

BOB_KEY = "sk-bob-000000002"


def sha256_hex(s):
    import hashlib
    return hashlib.sha256(s.encode()).hexdigest()


class FiltersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = Upstream().__enter__()
        cls.port = free_port()
        cls.raw_port = free_port()
        cls.gw = Gateway(CONFIG.format(port=cls.port, raw_port=cls.raw_port, up=cls.up.port,
                                       bob_hash=sha256_hex(BOB_KEY)))
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.__exit__(None, None, None)

    def test_key_auth_cannot_be_walked_around_with_another_spelling_of_the_path(self):
        # An open route whose path the upstream resolves to a guarded one: /open/../auth,
        # /open/%2e%2e/auth and //auth reached the upstream (which resolves them to /auth)
        # without a key, through the open route or none.
        before = self.up.request_count
        for path in ("/open/../auth/x", "/open/%2e%2e/auth/x", "/open/%2E%2E/%61uth/x", "//auth/x", "/./auth/x"):
            r = self.gw.request("GET", path)
            self.assertEqual((r.status, error_json(r.body)["type"]), (401, "missing_api_key"), path)
        self.assertEqual(self.up.request_count, before, self.up.paths()[before:])
        r = self.gw.request("GET", "/open/a/../b//c/%7e?q=/../x", headers={"Authorization": "Bearer sk-alice-0001"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], "/open/b/c/~?q=/../x")  # the upstream gets the normal form
        # normalize_path: false: matched and forwarded byte for byte.
        from harness import http_request
        r = http_request(self.raw_port, "GET", "/open/../auth/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], "/open/../auth/x")

    def test_key_auth_missing_invalid_valid(self):
        r = self.gw.request("GET", "/auth/x")
        self.assertEqual(r.status, 401)
        self.assertEqual(error_json(r.body)["type"], "missing_api_key")
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        r = self.gw.request("GET", "/auth/x", headers={"Authorization": "Bearer wrong-key-123"})
        self.assertEqual(r.status, 401)
        self.assertEqual(error_json(r.body)["type"], "invalid_api_key")
        r = self.gw.request("GET", "/auth/x", headers={"Authorization": "Bearer sk-alice-0001"})
        self.assertEqual(r.status, 200)
        seen = r.json()["headers"]
        self.assertNotIn("authorization", seen, "the client's key must not reach the upstream")
        r = self.gw.request("GET", "/auth/x", headers={"x-api-key": BOB_KEY})
        self.assertEqual(r.status, 200)
        self.assertNotIn("x-api-key", r.json()["headers"])

    def test_key_restricted_to_named_keys(self):
        r = self.gw.request("GET", "/bob", headers={"Authorization": "Bearer sk-alice-0001"})
        self.assertEqual(r.status, 403)
        self.assertEqual(error_json(r.body)["type"], "key_not_allowed")
        r = self.gw.request("GET", "/bob", headers={"Authorization": "bearer " + BOB_KEY})
        self.assertEqual(r.status, 200)

    def test_rate_limit_by_client_ip_across_workers(self):
        statuses = [self.gw.request("GET", "/limited").status for _ in range(6)]
        self.assertEqual(statuses[:3], [200, 200, 200])
        self.assertEqual(statuses[3:], [429, 429, 429])
        r = self.gw.request("GET", "/limited")
        self.assertEqual(r.status, 429)
        self.assertEqual(error_json(r.body)["type"], "rate_limited")
        self.assertGreaterEqual(int(r.headers["retry-after"]), 1)
        self.assertEqual(r.headers.get("x-ratelimit-limit"), "3")

    def test_rate_limit_by_key(self):
        a = {"Authorization": "Bearer sk-alice-0001"}
        b = {"Authorization": "Bearer " + BOB_KEY}
        self.assertEqual([self.gw.request("GET", "/perkey", headers=a).status for _ in range(3)], [200, 200, 429])
        self.assertEqual(self.gw.request("GET", "/perkey", headers=b).status, 200)

    def test_cors_preflight_and_actual(self):
        r = self.gw.request("OPTIONS", "/cors/x", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["access-control-allow-origin"], "https://app.example")
        self.assertEqual(r.headers["access-control-allow-methods"], "GET, POST")
        self.assertEqual(r.headers["access-control-allow-headers"], "content-type")
        self.assertEqual(r.headers["access-control-max-age"], "600")
        self.assertEqual(r.headers["access-control-allow-credentials"], "true")
        before = self.up.request_count
        r = self.gw.request("GET", "/cors/x", headers={"Origin": "https://app.example"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["access-control-allow-origin"], "https://app.example")
        self.assertEqual(r.headers["access-control-expose-headers"], "x-trace")
        self.assertIn("Origin", r.headers.get("vary", ""))
        self.assertEqual(self.up.request_count, before + 1)
        r = self.gw.request("OPTIONS", "/cors/x", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 403)
        self.assertEqual(error_json(r.body)["type"], "cors_origin_not_allowed")
        r = self.gw.request("GET", "/cors/x", headers={"Origin": "https://evil.example"})
        self.assertEqual(r.status, 200)
        self.assertNotIn("access-control-allow-origin", r.headers)

    def test_cors_keeps_upstream_vary(self):
        r = self.gw.request("GET", "/cors/x", headers={"Origin": "https://app.example",
                                                       "X-Reply-Header": "Vary=Accept-Encoding"})
        self.assertEqual(r.status, 200)
        vary = [v.strip().lower() for v in r.headers.get("vary", "").split(",")]
        self.assertIn("accept-encoding", vary)
        self.assertIn("origin", vary)

    def test_ip_filter(self):
        r = self.gw.request("GET", "/denied")
        self.assertEqual(r.status, 403)
        self.assertEqual(error_json(r.body)["type"], "ip_not_allowed")
        self.assertEqual(self.gw.request("GET", "/allowed").status, 200)

    def test_headers_filter(self):
        r = self.gw.request("GET", "/hdr", headers={"x-drop": "1", "x-keep": "2"})
        self.assertEqual(r.status, 200)
        seen = r.json()["headers"]
        self.assertEqual(seen.get("x-from-filter"), "yes")
        self.assertNotIn("x-drop", seen)
        self.assertEqual(seen.get("x-keep"), "2")
        self.assertEqual(r.headers.get("x-served-by"), "ganglion")


class FilterConfigErrors(unittest.TestCase):
    def check(self, text):
        import tempfile
        d = tempfile.mkdtemp()
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = run_cli(["check", "--config", path])
        return path, (p.returncode, p.stdout + p.stderr)

    BASE = """listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
keys: [ { name: k, key: "0123456789" } ]
routes:
  - name: r
    upstream: u
    filters:
"""

    def test_shared_rate_limit_needs_redis(self):
        path, (code, out) = self.check(self.BASE + "      - rate_limit: { requests: 5, shared: api }\n")
        self.assertNotEqual(code, 0)
        self.assertIn("%s:8: rate_limit 'shared' keeps its counts in Redis" % path, out)

    def test_unknown_filter(self):
        path, (code, out) = self.check(self.BASE + "      - teleport: {}\n")
        self.assertNotEqual(code, 0)
        self.assertIn("%s:8: unknown filter 'teleport'" % path, out)

    def test_bad_rate_limit(self):
        path, (code, out) = self.check(self.BASE + "      - rate_limit: { requests: 0, by: nobody }\n")
        self.assertNotEqual(code, 0)
        self.assertIn("requests must be an integer", out)
        self.assertIn("by must be client_ip, key or header:<name>", out)

    def test_key_auth_unknown_key_and_bad_cidr(self):
        path, (code, out) = self.check(self.BASE + "      - key_auth: { keys: [ nobody ] }\n"
                                       "      - ip_filter: { allow: [ 10.0.0.0/33 ] }\n")
        self.assertNotEqual(code, 0)
        self.assertIn("%s:8: key_auth names unknown key 'nobody'" % path, out)
        self.assertIn("%s:9: '10.0.0.0/33' is not an IP address or CIDR range" % path, out)

    def test_short_key_rejected_and_not_echoed(self):
        text = self.BASE.replace('key: "0123456789"', 'key: "short"') + "      - key_auth: {}\n"
        path, (code, out) = self.check(text)
        self.assertNotEqual(code, 0)
        self.assertIn("at least 8 characters", out)


if __name__ == "__main__":
    unittest.main()


LLM_CONFIG = """workers: 1
listeners:
  - name: public
    address: 127.0.0.1:{port}
providers:
  - name: main
    kind: openai
    base_url: http://{provider}/v1
    api_key: sk-provider-main
models:
  - name: m
    targets: [ {{ provider: main, model: m-model }} ]
keys:
  - name: alice
    key: sk-alice-llm-0001
  - name: bob
    key: sk-bob-llm-00002
routes:
  - name: llm
    match: {{ path_prefix: /v1/ }}
    llm: {{}}
    filters:
      - rate_limit: {{ requests: 1, per: 1m, by: key }}
"""


class LlmRouteFiltersTest(unittest.TestCase):
    """Filters on an `llm:` route: the implied key_auth runs before rate_limit, and filter
    replies come in the client's API dialect."""

    @classmethod
    def setUpClass(cls):
        import json
        from fake_provider import FakeProvider
        cls.json = json
        cls.provider = FakeProvider(name="main").__enter__()
        cls.port = free_port()
        cls.gw = Gateway(LLM_CONFIG.format(port=cls.port, provider=cls.provider.address))
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.provider.__exit__(None, None, None)

    def chat(self, key, path="/v1/chat/completions"):
        body = self.json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
        if key:
            headers["Authorization"] = "Bearer " + key
        return self.gw.request("POST", path, body=body, headers=headers)

    def test_rate_limit_by_key_counts_each_key(self):
        # The key check ran after the route's filters, so `by: key` saw no key and counted
        # every caller as one client address: bob was refused for alice's call.
        self.assertEqual(self.chat("sk-alice-llm-0001").status, 200)
        refused = self.chat("sk-alice-llm-0001")
        self.assertEqual(refused.status, 429)
        err = refused.json()["error"]  # OpenAI's error object, not the gateway's
        self.assertEqual((err["type"], err["code"]), ("rate_limit_error", "rate_limited"))
        self.assertIn("param", err)
        self.assertTrue(refused.headers.get("x-request-id"))
        self.assertTrue(refused.headers.get("retry-after"))
        self.assertEqual(self.chat("sk-bob-llm-00002").status, 200)

    def test_key_errors_in_each_dialect(self):
        r = self.chat(None)
        self.assertEqual(r.status, 401)
        err = r.json()["error"]
        self.assertEqual((err["type"], err["code"]), ("invalid_request_error", "missing_api_key"))
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        r = self.chat("sk-wrong-secret-key", path="/v1/messages")
        self.assertEqual(r.status, 401)
        body = r.json()
        self.assertEqual(body["type"], "error")  # Anthropic's shape
        self.assertEqual(body["error"]["type"], "authentication_error")
        self.assertNotIn("sk-wrong-secret-key", r.body.decode())
        # The body was not read: the connection closes, and the head said nothing of it.
        self.assertEqual(r.headers.get("connection"), "close")

    def test_a_key_of_raw_bytes_still_gets_json(self):
        # The masked key was copied into the message byte for byte: invalid JSON.
        r = self.chat("sk-" + "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2")
        self.assertEqual(r.status, 401)
        err = self.json.loads(r.body.decode("utf-8"))["error"]
        self.assertEqual(err["code"], "invalid_api_key")
        self.assertIn("sk-*******", err["message"])


SHARED_CONFIG = """workers: 2
listeners:
  - name: public
    address: 127.0.0.1:{port}
upstreams:
  - name: backend
    targets: [ "127.0.0.1:{up}" ]
routes:
  - name: shared
    match: {{ path_prefix: /shared }}
    upstream: backend
    filters:
      - rate_limit: {{ requests: 5, per: 1m, by: "header:x-client", shared: api-quota }}
  - name: shared-ip
    match: {{ path_prefix: /by-ip }}
    upstream: backend
    filters:
      - rate_limit: {{ requests: 5, per: 1m, shared: api-quota }}
state:
  redis: "{redis}"
  redis_timeout: 300ms
"""


class SharedRateLimitTest(unittest.TestCase):
    """rate_limit with `shared`: the buckets live in Redis, so two gateways (two workers
    each) together let through what one would; without Redis each falls back to its own."""

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream().__enter__()
        cls.redis = RedisServer(password="redis-secret-rl").__enter__()
        cls.gws = [Gateway(SHARED_CONFIG.format(port=free_port(), up=cls.up.port, redis=cls.redis.url())).__enter__()
                   for _ in range(2)]

    @classmethod
    def tearDownClass(cls):
        for gw in cls.gws:
            gw.__exit__(None, None, None)
        cls.redis.__exit__(None, None, None)
        cls.up.__exit__(None, None, None)

    def hit(self, gw, client):
        return gw.request("GET", "/shared/x", headers={"x-client": client})

    def test_two_gateways_share_one_bucket(self):
        statuses = [self.hit(self.gws[i % 2], "alpha").status for i in range(10)]
        self.assertEqual(statuses, [200] * 5 + [429] * 5)
        refused = self.hit(self.gws[0], "alpha")
        self.assertEqual(error_json(refused.body)["type"], "rate_limited")
        self.assertGreaterEqual(int(refused.headers["retry-after"]), 1)
        self.assertEqual(refused.headers.get("x-ratelimit-remaining"), "0")
        ok = self.hit(self.gws[1], "beta")  # another client has its own bucket
        self.assertEqual(ok.status, 200)
        self.assertEqual(ok.headers.get("x-ratelimit-remaining"), "4")
        keys = self.redis.cli("KEYS", "ganglion:rate:{api-quota}:*")
        self.assertTrue(any(k.endswith(":hdr:alpha") for k in keys), keys)
        self.assertNotIn("redis-secret-rl", "".join(gw.log_text() for gw in self.gws))

    def test_a_header_cannot_drain_an_address_bucket(self):
        # Buckets were keyed by the identity alone: `x-client: 127.0.0.1` on the header route
        # spent the bucket of the client address 127.0.0.1 on the by-address route.
        statuses = [self.hit(self.gws[0], "127.0.0.1").status for _ in range(6)]
        self.assertEqual(statuses[-1], 429)
        self.assertEqual(self.gws[1].request("GET", "/by-ip/x").status, 200)

    def test_long_identities_make_short_keys(self):
        self.assertEqual(self.hit(self.gws[0], "z" * 5000).status, 200)
        keys = self.redis.cli("KEYS", "ganglion:rate:{api-quota}:*")
        self.assertTrue(keys)
        self.assertLess(max(len(k) for k in keys), 200, keys)

    def test_without_redis_each_gateway_limits_on_its_own(self):
        self.redis.stop()
        try:
            import time
            started = time.monotonic()
            statuses = [self.hit(self.gws[0], "gamma").status for _ in range(7)]
            self.assertEqual(statuses, [200] * 5 + [429] * 2)  # this process's bucket
            self.assertLess(time.monotonic() - started, 5)
            self.assertEqual(self.hit(self.gws[1], "gamma").status, 200)  # the other's own
            self.assertIn("unavailable", self.gws[0].log_text())
        finally:
            self.redis.start()


class SharedRateLimitHangUpTest(unittest.TestCase):
    """A client that leaves while its rate_limit waits on Redis: the wait is cancelled at the
    request's one cancel point, nothing is forwarded, and the gateway goes on serving."""

    def test_client_leaving_during_a_redis_wait(self):
        import socket
        import time
        from harness import RawServer, read_request_head

        def silent_redis(sock, server):  # reads commands, never answers
            while not server.stop_event.is_set():
                try:
                    sock.settimeout(0.2)
                    if not sock.recv(65536):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return

        with Upstream() as up, RawServer(silent_redis) as redis:
            text = SHARED_CONFIG.format(port=free_port(), up=up.port, redis="redis://" + redis.address)
            text = text.replace("redis_timeout: 300ms", "redis_timeout: 5s")
            with Gateway(text) as gw:
                c = socket.create_connection(("127.0.0.1", gw.port))
                c.sendall(b"GET /shared/x HTTP/1.1\r\nHost: a\r\nx-client: delta\r\n\r\n")
                time.sleep(0.3)
                c.close()  # leaves while the filter waits for Redis
                from harness import wait_until
                self.assertTrue(wait_until(lambda: gw.access_records("client_closed"), timeout=3), gw.log_text())
                self.assertEqual(up.request_count, 0)
                self.assertTrue(gw.alive())
