"""Admin API, metrics, hot reload (HTTP and SIGHUP) and graceful shutdown."""

import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, Upstream, free_port, http_request, keepalive_request,  # noqa: E402
                     line_of, raw_request, render, wait_until)

TOKEN = "s3cr3t-Adm1n-T0ken-value"

BASE = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
upstreams:
  - name: backend
    targets: [ "127.0.0.1:@UP@" ]
routes:
  - name: route-a
    match: { path_prefix: /a }
    upstream: backend
    timeout: 5s
@EXTRA@admin:
  address: 127.0.0.1:@ADMIN@
  token: ${GANGLION_ADMIN_TOKEN}
"""

ROUTE_B = """\
  - name: route-b
    match: { path_prefix: /b }
    upstream: backend
    timeout: 5s
"""

ROUTE_BROKEN = """\
  - name: route-c
    match: { path_prefix: /c }
    upstream: no-such-upstream
    timeout: 5s
"""

_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)


def metric_values(text, name):
    """[(labels-string, float)] for every sample of metric `name`."""
    out = []
    for m in _METRIC_LINE.finditer(text):
        if m.group(1) == name:
            out.append((m.group(2) or "", float(m.group(3))))
    return out


class AdminTest(unittest.TestCase):
    def setUp(self):
        self.up = Upstream("backend").__enter__()
        self.addCleanup(self.up.__exit__, None, None, None)
        self.port = free_port()
        self.admin_port = free_port()
        self.gw = Gateway(self.config(), env={"GANGLION_ADMIN_TOKEN": TOKEN},
                          admin_port=self.admin_port, port=self.port)
        self.gw.start()
        self.addCleanup(self.gw.__exit__, None, None, None)

    def config(self, extra=""):
        return render(BASE, port=self.port, up=self.up.port, admin=self.admin_port, extra=extra)

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, **kw)

    def admin(self, method, path, token=TOKEN):
        return self.gw.admin(method, path, token=token)

    def config_version(self):
        r = self.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        values = metric_values(r.text, "ganglion_config_version")
        self.assertTrue(values, "ganglion_config_version missing:\n" + r.text)
        return values[0][1]

    def assertRouteState(self, a, b, c=404):
        self.assertEqual(self.get("/a/x").status, a)
        self.assertEqual(self.get("/b/x").status, b)
        self.assertEqual(self.get("/c/x").status, c)

    # -- auth -------------------------------------------------------------------
    def test_healthz_needs_no_token(self):
        r = self.admin("GET", "/healthz", token=None)
        self.assertEqual(r.status, 200)
        # Its wrong methods get the documented 405 with Allow, not a 401.
        r = self.admin("PUT", "/healthz", token=None)
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        self.assertEqual(self.admin("PUT", "/config", token=None).status, 401)

    def test_protected_endpoints(self):
        for path in ("/ready", "/metrics", "/config"):
            with self.subTest(path=path):
                self.assertEqual(self.admin("GET", path, token=None).status, 401)
                self.assertEqual(self.admin("GET", path, token="wrong-token").status, 401)
                self.assertEqual(self.admin("GET", path, token=TOKEN + "x").status, 401)
                r = self.gw.admin("GET", path, headers={"Authorization": TOKEN})
                self.assertEqual(r.status, 401, "token without Bearer scheme accepted")
                self.assertEqual(self.admin("GET", path, token=TOKEN).status, 200)

    def test_reload_needs_token(self):
        self.assertEqual(self.admin("POST", "/reload", token=None).status, 401)
        self.assertEqual(self.admin("POST", "/reload", token="nope").status, 401)

    # -- metrics / config ---------------------------------------------------------
    def test_metrics(self):
        for i in range(5):
            self.assertEqual(self.get("/a/%d" % i).status, 200)
        self.assertEqual(self.get("/a/status/404").status, 404)
        self.assertEqual(self.get("/unrouted").status, 404)
        r = self.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r.headers)
        text = r.text
        self.assertIn("ganglion_requests_total", text)
        self.assertIn("ganglion_config_version", text)
        samples = metric_values(text, "ganglion_requests_total")
        ok = sum(v for labels, v in samples if 'code="2xx"' in labels)
        bad = sum(v for labels, v in samples if 'code="4xx"' in labels)
        self.assertGreaterEqual(ok, 5, text)
        # the upstream's 404 is a 4xx on route-a (the unrouted 404 has no route label)
        self.assertGreaterEqual(bad, 1, text)
        self.assertGreaterEqual(self.config_version(), 1)

    def test_every_metric_family_has_help_and_type(self):
        # Families come from module-registered sources (LLM, target health, the access log):
        # each must say what it is, once, before its samples.
        text = self.admin("GET", "/metrics").text
        helped, typed, seen = set(), set(), []
        for line in text.splitlines():
            if line.startswith("# HELP "):
                name = line.split()[2]
                self.assertNotIn(name, helped, "HELP twice: " + name)
                helped.add(name)
            elif line.startswith("# TYPE "):
                name = line.split()[2]
                self.assertNotIn(name, typed, "TYPE twice: " + name)
                typed.add(name)
            elif line and not line.startswith("#"):
                seen.append(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
        for sample in seen:
            family = re.sub(r"_(bucket|sum|count)$", "", sample)
            self.assertTrue(family in typed or sample in typed, "no TYPE for " + sample)
            self.assertTrue(family in helped or sample in helped, "no HELP for " + sample)
        self.assertEqual(metric_values(text, "ganglion_access_log_dropped_total"), [("", 0.0)])
        self.assertEqual(metric_values(text, "ganglion_upstream_target_up"),
                         [('{upstream="backend",target="127.0.0.1:%d"}' % self.up.port, 1.0)])

    def test_config_is_json_and_redacted(self):
        r = self.admin("GET", "/config")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertIsInstance(doc, dict)
        self.assertNotIn(TOKEN, r.text)
        self.assertIn("route-a", r.text)

    def test_ready(self):
        r = self.admin("GET", "/ready")
        self.assertEqual(r.status, 200)

    # -- reload --------------------------------------------------------------------
    def test_http_reload_adds_route(self):
        self.assertRouteState(200, 404)
        v1 = self.config_version()
        self.gw.reload_file(self.config(ROUTE_B))
        r = self.admin("POST", "/reload")
        self.assertEqual(r.status, 200, r)
        self.assertRouteState(200, 200)
        self.assertGreater(self.config_version(), v1)
        r = self.get("/b/x")
        self.assertEqual(r.json()["path"], "/b/x")

    def test_admin_api_answers_while_a_large_config_loads(self):
        # Reading and compiling a reload ran on the main thread, which also answers the admin
        # API: /healthz waited for the whole load (and for DNS). It now runs on the blocking
        # pool, and a second reload meanwhile is told one is running.
        many = "".join("  - name: bulk-%d\n    match: { path_prefix: /bulk/%d/ }\n    upstream: backend\n" % (i, i)
                       for i in range(20000))
        self.gw.reload_file(self.config(many))
        result = {}

        def do_reload():
            started = time.monotonic()
            result["reply"] = self.admin("POST", "/reload")
            result["took"] = time.monotonic() - started

        t = threading.Thread(target=do_reload)
        t.start()
        time.sleep(0.05)
        slowest, concurrent = 0.0, None
        while t.is_alive():
            started = time.monotonic()
            self.assertEqual(self.admin("GET", "/healthz", token=None).status, 200)
            slowest = max(slowest, time.monotonic() - started)
            if concurrent is None and t.is_alive():
                concurrent = self.admin("POST", "/reload")
            time.sleep(0.02)
        t.join()
        self.assertEqual(result["reply"].status, 200, result["reply"])
        self.assertGreater(result["took"], 0.3, "the reload was too quick to show anything")
        self.assertLess(slowest, 0.2, "/healthz waited %.2f s for the reload" % slowest)
        if concurrent is not None and concurrent.status != 200:  # it may land after the first ended
            self.assertEqual(concurrent.status, 409, concurrent)
            self.assertEqual(concurrent.json()["error"]["type"], "reload_in_progress")
        self.assertEqual(self.get("/bulk/19999/x").status, 200)

    def test_http_reload_broken_keeps_old_config(self):
        self.gw.reload_file(self.config(ROUTE_B))
        self.assertEqual(self.admin("POST", "/reload").status, 200)
        v = self.config_version()
        broken = self.config(ROUTE_B + ROUTE_BROKEN)
        n = line_of(broken, "upstream: no-such-upstream")
        self.gw.reload_file(broken)
        r = self.admin("POST", "/reload")
        self.assertEqual(r.status, 400, r)
        self.assertIn("%s:%d:" % (self.gw.config_path, n), r.text)
        self.assertRouteState(200, 200, 404)
        self.assertEqual(self.config_version(), v)
        self.assertTrue(self.gw.alive())

    def test_http_reload_yaml_error_keeps_old_config(self):
        self.gw.reload_file("listeners: [ unclosed\n")
        r = self.admin("POST", "/reload")
        self.assertEqual(r.status, 400, r)
        self.assertIn(self.gw.config_path + ":", r.text)
        self.assertRouteState(200, 404)

    def test_sighup_reload(self):
        v1 = self.config_version()
        self.gw.reload_file(self.config(ROUTE_B))
        self.gw.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.get("/b/x").status == 200, timeout=3),
                        "SIGHUP did not load the new route; log:\n" + self.gw.log_text())
        self.assertRouteState(200, 200)
        self.assertGreater(self.config_version(), v1)

    def test_sighup_broken_keeps_old_config(self):
        v = self.config_version()
        broken = self.config(ROUTE_BROKEN)
        n = line_of(broken, "upstream: no-such-upstream")
        self.gw.reload_file(broken)
        self.gw.signal(signal.SIGHUP)
        needle = "%s:%d:" % (self.gw.config_path, n)
        self.assertTrue(wait_until(lambda: needle in self.gw.log_text(), timeout=3),
                        "reload error not logged as %s; log:\n%s" % (needle, self.gw.log_text()))
        self.assertTrue(self.gw.alive())
        self.assertRouteState(200, 404, 404)
        self.assertEqual(self.config_version(), v)

    def test_reload_under_load_no_failures(self):
        stop = threading.Event()
        failures = []
        successes = [0]
        lock = threading.Lock()

        def client(idx):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            i = 0
            while not stop.is_set():
                path = "/a/load/%d/%d" % (idx, i)
                try:
                    r = keepalive_request(conn, "GET", path)
                    if r.status != 200 or r.json()["path"] != path:
                        with lock:
                            failures.append("%s -> %d %r" % (path, r.status, r.body[:200]))
                    else:
                        with lock:
                            successes[0] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        failures.append("%s -> %r" % (path, e))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                i += 1
            conn.close()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.1)
            v0 = self.config_version()
            for k in range(5):
                self.gw.reload_file(self.config(ROUTE_B if k % 2 == 0 else ""))
                r = self.admin("POST", "/reload")
                self.assertEqual(r.status, 200, r)
                time.sleep(0.1)
            time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(failures, [])
        self.assertGreater(successes[0], 20)
        self.assertGreaterEqual(self.config_version(), v0 + 5)

    # -- shutdown ------------------------------------------------------------------
    def test_sigterm_graceful(self):
        result = {}

        def slow():
            try:
                result["resp"] = http_request(self.port, "GET", "/a/delay/500", timeout=5)
            except Exception as e:  # noqa: BLE001
                result["error"] = e

        t = threading.Thread(target=slow, daemon=True)
        t.start()
        self.assertTrue(wait_until(lambda: any(p.startswith("/a/delay") for p in self.up.paths()),
                                   timeout=2))
        t0 = time.monotonic()
        self.gw.signal(signal.SIGTERM)
        try:
            rc = self.gw.proc.wait(5)
        except Exception:
            self.fail("gateway did not exit within 5 s of SIGTERM")
        elapsed = time.monotonic() - t0
        t.join(5)
        self.assertEqual(rc, 0, self.gw.log_text())
        self.assertLess(elapsed, 5)
        self.assertNotIn("error", result, result)
        self.assertEqual(result["resp"].status, 200)
        self.assertEqual(result["resp"].json()["path"], "/a/delay/500")

    def test_sigterm_idle_exits_quickly(self):
        self.assertEqual(self.get("/a/x").status, 200)
        t0 = time.monotonic()
        self.gw.signal(signal.SIGTERM)
        rc = self.gw.proc.wait(5)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 2.0)


class AdminHttpTest(unittest.TestCase):
    """The admin API runs on the gateway's HTTP/1.1 code: exact status lines, Allow on 405,
    keep-alive and pipelining, bounded bodies, and a clean exit with connections open."""

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream("backend").__enter__()
        cls.port = free_port()
        cls.admin_port = free_port()
        cls.gw = Gateway(render(BASE, port=cls.port, up=cls.up.port, admin=cls.admin_port, extra=""),
                         env={"GANGLION_ADMIN_TOKEN": TOKEN}, admin_port=cls.admin_port, port=cls.port)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.up.__exit__(None, None, None)

    def test_status_lines_and_allow(self):
        data = raw_request(self.admin_port, b"GET /reload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
                           + TOKEN.encode() + b"\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), data)
        self.assertIn(b"\r\nAllow: POST\r\n", data)
        data = raw_request(self.admin_port, b"GET /config HTTP/1.1\r\nHost: a\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), data)
        self.assertIn(b"\r\nWWW-Authenticate: Bearer\r\n", data)
        # Without the token an unknown path is 401 too: which paths exist is not disclosed.
        self.assertEqual(self.gw.admin("GET", "/nothing-here").status, 401)
        r = self.gw.admin("GET", "/nothing-here", token=TOKEN)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["type"], "not_found")
        head = self.gw.admin("HEAD", "/config", token=TOKEN)
        self.assertEqual((head.status, head.body), (200, b""))

    def test_pipelined_requests_each_checked(self):
        auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        data = raw_request(self.admin_port,
                           b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                           b"GET /ready HTTP/1.1\r\nHost: a\r\n" + auth + b"\r\n"
                           b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n"
                           b"GET /config HTTP/1.1\r\nHost: a\r\n" + auth + b"\r\n", expect=4)
        statuses = re.findall(rb"HTTP/1.1 (\d+)", data)
        self.assertEqual(statuses, [b"200", b"200", b"401", b"200"], data[:600])

    def test_bodies_are_bounded(self):
        data = raw_request(self.admin_port, b"POST /reload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
                           + TOKEN.encode() + b"\r\nContent-Length: 2000000\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:200])
        self.assertIn(b'"type":"body_too_large"', data)
        r = self.gw.admin("POST", "/reload", token=TOKEN, body=b"{}")
        self.assertEqual(r.status, 200, r)

    def test_found_by_an_outside_review(self):
        auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        # Two Authorization fields, the good one first, were let through.
        data = raw_request(self.admin_port, b"GET /config HTTP/1.1\r\nHost: a\r\n" + auth +
                           b"Authorization: Bearer wrong\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:200])
        # A huge Content-Length got 100 Continue, and 413 only after 1 MiB was read.
        data = raw_request(self.admin_port, b"POST /reload HTTP/1.1\r\nHost: a\r\n" + auth +
                           b"Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:200])
        # OPTIONS * was answered without the token.
        data = raw_request(self.admin_port, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:200])

    def test_idle_connections_cannot_take_the_admin_api(self):
        # Thousands of idle connections spun the main thread; a plain cap would have locked the
        # API out instead. Past 256 the oldest idle one makes room.
        held = []
        try:
            for _ in range(300):
                held.append(socket.create_connection(("127.0.0.1", self.admin_port)))
            time.sleep(0.3)
            t0 = time.monotonic()
            self.assertEqual(http_request(self.admin_port, "GET", "/healthz", timeout=3).status, 200)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            for s in held:
                s.close()

    def check(self, body, content_type):
        return self.gw.admin("POST", "/config/check", token=TOKEN, body=body,
                             headers={"Content-Type": content_type})

    def test_config_check_reads_json_and_yaml_with_the_same_schema(self):
        good = {"listeners": [{"name": "a", "address": "127.0.0.1:1"}],
                "upstreams": [{"name": "u", "targets": ["127.0.0.1:2"], "retry_budget": {"percent": 5}}],
                "routes": [{"name": "r", "upstream": "u"}]}
        r = self.check(json.dumps(good).encode(), "application/json; charset=utf-8")
        self.assertEqual((r.status, r.json()), (200, {"valid": True, "errors": []}), r.text)
        bad = {"listeners": [{"name": "a", "address": "127.0.0.1:1", "max_headers": 0}],
               "upstreams": [{"name": "u", "targets": ["127.0.0.1:2"], "outlier": {"base_ejection": "soon"}}],
               "routes": [{"name": "r", "upstream": "elsewhere", "match": {"metods": ["GET"]}}]}
        r = self.check(json.dumps(bad).encode(), "application/json")
        self.assertEqual(r.status, 422, r.text)
        self.assertFalse(r.json()["valid"])
        errors = {e["path"]: e["message"] for e in r.json()["errors"]}
        self.assertIn("max_headers must be an integer from 1 to 10000", errors["$.listeners[0].max_headers"])
        self.assertIn("must be a duration", errors["$.upstreams[0].outlier.base_ejection"])
        self.assertIn("unknown field 'metods' in match", errors["$.routes[0].match.metods"])
        self.assertIn("unknown upstream 'elsewhere'", errors["$.routes[0].upstream"])
        yaml = b"listeners:\n  - name: a\n    address: 127.0.0.1:1\n    max_headers: 0\n"
        r = self.check(yaml, "application/yaml")
        self.assertEqual(r.status, 422, r.text)
        self.assertEqual(r.json()["errors"][0]["line"], 4)
        self.assertNotIn("path", r.json()["errors"][0])
        # Nothing was applied: the gateway serves its own config still.
        self.assertEqual(self.gw.admin("GET", "/config", token=TOKEN).json()["routes"][0]["name"], "route-a")

    def test_config_check_refuses_keys_written_twice_in_json_as_in_yaml(self):
        # JSON parsers keep the last of two equal keys silently; YAML refuses them. The same
        # config must mean the same from either source.
        body = (b'{"listeners": [{"name": "a", "address": "127.0.0.1:1"}],'
                b' "upstreams": [{"name": "u", "targets": ["127.0.0.1:2"]}],'
                b' "routes": [{"name": "r", "upstream": "u", "upstream": "v", "match": {"path": "/a", "path": "/b"}}]}')
        r = self.check(body, "application/json")
        self.assertEqual(r.status, 422, r.text)
        errors = {e["path"]: e["message"] for e in r.json()["errors"]}
        self.assertEqual(errors, {"$.routes[0].upstream": "field 'upstream' is written twice",
                                  "$.routes[0].match.path": "field 'path' is written twice"})
        yaml = b"routes:\n  - name: r\n    upstream: u\n    upstream: v\n"
        r = self.check(yaml, "application/yaml")
        self.assertEqual(r.status, 422, r.text)
        self.assertIn("field 'upstream' is written twice in route", [e["message"] for e in r.json()["errors"]])

    def test_config_check_refuses_what_it_cannot_read(self):
        self.assertEqual(self.gw.admin("POST", "/config/check", body=b"{}",
                                       headers={"Content-Type": "application/json"}).status, 401)
        r = self.check(b"listeners: []", "application/x-www-form-urlencoded")
        self.assertEqual(r.status, 415, r.text)
        self.assertEqual(r.json()["error"]["type"], "unsupported_media_type")
        r = self.check(b'{"listeners": [', "application/json")
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("not valid JSON", r.json()["error"]["message"])
        r = self.check(b"[" * 100 + b"]" * 100, "application/json")
        self.assertEqual(r.status, 400, r.text)
        r = self.check(b"listeners: [ { name: a", "application/yaml")
        self.assertEqual(r.status, 422, r.text)
        self.assertIn("YAML syntax", r.json()["errors"][0]["message"])
        # YAML aliases that name a billion values are refused, not expanded.
        laughs = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
            "%s: &%s [%s]\n" % (chr(98 + i), chr(98 + i), ",".join(["*" + chr(97 + i)] * 10)) for i in range(8))
        t0 = time.monotonic()
        r = self.check(laughs.encode(), "application/yaml")
        self.assertEqual(r.status, 422, r.text)
        self.assertIn("more than 1000000 values", r.text)
        self.assertLess(time.monotonic() - t0, 5)

    def test_config_check_never_expands_the_environment(self):
        # ${VAR} is the gateway's environment: an error quoting the value would hand the admin
        # token (or a provider key) to whoever sends a config.
        for body, ctype in ((b'{"listeners":[{"name":"a","address":"${GANGLION_ADMIN_TOKEN}"}]}',
                             "application/json"),
                            (b"listeners: [ { name: a, address: '${GANGLION_ADMIN_TOKEN}' } ]\n",
                             "application/yaml")):
            r = self.check(body, ctype)
            self.assertEqual(r.status, 422, r.text)
            self.assertNotIn(TOKEN, r.text)
            self.assertIn("${GANGLION_ADMIN_TOKEN}", r.text)

    def test_malformed_request(self):
        data = raw_request(self.admin_port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                           expect=1)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)


class SignalReloadTest(unittest.TestCase):
    def test_sighup_during_a_reload_queues_one_more(self):
        # A second SIGHUP while a reload ran retried at once and for ever: the main thread
        # spun, the admin API stopped answering and SIGTERM was ignored.
        up = Upstream("backend").__enter__()
        self.addCleanup(up.__exit__, None, None, None)
        port, admin_port = free_port(), free_port()
        keys = "keys:\n" + "".join("  - { name: k%d, key: sk-key-%08d }\n" % (i, i) for i in range(5000))
        gw = Gateway(render(BASE, port=port, up=up.port, admin=admin_port, extra="") + keys,
                     env={"GANGLION_ADMIN_TOKEN": TOKEN}, admin_port=admin_port, port=port)
        gw.start()
        self.addCleanup(gw.__exit__, None, None, None)
        for _ in range(3):
            gw.signal(signal.SIGHUP)
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while True:
            r = gw.admin("GET", "/metrics", token=TOKEN, timeout=2)
            versions = metric_values(r.text, "ganglion_config_version")
            if versions and versions[0][1] >= 3:  # the first reload, then the one queued
                break
            self.assertLess(time.monotonic(), deadline, "the queued reload never ran")
            time.sleep(0.1)
        time.sleep(1.0)
        r = gw.admin("GET", "/metrics", token=TOKEN, timeout=2)
        # Signals during a reload queue one more, not one each (4 if the first ended early).
        self.assertIn(metric_values(r.text, "ganglion_config_version")[0][1], (3, 4))
        self.assertEqual(gw.admin("GET", "/healthz").status, 200)
        gw.signal(signal.SIGTERM)
        self.assertEqual(gw.proc.wait(timeout=10), 0)


class AdminExitTest(unittest.TestCase):
    def test_exits_cleanly_with_admin_connections_open(self):
        up = Upstream("backend").__enter__()
        self.addCleanup(up.__exit__, None, None, None)
        port, admin_port = free_port(), free_port()
        gw = Gateway(render(BASE, port=port, up=up.port, admin=admin_port, extra=""),
                     env={"GANGLION_ADMIN_TOKEN": TOKEN}, admin_port=admin_port, port=port)
        gw.start()
        idle = socket.create_connection(("127.0.0.1", admin_port))
        half = socket.create_connection(("127.0.0.1", admin_port))
        half.sendall(b"GET /config HTTP/1.1\r\nHost: a\r\n")  # a head never finished
        kept = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        self.assertEqual(keepalive_request(kept, "GET", "/healthz").status, 200)
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        code = gw.proc.wait(timeout=10)
        self.assertEqual(code, 0, gw.log_text())
        self.assertLess(time.monotonic() - t0, 5)
        for s in (idle, half):
            s.close()
        kept.close()


if __name__ == "__main__":
    unittest.main()
