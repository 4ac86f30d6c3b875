"""TLS: HTTPS listeners (SNI, client certificates, reload) and HTTPS upstreams (verification,
SNI), with certificates made by the openssl command for each run."""

import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, Upstream, error_json, free_port, make_pki, run_cli, wait_until  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402


def peer_cn(sock):
    cert = sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ganglion-tls-")
        make_pki(cls.dir)
        p = lambda n: os.path.join(cls.dir, n)  # noqa: E731
        cls.p = staticmethod(p)
        cls.up = Upstream().__enter__()
        # An HTTPS upstream: the harness's echo server behind TLS with the localhost cert.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(p("localhost.pem"), p("localhost.key"))
        cls.tls_up = Upstream("tls-upstream", ssl_context=ctx).__enter__()
        cls.https_port = cls.tls_up.port
        # An HTTPS upstream that demands a client certificate from our CA (mTLS to upstream).
        mctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        mctx.load_cert_chain(p("localhost.pem"), p("localhost.key"))
        mctx.load_verify_locations(p("ca.pem"))
        mctx.verify_mode = ssl.CERT_REQUIRED
        cls.mtls_up = Upstream("mtls-upstream", ssl_context=mctx).__enter__()
        cls.provider = FakeProvider(name="main").__enter__()

        cls.port = free_port()
        cls.mtls_port = free_port()
        cls.admin_port = free_port()
        cls.config = """workers: 1
listeners:
  - name: https
    address: 127.0.0.1:{port}
    tls:
      certificates:
        - {{ cert: {lc}, key: {lk}, server_names: [ localhost ] }}
        - {{ cert: {oc}, key: {ok}, server_names: [ other.test ] }}
  - name: mtls
    address: 127.0.0.1:{mport}
    tls:
      certificates: [ {{ cert: {lc}, key: {lk} }} ]
      client_ca: {ca}
upstreams:
  - name: plain
    targets: [ "127.0.0.1:{up}" ]
  - name: secure
    targets: [ "127.0.0.1:{https}" ]
    tls: {{ ca: {ca}, server_name: localhost }}
  - name: distrusted
    targets: [ "127.0.0.1:{https}" ]
    tls: {{ ca: {rogue} }}
  - name: with-client-cert
    targets: [ "127.0.0.1:{mtls_up}" ]
    tls: {{ ca: {ca}, server_name: localhost, cert: {cc}, key: {ck} }}
  - name: without-client-cert
    targets: [ "127.0.0.1:{mtls_up}" ]
    tls: {{ ca: {ca}, server_name: localhost }}
providers:
  - {{ name: main, kind: openai, base_url: "http://{provider}/v1", api_key: sk-provider }}
models:
  - {{ name: m, targets: [ {{ provider: main, model: m1 }} ] }}
keys:
  - {{ name: demo, key: sk-gw-demo }}
routes:
  - {{ name: llm, match: {{ path_prefix: /v1/ }}, llm: {{}} }}
  - {{ name: with-cert, match: {{ path_prefix: /with-cert }}, upstream: with-client-cert }}
  - {{ name: without-cert, match: {{ path_prefix: /without-cert }}, upstream: without-client-cert }}
  - {{ name: secure, match: {{ path_prefix: /secure }}, upstream: secure }}
  - {{ name: distrusted, match: {{ path_prefix: /distrusted }}, upstream: distrusted }}
  - {{ name: plain, match: {{ path_prefix: / }}, upstream: plain }}
admin:
  address: 127.0.0.1:{admin}
  token: tls-test-token-value
""".format(port=cls.port, mport=cls.mtls_port, admin=cls.admin_port, up=cls.up.port, https=cls.https_port,
           lc=p("localhost.pem"), lk=p("localhost.key"), oc=p("other.pem"), ok=p("other.key"),
           ca=p("ca.pem"), rogue=p("rogue-ca.pem"), mtls_up=cls.mtls_up.port,
           cc=p("client.pem"), ck=p("client.key"), provider=cls.provider.address)
        cls.gw = Gateway(cls.config, admin_port=cls.admin_port)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.up.__exit__(None, None, None)
        cls.tls_up.__exit__(None, None, None)
        cls.mtls_up.__exit__(None, None, None)
        cls.provider.__exit__(None, None, None)

    def client_ctx(self, with_client_cert=False):
        ctx = ssl.create_default_context(cafile=self.p("ca.pem"))
        if with_client_cert:
            ctx.load_cert_chain(self.p("client.pem"), self.p("client.key"))
        return ctx

    def https_get(self, port, path="/", server_name="localhost", ctx=None):
        ctx = ctx or self.client_ctx()
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname=server_name)
        cn = peer_cn(s)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(), server_name.encode()))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return int(data.split(b" ", 2)[1]), cn, data

    def test_llm_call_cancelled_when_a_tls_client_leaves(self):
        # The client sends close_notify, then its FIN, while the provider is still thinking:
        # the gateway must notice through the unread TLS record and cancel the provider call.
        self.provider.script(delay=3.0)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "echo: gone"}]}).encode()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s = self.client_ctx().wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-gw-demo\r\n"
                  b"Content-Type: application/json\r\nx-request-id: tls-hangup\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        self.provider.wait_for_requests(1, timeout=5)
        s.settimeout(0.3)
        try:
            s.unwrap()  # sends close_notify; the gateway never answers it
        except (OSError, ssl.SSLError):
            pass
        s.close()  # the FIN (wrap_socket took over the descriptor)

        def logged():
            return self.gw.access_records('"client_closed"', '"m1"')
        self.assertTrue(wait_until(logged, timeout=2.5), "the call was not cancelled early")
        rec = logged()[0]
        self.assertEqual(rec["error"], "client_closed")
        self.assertLess(rec["duration_us"], 2_500_000)
        self.assertTrue(rec["usage_estimated"])

    def test_https_listener_and_sni(self):
        status, cn, _ = self.https_get(self.port, server_name="localhost")
        self.assertEqual((status, cn), (200, "localhost"))
        status, cn, _ = self.https_get(self.port, server_name="other.test")
        self.assertEqual((status, cn), (200, "other.test"))

    def test_plain_http_to_tls_listener_is_refused(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        self.assertFalse(data.startswith(b"HTTP/1.1 200"))
        s.close()
        self.assertEqual(self.https_get(self.port)[0], 200)

    def test_mtls_requires_client_certificate(self):
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            self.https_get(self.mtls_port)
        status, _, _ = self.https_get(self.mtls_port, ctx=self.client_ctx(with_client_cert=True))
        self.assertEqual(status, 200)

    def test_https_upstream_verified(self):
        status, _, data = self.https_get(self.port, "/secure/x")
        self.assertEqual(status, 200, data[:300])
        self.assertIn(b'"path": "/secure/x"', data.replace(b'":"', b'": "'))

    def test_https_upstream_with_untrusted_certificate_fails(self):
        status, _, data = self.https_get(self.port, "/distrusted")
        self.assertEqual(status, 502)
        body = data.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(error_json(body)["type"], "upstream_tls_failed")

    def test_client_certificate_to_upstream(self):
        status, _, data = self.https_get(self.port, "/with-cert/x")
        self.assertEqual(status, 200, data[:300])
        status, _, data = self.https_get(self.port, "/without-cert/x")
        self.assertEqual(status, 502, data[:300])

    def test_missing_certificate_file_is_a_config_error(self):
        path = os.path.join(self.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - name: a\n    address: 127.0.0.1:1\n    tls:\n"
                    "      certificates: [ { cert: /nonexistent.pem, key: /nonexistent.key } ]\n")
        p = run_cli(["check", "--config", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:5: cannot load certificate '/nonexistent.pem'" % path, p.stderr)

    def test_zz_certificate_reload_on_sighup(self):
        # Swap the localhost certificate for the other.test one on disk, reload, and see new
        # connections get it while the old config keeps serving until then.
        cfg = self.config.replace("{ cert: %s, key: %s, server_names: [ localhost ] }" % (
            self.p("localhost.pem"), self.p("localhost.key")),
            "{ cert: %s, key: %s, server_names: [ localhost ] }" % (self.p("other.pem"), self.p("other.key")))
        self.gw.reload_file(cfg)
        self.gw.signal(signal.SIGHUP)
        ctx = ssl.create_default_context(cafile=self.p("ca.pem"))
        ctx.check_hostname = False

        def swapped():
            try:
                return self.https_get(self.port, server_name="localhost", ctx=ctx)[1] == "other.test"
            except OSError:
                return False
        self.assertTrue(wait_until(swapped, timeout=5))


if __name__ == "__main__":
    unittest.main()
