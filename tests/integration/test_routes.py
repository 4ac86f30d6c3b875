"""Route matching, priority, rewrite and header manipulation.

Every route points at its own upstream server, named like the route, so the
test sees which route matched from the upstream's X-Upstream reply header
(independent of the header-manipulation features tested separately)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, Upstream, error_json, free_port, http_request, parse_responses,  # noqa: E402
                     raw_exchange)

# (route name, match, extra route fields). Config order is deliberate: several
# routes that must win are listed AFTER the routes they beat.
ROUTES = [
    ("api",            '{ path_prefix: /api }', ""),
    ("api-v1",         '{ path_prefix: /api/v1 }', ""),
    ("api-items-tpl",  '{ path: "/api/items/{id}" }', ""),
    ("api-exact",      '{ path: /api/exact }', ""),
    ("exact",          '{ path: /exact }', ""),
    ("users-tpl",      '{ path: "/users/{id}" }', ""),
    ("users-me",       '{ path: /users/me }', ""),
    ("multi-tpl",      '{ path: "/orgs/{org}/repos/{repo}" }', ""),
    ("wild",           '{ host: "*.example.com" }', ""),
    ("wild-deep",      '{ host: "*.deep.example.com" }', ""),
    ("host-api",       '{ host: api.test }', ""),
    ("host-api-ex",    '{ host: api.test, path: /exact }', ""),
    ("form-any",       '{ path_prefix: /form }', ""),
    ("form-post",      '{ path_prefix: /form, methods: [POST] }', ""),
    ("ver-any",        '{ path_prefix: /ver }', ""),
    ("ver-2",          '{ path_prefix: /ver, headers: { x-version: "2" } }', ""),
    ("dup-first",      '{ path_prefix: /dup }', ""),
    ("dup-second",     '{ path_prefix: /dup }', ""),
    ("old",            '{ path_prefix: /old }', "    rewrite: { path_prefix: /v2 }\n"),
    ("slashy",         '{ path_prefix: /slashy }', "    rewrite: { path_prefix: /v3/ }\n"),
    ("hdrs",           '{ path_prefix: /hdrs }',
     '    request_headers: { add: { x-added: "1" }, remove: [ x-secret ] }\n'
     '    response_headers: { add: { x-resp-added: "yes" }, remove: [ x-remove-me ] }\n'),
]


def build_config(port, upstreams):
    out = ["workers: 1", "listeners:", "  - name: public",
           "    address: 127.0.0.1:%d" % port, "upstreams:"]
    for name, _, _ in ROUTES:
        out.append("  - name: %s" % name)
        out.append('    targets: [ "127.0.0.1:%d" ]' % upstreams[name].port)
    out.append("routes:")
    text = "\n".join(out) + "\n"
    for name, match, extra in ROUTES:
        text += "  - name: %s\n    match: %s\n    upstream: %s\n    timeout: 5s\n%s" % (
            name, match, name, extra)
    return text


class RoutesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ups = {}
        try:
            for name, _, _ in ROUTES:
                cls.ups[name] = Upstream(name).__enter__()
            cls.port = free_port()
            cls.gw = Gateway(build_config(cls.port, cls.ups))
            cls.gw.start()
        except Exception:
            for u in cls.ups.values():
                u.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        for u in cls.ups.values():
            u.__exit__(None, None, None)

    def req(self, path, method="GET", host=None, headers=None, body=None):
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        return http_request(self.port, method, path, headers=h, body=body)

    def assertRoute(self, expected, path, method="GET", host=None, headers=None):
        r = self.req(path, method, host, headers, body=b"" if method == "POST" else None)
        self.assertEqual(r.status, 200, "%s %s host=%s -> %r" % (method, path, host, r))
        self.assertEqual(r.headers.get("x-upstream"), expected,
                         "%s %s host=%s headers=%s" % (method, path, host, headers))
        return r

    def assertNoRoute(self, path, method="GET", host=None):
        r = self.req(path, method, host)
        self.assertEqual(r.status, 404, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        err = error_json(r.body)
        self.assertEqual(err["type"], "route_not_found")
        self.assertEqual(err["code"], 404)
        self.assertIsInstance(err.get("message"), str)

    # -- kinds of match -------------------------------------------------------
    def test_exact_path(self):
        self.assertRoute("exact", "/exact")
        self.assertRoute("exact", "/exact?q=1")

    def test_exact_path_does_not_match_longer_paths(self):
        self.assertNoRoute("/exact/more")
        self.assertNoRoute("/exactly")

    def test_prefix(self):
        self.assertRoute("api", "/api")
        self.assertRoute("api", "/api/anything/deep?x=1")

    def test_templated_path(self):
        r = self.assertRoute("users-tpl", "/users/42")
        self.assertEqual(r.json()["path"], "/users/42")
        self.assertRoute("users-tpl", "/users/abc-def?x=1")

    def test_templated_path_matches_one_segment_only(self):
        self.assertNoRoute("/users/42/extra")
        self.assertNoRoute("/users")

    def test_templated_path_several_params(self):
        self.assertRoute("multi-tpl", "/orgs/acme/repos/gateway")
        self.assertNoRoute("/orgs/acme/repos")

    def test_host_exact(self):
        self.assertRoute("host-api", "/anything", host="api.test")

    def test_host_ignores_port_and_case(self):
        self.assertRoute("host-api", "/anything", host="api.test:8080")
        self.assertRoute("host-api", "/anything", host="API.Test")

    def test_absolute_form_routes_on_its_host_and_path(self):
        # RFC 9112 3.2.2: the target's authority replaces Host; forwarded as origin-form.
        raw, _ = raw_exchange(self.gw.port, b"GET http://api.test/exact?q=1 HTTP/1.1\r\nHost: elsewhere\r\n"
                                            b"Connection: close\r\n\r\n", read_timeout=2)
        status, headers, body = parse_responses(raw)[0]
        self.assertEqual(status, 200, raw[:300])
        self.assertEqual(headers.get("x-upstream"), "host-api-ex")
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/exact?q=1")
        self.assertEqual(echo["headers"]["host"], "api.test")

    def test_host_wildcard(self):
        self.assertRoute("wild", "/x", host="foo.example.com")
        self.assertRoute("wild", "/x", host="a.b.example.com")

    def test_host_wildcard_does_not_match_other_hosts(self):
        self.assertNoRoute("/x", host="example.org")
        self.assertNoRoute("/x", host="badexample.com")

    def test_methods(self):
        self.assertRoute("form-any", "/form", method="GET")
        self.assertRoute("form-post", "/form", method="POST")

    def test_headers(self):
        self.assertRoute("ver-2", "/ver", headers={"X-Version": "2"})
        self.assertRoute("ver-any", "/ver", headers={"X-Version": "3"})
        self.assertRoute("ver-any", "/ver")

    def test_no_route_404(self):
        self.assertNoRoute("/nothing/here")
        self.assertNoRoute("/")

    def test_raw_bytes_outside_ascii_in_the_path_are_400_in_json(self):
        # RFC 3986: a request target is ASCII (other bytes are percent-encoded). A raw 0xFF
        # byte was routed, and quoted raw into the 404 body and the access-log line, which
        # were then not valid JSON.
        raw, _ = raw_exchange(self.port, b"GET /nothing/a\xffb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                              expect=1)
        status, headers, body = parse_responses(raw)[0]
        self.assertEqual(status, 400, raw)
        err = json.loads(body.decode("utf-8"))["error"]
        self.assertEqual(err["type"], "bad_request")
        r = self.req("/nothing/a%FFb")
        self.assertEqual(r.status, 404, r)
        self.assertIn("/nothing/a%FFb", error_json(r.body)["message"])

    # -- priority ------------------------------------------------------------
    def test_exact_beats_template_and_prefix(self):
        self.assertRoute("users-me", "/users/me")       # exact listed after template
        self.assertRoute("api-exact", "/api/exact")     # exact listed after prefix

    def test_template_beats_prefix(self):
        self.assertRoute("api-items-tpl", "/api/items/7")
        self.assertRoute("api", "/api/items/7/more")

    def test_longest_prefix_wins(self):
        self.assertRoute("api-v1", "/api/v1/things")
        self.assertRoute("api", "/api/v2/things")

    def test_host_routes_before_hostless(self):
        # /exact is an exact host-less route, but a host route wins for api.test
        self.assertRoute("host-api-ex", "/exact", host="api.test")
        self.assertRoute("host-api", "/api/v1/x", host="api.test")
        self.assertRoute("wild", "/exact", host="x.example.com")

    def test_exact_host_before_wildcard_and_longer_wildcard_first(self):
        self.assertRoute("wild-deep", "/x", host="a.deep.example.com")
        self.assertRoute("wild", "/x", host="deep.example.com")

    def test_more_conditions_break_ties(self):
        # form-post and ver-2 are listed after their less specific twins
        self.assertRoute("form-post", "/form/sub", method="POST")
        self.assertRoute("ver-2", "/ver/sub", headers={"x-version": "2"})

    def test_config_order_breaks_remaining_ties(self):
        for _ in range(3):
            self.assertRoute("dup-first", "/dup/x")

    # -- rewrite and headers -------------------------------------------------
    def test_rewrite_path_prefix(self):
        r = self.assertRoute("old", "/old/thing?q=1")
        self.assertEqual(r.json()["path"], "/v2/thing?q=1")
        r = self.assertRoute("old", "/old")
        self.assertIn(r.json()["path"], ("/v2", "/v2/"))

    def test_rewrite_cannot_leave_the_new_prefix(self):
        # /slashy matches /slashy../admin (a prefix is a string prefix); joined to /v3/ the rest
        # gave /v3/../admin, which the upstream resolves to /admin, past the routes guarding it.
        r = self.assertRoute("slashy", "/slashy/x")
        self.assertEqual(r.json()["path"], "/v3/x")
        for path in ("/slashy../admin", "/slashy%2e%2e/admin", "/slashy./x"):
            before = len(self.ups["slashy"].paths())
            r = self.req(path)
            self.assertEqual(r.status, 400, (path, r))
            self.assertEqual(error_json(r.body)["type"], "path_not_allowed")
            self.assertEqual(len(self.ups["slashy"].paths()), before, "forwarded: " + path)

    def test_request_headers_add_remove(self):
        r = self.assertRoute("hdrs", "/hdrs", headers={"X-Secret": "hunter2", "X-Keep": "k"})
        h = r.json()["headers"]
        self.assertEqual(h.get("x-added"), "1")
        self.assertNotIn("x-secret", h)
        self.assertEqual(h.get("x-keep"), "k")

    def test_response_headers_add_remove(self):
        r = self.assertRoute("hdrs", "/hdrs", headers={
            "X-Reply-Header": "x-remove-me=gone", "x-reply-header": "x-stays=here"})
        self.assertEqual(r.headers.get("x-resp-added"), "yes")
        self.assertNotIn("x-remove-me", r.headers)
        self.assertEqual(r.headers.get("x-stays"), "here")

    def test_header_rules_apply_only_to_their_route(self):
        r = self.assertRoute("exact", "/exact", headers={"X-Secret": "s"})
        self.assertEqual(r.json()["headers"].get("x-secret"), "s")
        self.assertNotIn("x-added", r.json()["headers"])
        self.assertNotIn("x-resp-added", r.headers)


if __name__ == "__main__":
    unittest.main()
