"""Command-line behaviour: --version, --help, check, serve with a bad config."""

import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, line_of, run_cli  # noqa: E402

# The reference config from the configuration spec, verbatim.
REFERENCE_CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:8080
    max_header_bytes: 32768   # default; 431 when exceeded
    max_uri_bytes: 8192       # default; 414 when exceeded
    header_timeout: 10s       # durations: "300ms", "10s", "1m"
    body_timeout: 30s
    idle_timeout: 60s
upstreams:
  - name: backend
    targets: [ "127.0.0.1:9000" ]     # or [ { address: "127.0.0.1:9001", weight: 2 } ]
    connect_timeout: 2s
routes:
  - name: all
    match: { path_prefix: / }   # also: path (exact, may contain {param}), host (exact or "*.suffix"), methods: [..], headers: {name: value}
    upstream: backend
    timeout: 30s
    max_body_bytes: 10485760
    rewrite: { path_prefix: /v2 }
    request_headers: { add: { x-a: "1" }, remove: [ x-b ] }
    response_headers: { add: { x-c: "1" }, remove: [ x-d ] }
admin:
  address: 127.0.0.1:9901
  token: ${GANGLION_ADMIN_TOKEN}
"""

# A small valid config used as the base for the broken variants below.
GOOD = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:8080
upstreams:
  - name: backend
    targets: [ "127.0.0.1:9000" ]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: backend
"""

TOKEN_ENV = {"GANGLION_ADMIN_TOKEN": "cli-test-token-Q7x2"}


class CliTest(unittest.TestCase):
    def setUp(self):
        harness.require_binary()
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-cli-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, text, name="config.yaml"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, text, env=None):
        path = self.write(text)
        env = dict(env or {})
        p = run_cli(["check", "--config", path], env=env)
        return path, p, p.stdout + p.stderr

    # -- version / help ----------------------------------------------------
    def test_version(self):
        p = run_cli(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        first = p.stdout.splitlines()[0] if p.stdout.strip() else ""
        self.assertTrue(first.startswith("ganglion "), "stdout was %r" % p.stdout)

    def test_help(self):
        p = run_cli(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        self.assertIn("serve", out)
        self.assertIn("check", out)

    # -- check: good ---------------------------------------------------------
    def test_tokens_counts_stdin(self):
        run = lambda *args, data=b"": subprocess.run([BIN, "tokens", *args], input=data, capture_output=True, timeout=30)
        self.assertEqual(run(data=b"Hello, world!").stdout, b"4\n")
        self.assertEqual(run("--model", "gpt-4", "--ids", data=b"Hello, world!").stdout, b"9906,11,1917,0\n")
        for args in (("--model", "claude-3"), ("--model", ""), ("--encoding", "p50k_base")):
            r = run(*args, data=b"x")
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr, args)

    def test_tokens_batch_does_not_trust_record_lengths(self):
        # A record claiming 4 GiB with three bytes behind it: refused at once, within 400 MB of
        # address space (it used to allocate the declared length first: 4 GB, or an abort).
        import resource
        limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20))
        r = subprocess.run([BIN, "tokens", "--batch"], input=b"\xff\xff\xff\xffabc", capture_output=True,
                           timeout=30, preexec_fn=limit)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"truncated batch record", r.stderr)
        ok = subprocess.run([BIN, "tokens", "--batch", "--ids"], input=b"\x02\x00\x00\x00hi\x00\x00\x00\x00",
                            capture_output=True, timeout=30, preexec_fn=limit)
        self.assertEqual((ok.returncode, ok.stdout), (0, b"3686\n\n"))

    def test_tokens_reports_write_errors(self):
        with open("/dev/full", "wb") as full:
            r = subprocess.run([BIN, "tokens", "--ids"], input=b"some text " * 1000, stdout=full,
                               stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot write", r.stderr)

    def test_check_reference_config(self):
        path, p, out = self.check(REFERENCE_CONFIG, env=TOKEN_ENV)
        self.assertEqual(p.returncode, 0, out)

    def test_check_small_config(self):
        path, p, out = self.check(GOOD)
        self.assertEqual(p.returncode, 0, out)

    # -- check: bad ----------------------------------------------------------
    def test_unknown_upstream_reports_file_and_line(self):
        text = GOOD.replace("    upstream: backend", "    upstream: nosuch")
        n = line_of(text, "upstream: nosuch")
        path, p, out = self.check(text)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("%s:%d:" % (path, n), out)
        self.assertIn("nosuch", out)

    def test_bad_listener_address_reports_line(self):
        text = GOOD.replace("address: 127.0.0.1:8080", "address: nonsense")
        n = line_of(text, "address: nonsense")
        path, p, out = self.check(text)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("%s:%d:" % (path, n), out)

    def test_two_errors_both_reported(self):
        text = (GOOD.replace("address: 127.0.0.1:8080", "address: nonsense")
                    .replace("    upstream: backend", "    upstream: nosuch"))
        n1 = line_of(text, "address: nonsense")
        n2 = line_of(text, "upstream: nosuch")
        path, p, out = self.check(text)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("%s:%d:" % (path, n1), out)
        self.assertIn("%s:%d:" % (path, n2), out)

    def test_yaml_syntax_error_reports_line(self):
        # "a: b: c" is illegal in a block mapping; the error is on that line.
        text = GOOD.replace("    upstream: backend", "    upstream: backend: extra")
        n = line_of(text, "backend: extra")
        path, p, out = self.check(text)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("%s:%d:" % (path, n), out)

    def test_unset_env_var_named(self):
        text = GOOD + "admin:\n  address: 127.0.0.1:9901\n  token: ${UNSET_VAR_XYZ}\n"
        n = line_of(text, "${UNSET_VAR_XYZ}")
        env = dict(os.environ)
        env.pop("UNSET_VAR_XYZ", None)
        path = self.write(text)
        p = subprocess.run([BIN, "check", "--config", path], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("UNSET_VAR_XYZ", out)
        self.assertIn("%s:%d:" % (path, n), out)

    def test_missing_config_file(self):
        p = run_cli(["check", "--config", os.path.join(self.tmp.name, "absent.yaml")])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("absent.yaml", p.stdout + p.stderr)

    def test_serve_on_a_busy_address_fails_naming_it(self):
        # A second gateway on an address another process serves must not share it silently
        # through SO_REUSEPORT (the kernel would split the traffic between two configs).
        port = harness.free_port()
        cfg = "listeners: [ { name: a, address: '127.0.0.1:%d' } ]\n" % port
        with harness.Gateway(cfg, port=port):
            d = tempfile.mkdtemp()
            path = os.path.join(d, "second.yaml")
            with open(path, "w") as f:
                f.write(cfg)
            p = subprocess.run([BIN, "serve", "--config", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("127.0.0.1:%d" % port, p.stderr)
            self.assertIn("already in use", p.stderr)
        # Another kind of listener there (not a gateway) is refused the same way.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        other = s.getsockname()[1]
        try:
            d = tempfile.mkdtemp()
            path = os.path.join(d, "third.yaml")
            with open(path, "w") as f:
                f.write("listeners: [ { name: a, address: '127.0.0.1:%d' } ]\n" % other)
            p = subprocess.run([BIN, "serve", "--config", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("already in use", p.stderr)
        finally:
            s.close()

    def test_serve_bad_config_exits_quickly(self):
        text = GOOD.replace("    upstream: backend", "    upstream: nosuch")
        n = line_of(text, "upstream: nosuch")
        path = self.write(text)
        t0 = time.monotonic()
        p = run_cli(["serve", "--config", path], timeout=5)
        elapsed = time.monotonic() - t0
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertLess(elapsed, 2.0)
        self.assertIn("%s:%d:" % (path, n), out)


if __name__ == "__main__":
    unittest.main()
