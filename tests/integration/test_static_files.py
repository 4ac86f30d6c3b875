"""Static file serving: a route's `static: { root: DIR }` target and the admin API's console
(`admin.console`), as docs/configuration.md ("Static files") and docs/admin-api.md
("GET /console/...") describe them.

Every class builds its own tree of files in a temp directory. Next to each served root lies a
sentinel file (and a sibling directory whose name starts like the root's) holding a random
marker: whatever a request sends, that marker must never come back."""

import email.utils
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, LOCALHOST, Gateway, free_port, http_request, keepalive_request,  # noqa: E402
                     line_of, parse_responses, raw_exchange, render, run_cli, wait_until)

TOKEN = "St4tic-Adm1n-T0ken-xyz"
API_KEY = "static-key-0123456789"
SENTINEL = b"SENTINEL-OUTSIDE-THE-ROOT-" + os.urandom(8).hex().encode()
# A fixed mtime with a sub-second part, so ETag and Last-Modified are known exactly.
MTIME = 1700000000
MTIME_NS = MTIME * 10**9 + 123456789
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def write(path, data, mtime_ns=MTIME_NS):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def etag_of(path):
    st = os.stat(path)
    return '"%x.%x-%x"' % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, st.st_size)


def http_date(seconds):
    return email.utils.formatdate(seconds, usegmt=True)


def rfc850_date(seconds):
    return time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(seconds))


def asctime_date(seconds):
    t = time.gmtime(seconds)
    return "%s %s %2d %s" % (time.strftime("%a", t), time.strftime("%b", t), t.tm_mday,
                             time.strftime("%H:%M:%S %Y", t))


def first_difference(got, want):
    """None when equal, else a short description (large bodies must not flood the report)."""
    got, want = bytes(got), bytes(want)
    if got == want:
        return None
    n = min(len(got), len(want))
    at = next((i for i in range(0, n, 4096) if got[i:i + 4096] != want[i:i + 4096]), None)
    if at is not None:
        at = next(i for i in range(at, min(at + 4096, n)) if got[i] != want[i])
    return "got %d bytes, want %d; first difference at %s" % (len(got), len(want), at)


def raw(port, target, method="GET", headers=(), timeout=3.0):
    """One request sent byte for byte (nothing normalises the target); returns
    (status, headers, body) of the first response."""
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, target)
    for name, value in headers:
        head += "%s: %s\r\n" % (name, value)
    data, _ = raw_exchange(port, (head + "\r\n").encode("latin-1"), read_timeout=timeout,
                           expect=1, methods=[method])
    responses = parse_responses(data, methods=[method])
    if not responses:
        raise AssertionError("no complete response to %s %r within %.1fs; got %r"
                             % (method, target, timeout, data[:300]))
    return responses[0]


def error_of(body):
    return json.loads(body.decode("utf-8"))["error"]


def build_tree(base):
    """The served root and its surroundings under `base`; returns the root's path."""
    root = os.path.join(base, "root")
    write(os.path.join(base, "sentinel.txt"), SENTINEL)
    write(os.path.join(base, "outside", "secret.txt"), SENTINEL)
    write(os.path.join(base, "rootx", "secret.txt"), SENTINEL)      # shares the root's prefix
    write(os.path.join(base, "root.txt"), SENTINEL)
    files = {
        "index.html": b"<!doctype html><title>root index</title>\n",
        "hello.txt": b"hello, static world\n",
        "style.css": b"body { color: red }\n",
        "app.js": b"console.log('app');\n",
        "data.json": b'{"k": 1}\n',
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
        "font.woff2": b"wOF2\x00\x01\x00\x00fontdata",
        "blob.zzqq": b"\x00\x01\x02unknown",
        "noext": b"no extension\n",
        "notes.md": b"# notes\n",
        "model.glb": b"glTF\x02\x00\x00\x00",
        "empty.txt": b"",
        "range.bin": bytes(range(256)) * 4,                    # 1024 bytes
        "sub/index.html": b"<p>sub index</p>\n",
        "sub/page.html": b"<p>sub page</p>\n",
        "sub/deeper/leaf.txt": b"leaf\n",
        "sub/.secret": b"sub dot secret\n",
        "sub/.well-known/x": b"nested well-known\n",
        "assets/a.css": b".assets-a {}\n",
        "empty/.keep": b"",
        "alt/home.htm": b"alt home\n",
        ".env": b"DB_PASSWORD=dotenv-secret\n",
        ".git/config": b"[core]\n\tgit-config-secret\n",
        ".hidden/x.txt": b"hidden dir file\n",
        ".well-known/x": b"well-known x\n",
        ".well-known/.env": b"dotfile in well-known secret\n",
        "sp ace.txt": b"space name\n",
        "\u00fc.txt": b"umlaut name\n",
        "%zz": b"literal percent file\n",
    }
    for name, data in files.items():
        write(os.path.join(root, name), data)
    # symbolic links: in and out of the root, relative and absolute, files and directories
    os.symlink("hello.txt", os.path.join(root, "link-in-rel"))
    os.symlink(os.path.join(root, "hello.txt"), os.path.join(root, "link-in-abs"))
    os.symlink("../sentinel.txt", os.path.join(root, "link-out-rel"))
    os.symlink(os.path.join(base, "sentinel.txt"), os.path.join(root, "link-out-abs"))
    os.symlink("sub", os.path.join(root, "linkdir-in"))
    os.symlink("../outside", os.path.join(root, "linkdir-out"))
    os.symlink(os.path.join(base, "outside"), os.path.join(root, "linkdir-out-abs"))
    os.symlink("../hello.txt", os.path.join(root, "sub", "link-up"))
    os.symlink("no-such-target", os.path.join(root, "dangling"))
    os.symlink("/etc/passwd", os.path.join(root, "passwd"))
    os.symlink("/dev/zero", os.path.join(root, "zero-link"))
    os.symlink("loop", os.path.join(root, "loop"))
    os.symlink("loop-b", os.path.join(root, "loop-a"))
    os.symlink("loop-a", os.path.join(root, "loop-b"))
    # special files
    os.mkfifo(os.path.join(root, "fifo"))
    os.mkfifo(os.path.join(root, "sub", "fifo.html"))
    os.symlink("fifo", os.path.join(root, "fifo-link"))
    return root


# --------------------------------------------------------------------------
# one gateway, many routes over one tree
# --------------------------------------------------------------------------

CONFIG = """\
workers: 2
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
  - name: raw
    address: 127.0.0.1:@RAW@
    normalize_path: false
keys:
  - { name: k1, key: "@KEY@" }
routes:
  - name: files                     # the whole path under the root
    static: { root: "@ROOT@" }
  - name: pub                       # no rewrite: /pub/x.txt is PUB/pub/x.txt
    match: { path_prefix: /pub/ }
    static: { root: "@PUB@" }
  - name: strip                     # rewrite: /strip/x.txt is PUB/x.txt
    match: { path_prefix: /strip/ }
    rewrite: { path_prefix: / }
    static: { root: "@PUB@" }
  - name: app
    match: { path_prefix: /app/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", cache_control: "public, max-age=3600" }
  - name: noindex
    match: { path_prefix: /noindex/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", index: "" }
  - name: alt
    match: { path_prefix: /altidx/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@/alt", index: home.htm }
  - name: nocc
    match: { path_prefix: /nocc/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", cache_control: "" }
  - name: dots
    match: { path_prefix: /dots/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", dotfiles: true }
  - name: follow
    match: { path_prefix: /follow/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", follow_symlinks: true }
  - name: typed
    match: { path_prefix: /typed/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@", types: { md: text/x-custom-markdown, glb: model/gltf-binary } }
  - name: guarded
    match: { path_prefix: /guarded/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@" }
    filters:
      - key_auth: {}
  - name: cors
    match: { path_prefix: /cors/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@" }
    filters:
      - cors: { allow_origins: [ "https://app.example" ] }
      - headers: { response: { add: { x-static-filter: "yes" } } }
  - name: hdrs
    match: { path_prefix: /hdrs/ }
    rewrite: { path_prefix: / }
    static: { root: "@ROOT@" }
    response_headers:
      add: { cache-control: "private, max-age=5", content-security-policy: "default-src 'self'" }
      remove: [ accept-ranges ]
"""

# (target, status on the normalising listener, status on the `normalize_path: false` one)
ESCAPES = [
    ("/../sentinel.txt", 404, 400),
    ("/../../../../../../etc/passwd", 404, 400),
    ("/%2e%2e/sentinel.txt", 404, 400),
    ("/.%2e/sentinel.txt", 404, 400),
    ("/%2e./sentinel.txt", 404, 400),
    ("/%2E%2E%2Fsentinel.txt", 400, 400),
    ("/%2e%2e%2fsentinel.txt", 400, 400),
    ("/..%2fsentinel.txt", 400, 400),
    ("/..%2Fsentinel.txt", 400, 400),
    ("/%2f..%2fsentinel.txt", 400, 400),
    ("/sub%2f..%2f..%2fsentinel.txt", 400, 400),
    ("/sub/..%2f..%2fsentinel.txt", 400, 400),
    ("/..%2frootx%2fsecret.txt", 400, 400),
    ("/../rootx/secret.txt", 404, 400),
    ("/../root.txt", 404, 400),
    ("/..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", 400, 400),
    ("/hello.txt%00", 400, 400),
    ("/%00/../sentinel.txt", 404, 400),           # normalising drops the `%00/..` pair
    ("/sub%00/..%2f..%2fsentinel.txt", 400, 400),
    ("//etc/passwd", 404, 404),
    ("///etc//passwd", 404, 404),
    ("/%2fetc%2fpasswd", 404, 404),
    ("/..\\sentinel.txt", 404, 404),
    ("/sub\\..\\..\\sentinel.txt", 404, 404),
    ("/..%5csentinel.txt", 404, 404),
    ("/..%5c..%5csentinel.txt", 404, 404),
    ("/%252e%252e%252fsentinel.txt", 404, 404),
    ("/%c0%ae%c0%ae/sentinel.txt", 404, 404),
    ("/..;/sentinel.txt", 404, 404),              # `..;` is a name, not `..`
    ("http://localhost/..%2fsentinel.txt", 400, 400),
    ("http://localhost/../sentinel.txt", 404, 400),
    ("/" + "..%2f" * 1500 + "sentinel.txt", 400, 400),
    ("/" + "a/" * 1000 + "../" * 1001 + "sentinel.txt", 404, 400),
]


class StaticFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ganglion-static-")
        cls.root = build_tree(cls.tmp)
        cls.pub = os.path.join(cls.tmp, "pubroot")
        write(os.path.join(cls.pub, "x.txt"), b"pub top x\n")
        write(os.path.join(cls.pub, "pub", "x.txt"), b"pub nested x\n")
        write(os.path.join(cls.pub, "index.html"), b"pub index\n")
        # special files only root may make: a character device (a /dev/zero twin) and a socket
        cls.unix = None
        if IS_ROOT:
            os.mknod(os.path.join(cls.root, "zero"), 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        cls.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.unix.bind(os.path.join(cls.root, "sock"))
        cls.port = free_port()
        cls.raw_port = free_port()
        cls.gw = Gateway(render(CONFIG, port=cls.port, raw=cls.raw_port, root=cls.root,
                                pub=cls.pub, key=API_KEY))
        try:
            cls.gw.start()
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.unix.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertTrue(self.gw.alive(), "the gateway died; log:\n" + self.gw.log_text()[-3000:])

    def get(self, path, method="GET", headers=None, port=None):
        return http_request(port or self.port, method, path, headers=headers or {})

    def path(self, name):
        return os.path.join(self.root, name)

    def assertNoLeak(self, body, what):
        self.assertNotIn(SENTINEL, body, "%s returned a file outside the root" % what)
        self.assertNotIn(b"root:x:0:0", body, "%s returned /etc/passwd" % what)

    def assertJsonError(self, body, code, type_=None):
        err = error_of(body)
        self.assertEqual(err["code"], code)
        if type_:
            self.assertEqual(err["type"], type_)
        return err

    # -- 1. basic GET / HEAD / methods ---------------------------------------------------
    def test_get_headers_and_body(self):
        r = self.get("/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello, static world\n")
        self.assertEqual(r.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(r.headers["content-length"], str(len(r.body)))
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        self.assertEqual(r.headers["accept-ranges"], "bytes")
        self.assertEqual(r.headers["cache-control"], "no-cache")
        self.assertEqual(r.headers["etag"], etag_of(self.path("hello.txt")))
        self.assertEqual(r.headers["last-modified"], http_date(MTIME))

    def test_content_types(self):
        expected = {
            "/index.html": "text/html; charset=utf-8",
            "/style.css": "text/css; charset=utf-8",
            "/app.js": "text/javascript; charset=utf-8",
            "/data.json": "application/json",
            "/logo.svg": "image/svg+xml",
            "/font.woff2": "font/woff2",
            "/blob.zzqq": "application/octet-stream",
            "/noext": "application/octet-stream",
            "/hello.txt": "text/plain; charset=utf-8",
        }
        for path, ctype in expected.items():
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers.get("content-type"), ctype)
                with open(self.path(path[1:]), "rb") as f:
                    self.assertEqual(r.body, f.read())

    def test_types_option(self):
        r = self.get("/typed/notes.md")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"].split(";")[0], "text/x-custom-markdown")
        r = self.get("/typed/model.glb")
        self.assertEqual(r.headers["content-type"].split(";")[0], "model/gltf-binary")
        # the built-in table still applies to the others, and other routes are untouched
        self.assertEqual(self.get("/typed/style.css").headers["content-type"],
                         "text/css; charset=utf-8")
        self.assertEqual(self.get("/model.glb").headers["content-type"],
                         "application/octet-stream")

    def test_empty_file(self):
        r = self.get("/empty.txt")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers["content-length"], "0")

    def test_cache_control_configured_and_disabled(self):
        self.assertEqual(self.get("/app/hello.txt").headers["cache-control"],
                         "public, max-age=3600")
        r = self.get("/nocc/hello.txt")
        self.assertEqual(r.status, 200)
        self.assertNotIn("cache-control", r.headers)

    def test_head_same_headers_no_body(self):
        for path in ("/hello.txt", "/index.html", "/", "/range.bin", "/empty.txt"):
            with self.subTest(path=path):
                g = self.get(path)
                h = self.get(path, method="HEAD")
                self.assertEqual(h.status, 200)
                self.assertEqual(h.body, b"")
                for name in ("content-type", "content-length", "etag", "last-modified",
                             "cache-control", "accept-ranges", "x-content-type-options"):
                    self.assertEqual(h.headers.get(name), g.headers.get(name), name)
        # raw: no byte of body after the HEAD head (a second, pipelined request shows it)
        data, _ = raw_exchange(self.port, b"HEAD /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n"
                                          b"GET /noext HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                               expect=2, methods=["HEAD", "GET"])
        rs = parse_responses(data, methods=["HEAD", "GET"])
        self.assertEqual([r[0] for r in rs], [200, 200])
        self.assertEqual(rs[1][2], b"no extension\n")

    def test_other_methods_405(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                r = http_request(self.port, method, "/hello.txt", body=b"payload")
                self.assertEqual(r.status, 405)
                self.assertEqual(r.headers.get("allow"), "GET, HEAD")
                self.assertEqual(r.headers.get("content-type"), "application/json")
                self.assertJsonError(r.body, 405, "method_not_allowed")
        # a refused request's body does not spill into the next request on the connection
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        try:
            r = keepalive_request(conn, "POST", "/hello.txt", body=b"GET /x HTTP/1.1\r\n\r\n" * 3)
            self.assertEqual(r.status, 405)
            if not r.headers.get("connection", "").lower() == "close":
                r = keepalive_request(conn, "GET", "/hello.txt")
                self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        finally:
            conn.close()

    def test_etag_is_stable_and_names_the_file(self):
        a = self.get("/hello.txt").headers["etag"]
        b = self.get("/app/hello.txt").headers["etag"]
        self.assertEqual(a, b)
        # the tag is mtime and size: another size, another tag
        self.assertNotEqual(a, self.get("/noext").headers["etag"])

    # -- 2. path mapping -------------------------------------------------------------------
    def test_without_rewrite_whole_path_under_root(self):
        r = self.get("/pub/x.txt")
        self.assertEqual((r.status, r.body), (200, b"pub nested x\n"))
        r = self.get("/assets/a.css")
        self.assertEqual((r.status, r.body), (200, b".assets-a {}\n"))

    def test_rewrite_drops_prefix(self):
        r = self.get("/strip/x.txt")
        self.assertEqual((r.status, r.body), (200, b"pub top x\n"))
        r = self.get("/strip/")
        self.assertEqual((r.status, r.body), (200, b"pub index\n"))
        r = self.get("/app/sub/page.html")
        self.assertEqual((r.status, r.body), (200, b"<p>sub page</p>\n"))

    def test_index_for_trailing_slash(self):
        r = self.get("/")
        self.assertEqual((r.status, r.body), (200, b"<!doctype html><title>root index</title>\n"))
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(r.headers["etag"], etag_of(self.path("index.html")))
        r = self.get("/sub/")
        self.assertEqual((r.status, r.body), (200, b"<p>sub index</p>\n"))
        r = self.get("/app/sub/")
        self.assertEqual((r.status, r.body), (200, b"<p>sub index</p>\n"))
        r = self.get("/altidx/")
        self.assertEqual((r.status, r.body), (200, b"alt home\n"))

    def test_directory_without_slash_redirects(self):
        for path, location in (("/sub", "./sub/"), ("/sub?a=1&b=two", "./sub/?a=1&b=two"),
                               ("/app/sub", "./sub/"), ("/sub/deeper", "./deeper/"),
                               ("/empty", "./empty/"), ("/app/sub/deeper?q", "./deeper/?q")):
            with self.subTest(path=path):
                status, headers, _ = raw(self.port, path)
                self.assertEqual(status, 301)
                self.assertEqual(headers.get("location"), location)
        status, headers, body = raw(self.port, "/sub", method="HEAD")
        self.assertEqual((status, headers.get("location"), body), (301, "./sub/", b""))
        # the last segment is repeated as sent, so the relative Location resolves to the
        # same directory (an encoded slash stays encoded)
        status, headers, _ = raw(self.raw_port, "/sub%2fdeeper?x=1")
        self.assertEqual((status, headers.get("location")), (301, "./sub%2fdeeper/?x=1"))
        status, headers, _ = raw(self.port, "/sub%2fdeeper")
        self.assertEqual((status, headers.get("location", "").lower()), (301, "./sub%2fdeeper/"))

    def test_directory_without_index(self):
        r = self.get("/empty/")
        self.assertEqual(r.status, 404)
        self.assertJsonError(r.body, 404, "not_found")
        for path in ("/noindex/", "/noindex/sub/"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 404)
                self.assertJsonError(r.body, 404, "not_found")
        r = self.get("/noindex/sub/index.html")
        self.assertEqual((r.status, r.body), (200, b"<p>sub index</p>\n"))

    def test_missing_file_404_json(self):
        for path in ("/nope.txt", "/sub/nope/", "/hello.txt/", "/hello.txt/x", "/app/nope.css"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 404)
                self.assertEqual(r.headers.get("content-type"), "application/json")
                self.assertJsonError(r.body, 404, "not_found")

    def test_encoded_names_and_query(self):
        r = self.get("/sp%20ace.txt")
        self.assertEqual((r.status, r.body), (200, b"space name\n"))
        r = self.get("/%C3%BC.txt")
        self.assertEqual((r.status, r.body), (200, b"umlaut name\n"))
        r = self.get("/%68ello.txt?v=123&x=%2e%2e")
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        # an encoded '%' names a file with a '%' in it
        r = self.get("/%25zz")
        self.assertEqual((r.status, r.body), (200, b"literal percent file\n"))

    # -- 3. escapes ------------------------------------------------------------------------
    def test_escapes_never_leave_root(self):
        prefixes = ("", "/app", "/dots", "/follow", "/pub", "/strip", "/guarded", "/assets")
        for port in (self.port, self.raw_port):
            for prefix in prefixes:
                for target, _, _ in ESCAPES + [("/%zz/../../sentinel.txt", 0, 0)]:
                    full = prefix + target
                    status, _, body = raw(port, full,
                                          headers=[("Authorization", "Bearer " + API_KEY)])
                    self.assertNoLeak(body, "GET %s on port %d" % (full[:120], port))
                    self.assertNotEqual(status, 200, "GET %s on port %d" % (full[:120], port))

    def test_escape_statuses(self):
        for target, normalised, byte_for_byte in ESCAPES:
            for port, expected in ((self.port, normalised), (self.raw_port, byte_for_byte)):
                with self.subTest(target=target[:120], listener="raw" if port == self.raw_port else "public"):
                    status, headers, body = raw(port, target)
                    self.assertEqual(status, expected, body[:200])
                    self.assertEqual(error_of(body)["code"], expected)

    def test_escapes_after_a_prefix(self):
        # /assets/ has no rewrite: the `..` reaches the static lookup; with rewrite the
        # request may not leave the new prefix either (400 both ways)
        for target in ("/assets/..%2fsentinel.txt", "/assets/..%2f..%2fsentinel.txt",
                       "/app/..%2fsentinel.txt", "/app/sub%2f..%2f..%2fsentinel.txt"):
            for port in (self.port, self.raw_port):
                with self.subTest(target=target, port=port):
                    status, _, body = raw(port, target)
                    self.assertEqual(status, 400)
                    self.assertNoLeak(body, target)
        for target in ("/app/../sentinel.txt", "/app/../../sentinel.txt"):
            with self.subTest(target=target):
                status, _, body = raw(self.raw_port, target)
                self.assertEqual(status, 400)
                status, _, body = raw(self.port, target)
                self.assertEqual(status, 404)

    def test_bad_percent_is_400(self):
        # docs: "A `..` segment, a NUL (`%00`) or a `%` that starts no encoding answers `400`."
        for target in ("/%zz", "/%", "/%4", "/sub/%g1.txt", "/app/%zz"):
            with self.subTest(target=target, listener="raw"):
                status, _, body = raw(self.raw_port, target)
                self.assertEqual(status, 400, body[:200])
        # A normalising listener has read such a '%' as a literal one (%25) before routing:
        # it names the file "%zz", and a missing one is a 404.
        for target, expected in (("/%zz", 200), ("/app/%zz", 200), ("/%", 404), ("/%4", 404),
                                 ("/sub/%g1.txt", 404)):
            with self.subTest(target=target, listener="public"):
                status, _, body = raw(self.port, target)
                self.assertEqual(status, expected, body[:200])
                if expected == 200:
                    self.assertEqual(body, b"literal percent file\n")

    def test_status_lines_have_standard_reasons(self):
        for headers, line in (([("If-Match", '"nope"')], b"HTTP/1.1 412 Precondition Failed\r\n"),
                              ([("Range", "bytes=99999999-")], b"HTTP/1.1 416 Range Not Satisfiable\r\n")):
            data, _ = raw_exchange(self.port, ("GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n%s"
                                               "\r\n" % "".join("%s: %s\r\n" % h for h in headers)).encode(),
                                   read_timeout=3, expect=1)
            self.assertTrue(data.startswith(line), data[:80])

    def test_huge_range_positions_are_positions(self):
        size = len(self.get("/hello.txt").body)
        for spec in ("bytes=18446744073709551615-", "bytes=99999999999999999999999-"):
            with self.subTest(spec=spec):
                r = self.get("/hello.txt", headers={"Range": spec})
                self.assertEqual(r.status, 416)
                self.assertEqual(r.headers["content-range"], "bytes */%d" % size)
        r = self.get("/hello.txt", headers={"Range": "bytes=0-99999999999999999999999"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.headers["content-range"], "bytes 0-%d/%d" % (size - 1, size))

    def test_trailing_dot_segment_names_a_directory(self):
        # "/f/." is the directory form, as "/f/" is: never the file f (listeners agreed only
        # when they normalise).
        for port in (self.port, self.raw_port):
            with self.subTest(port=port):
                self.assertEqual(raw(port, "/hello.txt/.")[0], 404)
                self.assertEqual(raw(port, "/hello.txt/")[0], 404)
        status, _, body = raw(self.raw_port, "/sub/.")
        self.assertEqual(status, 200)

    # -- 4. dotfiles -----------------------------------------------------------------------
    def test_dotfiles_hidden_by_default(self):
        for target in ("/.env", "/.git/config", "/.git/", "/.git", "/.hidden/x.txt",
                       "/sub/.secret", "/sub/.well-known/x", "/app/.env", "/%2eenv",
                       "/.well-known/.env", "/app/.well-known/.env",
                       "/.git%2fconfig", "/%2Egit/config"):
            for port in (self.port, self.raw_port):
                with self.subTest(target=target, port=port):
                    status, _, body = raw(port, target)
                    self.assertEqual(status, 404, body[:200])
                    self.assertNotIn(b"secret", body)

    def test_well_known_served(self):
        r = self.get("/.well-known/x")
        self.assertEqual((r.status, r.body), (200, b"well-known x\n"))
        r = self.get("/app/.well-known/x")
        self.assertEqual((r.status, r.body), (200, b"well-known x\n"))

    def test_dotfiles_true_serves_them(self):
        r = self.get("/dots/.env")
        self.assertEqual((r.status, r.body), (200, b"DB_PASSWORD=dotenv-secret\n"))
        r = self.get("/dots/.git/config")
        self.assertEqual((r.status, r.body), (200, b"[core]\n\tgit-config-secret\n"))
        r = self.get("/dots/sub/.secret")
        self.assertEqual((r.status, r.body), (200, b"sub dot secret\n"))

    # -- 5. symbolic links -----------------------------------------------------------------
    LINKS = ("link-in-rel", "link-in-abs", "link-out-rel", "link-out-abs", "linkdir-in/page.html",
             "linkdir-out/secret.txt", "linkdir-out-abs/secret.txt", "sub/link-up", "passwd",
             "zero-link", "fifo-link", "dangling")

    def test_symlinks_refused_by_default(self):
        for name in self.LINKS:
            for target in ("/" + name, "/app/" + name):
                with self.subTest(target=target):
                    status, _, body = raw(self.port, target)
                    self.assertNoLeak(body, target)
                    self.assertEqual(status, 403, body[:200])
                    self.assertEqual(error_of(body)["code"], 403)
        status, _, _ = raw(self.port, "/linkdir-in/")
        self.assertEqual(status, 403)

    def test_follow_symlinks_inside_only(self):
        served = {"link-in-rel": b"hello, static world\n",
                  "linkdir-in/page.html": b"<p>sub page</p>\n",
                  "linkdir-in/": b"<p>sub index</p>\n",
                  "sub/link-up": b"hello, static world\n"}
        for name, body in served.items():
            with self.subTest(name=name):
                r = self.get("/follow/" + name)
                self.assertEqual((r.status, r.body), (200, body))
        # leads out of the root: 403 (an absolute link is refused by RESOLVE_BENEATH, even
        # one that points back inside)
        for name in ("link-out-rel", "link-out-abs", "linkdir-out/secret.txt",
                     "linkdir-out-abs/secret.txt", "passwd", "zero-link", "link-in-abs"):
            with self.subTest(name=name):
                status, _, body = raw(self.port, "/follow/" + name, timeout=3)
                self.assertNoLeak(body, name)
                self.assertEqual(status, 403, body[:200])
        status, _, _ = raw(self.port, "/follow/linkdir-in")
        self.assertEqual(status, 301)
        # a followed link to a FIFO is still not a regular file
        status, _, _ = raw(self.port, "/follow/fifo-link", timeout=3)
        self.assertEqual(status, 404)

    def test_symlink_loops(self):
        for target in ("/loop", "/loop-a", "/loop/x", "/follow/loop", "/follow/loop-a",
                       "/follow/loop-b/x"):
            with self.subTest(target=target):
                started = time.monotonic()
                status, _, body = raw(self.port, target, timeout=3)
                self.assertLess(time.monotonic() - started, 2.0)
                self.assertIn(status, (403, 404), body[:200])
                if not target.startswith("/follow/"):
                    self.assertEqual(status, 403)

    def test_swapping_links_under_requests(self):
        """A file and a directory flip between real ones and links out of the root while
        requests run: nothing outside the root is ever served."""
        f = self.path("race.txt")
        d = self.path("racedir")
        write(f, b"race regular\n")
        write(os.path.join(d, "secret.txt"), b"race dir file\n")
        stop = threading.Event()
        errors = []

        def flip():
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    os.symlink("../sentinel.txt", f + ".l")
                    os.replace(f + ".l", f)
                    write(f + ".f", b"race regular\n", mtime_ns=None)
                    os.replace(f + ".f", f)
                    os.rename(d, d + ".real")
                    os.symlink("../outside", d)
                    os.unlink(d)
                    os.rename(d + ".real", d)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        t = threading.Thread(target=flip)
        t.start()
        seen = set()
        try:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                for target in ("/race.txt", "/follow/race.txt", "/racedir/secret.txt",
                               "/follow/racedir/secret.txt"):
                    for port in (self.port, self.raw_port):
                        status, _, body = raw(port, target)
                        self.assertNoLeak(body, target)
                        self.assertIn(status, (200, 403, 404), body[:200])
                        if status == 200:
                            self.assertIn(body, (b"race regular\n", b"race dir file\n"))
                        seen.add(status)
        finally:
            stop.set()
            t.join(5)
        self.assertEqual(errors, [])
        self.assertIn(200, seen)

    # -- 6. special files ------------------------------------------------------------------
    def test_fifo_answers_404_quickly(self):
        started = time.monotonic()
        status, _, body = raw(self.port, "/fifo", timeout=3)
        self.assertEqual(status, 404, body)
        self.assertLess(time.monotonic() - started, 2.0)
        status, _, _ = raw(self.port, "/sub/fifo.html", timeout=3)
        self.assertEqual(status, 404)
        r = self.get("/hello.txt")
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))

    def test_many_fifo_requests_do_not_starve_the_pool(self):
        results = []
        lock = threading.Lock()

        def one(i):
            try:
                st = raw(self.port if i % 2 else self.raw_port,
                         "/fifo" if i % 3 else "/sub/fifo.html", timeout=4)[0]
            except Exception as e:  # noqa: BLE001
                st = repr(e)
            with lock:
                results.append(st)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(8)
        self.assertEqual(results, [404] * 40)
        started = time.monotonic()
        r = self.get("/hello.txt")
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        self.assertLess(time.monotonic() - started, 1.0)

    def test_device_and_socket_404(self):
        targets = ["/sock"]
        if IS_ROOT:
            targets.append("/zero")
        for target in targets:
            with self.subTest(target=target):
                started = time.monotonic()
                status, headers, body = raw(self.port, target, timeout=3)
                self.assertEqual(status, 404, body[:100])
                self.assertLess(time.monotonic() - started, 2.0)

    @unittest.skipIf(IS_ROOT, "root reads every file: an unreadable file cannot be made")
    def test_unreadable_file_403(self):
        p = write(self.path("locked.txt"), b"locked\n")
        os.chmod(p, 0)
        try:
            r = self.get("/locked.txt")
            self.assertEqual(r.status, 403)
            self.assertNotIn(b"locked", r.body)
        finally:
            os.chmod(p, 0o644)

    # -- 7. conditional requests -----------------------------------------------------------
    def cond(self, headers, path="/hello.txt", method="GET"):
        return self.get(path, method=method, headers=headers)

    def test_if_none_match(self):
        tag = etag_of(self.path("hello.txt"))
        for value in (tag, "W/" + tag, '"nope", ' + tag, '"a","b" , W/' + tag, "*"):
            with self.subTest(value=value):
                r = self.cond({"If-None-Match": value})
                self.assertEqual(r.status, 304)
                self.assertEqual(r.body, b"")
                self.assertEqual(r.headers.get("etag"), tag)
                self.assertEqual(r.headers.get("cache-control"), "no-cache")
        r = self.cond({"If-None-Match": tag}, method="HEAD")
        self.assertEqual(r.status, 304)
        for value in ('"nope"', 'W/"nope"', '"%s"' % tag.strip('"')[:-1]):
            with self.subTest(value=value):
                r = self.cond({"If-None-Match": value})
                self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        r = self.get("/app/hello.txt", headers={"If-None-Match": tag})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.headers.get("cache-control"), "public, max-age=3600")

    def test_if_none_match_over_two_field_lines(self):
        # a list split over two field lines is the same list (RFC 9110 5.3)
        tag = etag_of(self.path("hello.txt"))
        status, _, body = raw(self.port, "/hello.txt",
                              headers=[("If-None-Match", '"nope"'), ("If-None-Match", tag)])
        self.assertEqual((status, body), (304, b""))

    def test_if_modified_since(self):
        for value in (http_date(MTIME), rfc850_date(MTIME), asctime_date(MTIME),
                      http_date(MTIME + 3600)):
            with self.subTest(value=value):
                r = self.cond({"If-Modified-Since": value})
                self.assertEqual(r.status, 304)
                self.assertEqual(r.body, b"")
                self.assertEqual(r.headers.get("etag"), etag_of(self.path("hello.txt")))
        for value in (http_date(MTIME - 1), http_date(MTIME - 86400), rfc850_date(MTIME - 60),
                      asctime_date(MTIME - 60), "not a date"):
            with self.subTest(value=value):
                r = self.cond({"If-Modified-Since": value})
                self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        # If-None-Match wins over If-Modified-Since
        r = self.cond({"If-None-Match": '"other"', "If-Modified-Since": http_date(MTIME)})
        self.assertEqual(r.status, 200)

    def test_if_match_and_unmodified_since(self):
        tag = etag_of(self.path("hello.txt"))
        for headers in ({"If-Match": '"nope"'}, {"If-Match": '"a", "b"'},
                        {"If-Unmodified-Since": http_date(MTIME - 86400)},
                        {"If-Unmodified-Since": rfc850_date(MTIME - 1)}):
            with self.subTest(headers=headers):
                r = self.cond(headers)
                self.assertEqual(r.status, 412)
                self.assertNotIn(b"hello, static world", r.body)
                self.assertJsonError(r.body, 412)
        for headers in ({"If-Match": tag}, {"If-Match": '"x", ' + tag}, {"If-Match": "*"},
                        {"If-Unmodified-Since": http_date(MTIME)},
                        # If-Match decides; If-Unmodified-Since is then not looked at
                        {"If-Match": tag, "If-Unmodified-Since": http_date(MTIME - 86400)}):
            with self.subTest(headers=headers):
                r = self.cond(headers)
                self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))

    def test_modified_file_gets_new_etag(self):
        p = write(self.path("changing.txt"), b"version one\n")
        r1 = self.get("/changing.txt")
        old_tag, old_lm = r1.headers["etag"], r1.headers["last-modified"]
        self.assertEqual(self.cond({"If-None-Match": old_tag}, "/changing.txt").status, 304)
        # same size, only the mtime moves (by one nanosecond-precise second and a bit)
        os.utime(p, ns=(MTIME_NS + 2 * 10**9 + 7, MTIME_NS + 2 * 10**9 + 7))
        r = self.cond({"If-None-Match": old_tag}, "/changing.txt")
        self.assertEqual((r.status, r.body), (200, b"version one\n"))
        self.assertEqual(r.headers["etag"], etag_of(p))
        self.assertNotEqual(r.headers["etag"], old_tag)
        r = self.cond({"If-Modified-Since": old_lm}, "/changing.txt")
        self.assertEqual(r.status, 200)
        # same mtime, other size
        write(p, b"version two, longer\n", mtime_ns=MTIME_NS + 2 * 10**9 + 7)
        r2 = self.cond({"If-None-Match": r.headers["etag"]}, "/changing.txt")
        self.assertEqual((r2.status, r2.body), (200, b"version two, longer\n"))
        self.assertEqual(r2.headers["etag"], etag_of(p))

    # -- 8. ranges -------------------------------------------------------------------------
    def rng(self, value, extra=None, method="GET", path="/range.bin"):
        headers = {"Range": value}
        headers.update(extra or {})
        return self.get(path, method=method, headers=headers)

    def test_single_ranges(self):
        data = bytes(range(256)) * 4
        size = len(data)
        cases = [("bytes=0-9", 0, 9), ("bytes=10-", 10, size - 1), ("bytes=-5", size - 5, size - 1),
                 ("bytes=1000-5000", 1000, size - 1), ("bytes=1023-1023", 1023, 1023),
                 ("bytes=0-0", 0, 0), ("bytes=-5000", 0, size - 1), ("bytes=500-", 500, size - 1)]
        for value, first, last in cases:
            with self.subTest(range=value):
                r = self.rng(value)
                self.assertEqual(r.status, 206)
                self.assertEqual(r.headers.get("content-range"), "bytes %d-%d/%d" % (first, last, size))
                self.assertEqual(r.body, data[first:last + 1])
                self.assertEqual(r.headers.get("content-length"), str(last - first + 1))
                self.assertEqual(r.headers.get("etag"), etag_of(self.path("range.bin")))
                self.assertEqual(r.headers.get("cache-control"), "no-cache")

    def test_range_not_satisfiable(self):
        for value in ("bytes=1024-", "bytes=5000-6000", "bytes=1024-1024"):
            with self.subTest(range=value):
                r = self.rng(value)
                self.assertEqual(r.status, 416)
                self.assertEqual(r.headers.get("content-range"), "bytes */1024")
                self.assertNotIn(bytes(range(256))[:16], r.body)
        r = self.rng("bytes=0-0", path="/empty.txt")
        self.assertEqual(r.status, 416)
        self.assertEqual(r.headers.get("content-range"), "bytes */0")

    def test_ranges_ignored_give_whole_file(self):
        data = bytes(range(256)) * 4
        for value in ("bytes=0-1,4-5", "bytes=0-9, 20-29", "items=0-9", "bytes=abc", "bytes=5-2",
                      "bytes=", "bytes=--5", "bytes 0-9", "bytes=0x10-0x20"):
            with self.subTest(range=value):
                r = self.rng(value)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, data)
                self.assertNotIn("content-range", r.headers)

    def test_huge_range_numbers(self):
        data = bytes(range(256)) * 4
        r = self.rng("bytes=0-99999999999999999999999999")
        self.assertIn(r.status, (200, 206))
        self.assertEqual(r.body, data)
        if r.status == 206:
            self.assertEqual(r.headers["content-range"], "bytes 0-1023/1024")
        r = self.rng("bytes=18446744073709551615-")
        self.assertIn(r.status, (200, 416))
        r = self.rng("bytes=18446744073709551615-18446744073709551616")
        self.assertIn(r.status, (200, 416))
        r = self.rng("bytes=-18446744073709551617")
        self.assertIn(r.status, (200, 206))
        self.assertEqual(r.body, data)
        self.assertEqual(self.get("/hello.txt").status, 200)

    def test_if_range(self):
        data = bytes(range(256)) * 4
        tag = etag_of(self.path("range.bin"))
        r = self.rng("bytes=0-9", {"If-Range": tag})
        self.assertEqual((r.status, r.body), (206, data[:10]))
        r = self.rng("bytes=0-9", {"If-Range": http_date(MTIME)})
        self.assertEqual((r.status, r.body), (206, data[:10]))
        for stale in ('"0.0-400"', '"stale"', http_date(MTIME - 100), http_date(MTIME + 100)):
            with self.subTest(if_range=stale):
                r = self.rng("bytes=0-9", {"If-Range": stale})
                self.assertEqual((r.status, len(r.body)), (200, len(data)))
                self.assertEqual(r.body, data)

    def test_range_with_matching_if_none_match_is_304(self):
        tag = etag_of(self.path("range.bin"))
        r = self.rng("bytes=0-9", {"If-None-Match": tag})
        self.assertEqual((r.status, r.body), (304, b""))

    def test_head_with_range_is_200(self):
        r = self.rng("bytes=0-9", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("content-length"), "1024")
        self.assertNotIn("content-range", r.headers)
        self.assertEqual(r.body, b"")

    # -- 10. filters and response headers on a static route --------------------------------
    def test_key_auth_on_static_route(self):
        r = self.get("/guarded/hello.txt")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertJsonError(r.body, 401, "missing_api_key")
        self.assertNotIn(b"hello", r.body)
        r = self.get("/guarded/hello.txt", headers={"Authorization": "Bearer not-a-valid-key-1"})
        self.assertEqual(r.status, 401)
        self.assertJsonError(r.body, 401, "invalid_api_key")
        r = self.get("/guarded/hello.txt", headers={"Authorization": "Bearer " + API_KEY})
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        r = self.get("/guarded/hello.txt", headers={"X-API-Key": API_KEY})
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        # the filter runs before the file lookup: a 404 is not revealed without a key
        self.assertEqual(self.get("/guarded/nope.txt").status, 401)
        self.assertEqual(self.get("/guarded/nope.txt", method="POST").status, 401)

    def test_cors_and_headers_filters(self):
        r = self.get("/cors/hello.txt", method="OPTIONS",
                     headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://app.example")
        r = self.get("/cors/hello.txt", headers={"Origin": "https://app.example"})
        self.assertEqual((r.status, r.body), (200, b"hello, static world\n"))
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://app.example")
        self.assertEqual(r.headers.get("x-static-filter"), "yes")
        r = self.get("/cors/hello.txt", headers={"Origin": "https://app.example",
                                                 "If-None-Match": etag_of(self.path("hello.txt"))})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.headers.get("access-control-allow-origin"), "https://app.example")
        r = self.get("/cors/nope.txt", headers={"Origin": "https://evil.example"})
        self.assertEqual(r.status, 404)
        self.assertNotIn("access-control-allow-origin", r.headers)
        self.assertEqual(r.headers.get("x-static-filter"), "yes")

    def test_response_headers_applied(self):
        for headers, status in (({}, 200), ({"If-None-Match": etag_of(self.path("hello.txt"))}, 304),
                                ({"Range": "bytes=0-4"}, 206)):
            with self.subTest(status=status):
                conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
                try:
                    conn.request("GET", "/hdrs/hello.txt", headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    pairs = [(n.lower(), v) for n, v in resp.getheaders()]
                finally:
                    conn.close()
                self.assertEqual(resp.status, status)
                self.assertEqual([v for n, v in pairs if n == "cache-control"], ["private, max-age=5"])
                self.assertEqual([v for n, v in pairs if n == "content-security-policy"],
                                 ["default-src 'self'"])
                self.assertEqual([v for n, v in pairs if n == "accept-ranges"], [])
                self.assertIn("etag", dict(pairs))


# --------------------------------------------------------------------------
# 9. large files and connections, on a single worker
# --------------------------------------------------------------------------

class StaticTransferTest(unittest.TestCase):
    BIG = 5 * 1024 * 1024

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ganglion-static-big-")
        cls.root = os.path.join(cls.tmp, "root")
        cls.big = os.urandom(cls.BIG)
        write(os.path.join(cls.root, "big.bin"), cls.big)
        write(os.path.join(cls.root, "small.txt"), b"small file\n")
        write(os.path.join(cls.root, "other.css"), b"p { margin: 0 }\n")
        cls.port = free_port()
        cls.gw = Gateway(render("""\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
routes:
  - name: files
    static: { root: "@ROOT@" }
""", port=cls.port, root=cls.root))
        try:
            cls.gw.start()
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertTrue(self.gw.alive(), "the gateway died; log:\n" + self.gw.log_text()[-3000:])

    def test_large_file_exact(self):
        r = http_request(self.port, "GET", "/big.bin", timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-length"], str(self.BIG))
        self.assertIsNone(first_difference(r.body, self.big))

    def test_slow_readers_pieces_count_against_the_buffer_cap(self):
        # Each slow reader of a file sent in pieces holds one piece in memory: the listener's
        # max_buffered_body_bytes bounds them all (here two 64 KiB pieces fit, a third does not).
        port = free_port()
        root = os.path.join(self.tmp, "capped")
        data = os.urandom(8 * 1024 * 1024)
        path = write(os.path.join(root, "cold.bin"), data)
        with Gateway(render("""\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
    max_buffered_body_bytes: 150k
routes:
  - name: files
    static: { root: "@ROOT@" }
""", port=port, root=root)):
            held = []
            try:
                for i in range(3):
                    fd = os.open(path, os.O_RDONLY)  # out of the page cache: no sendfile
                    try:
                        os.fsync(fd)  # dirty pages are not dropped
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    s.settimeout(5)
                    s.connect((LOCALHOST, port))
                    s.sendall(b"GET /cold.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                    head = s.recv(100)
                    held.append(s)
                    if i < 2:
                        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
                    else:
                        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
            finally:
                for s in held:
                    s.close()
            # The pieces come back when the readers leave.
            wait_until(lambda: http_request(port, "GET", "/cold.bin", timeout=10).status == 200, timeout=5)

    def test_output_guard_sees_large_files_too(self):
        # Files big enough for sendfile must still pass through a filter that holds the
        # response: a denied text at the end of 200 KiB is withheld, a clean file is exact.
        port = free_port()
        clean = os.urandom(150 * 1024).hex().encode()[:200 * 1024]
        write(os.path.join(self.tmp, "guarded", "clean.txt"), clean)
        write(os.path.join(self.tmp, "guarded", "denied.txt"), clean[:-20] + b" secret sauce here.\n")
        with Gateway(render("""\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
routes:
  - name: guarded
    static: { root: "@ROOT@" }
    filters:
      - output_guard: { deny: [ '(?i)secret\\s+sauce' ] }
""", port=port, root=os.path.join(self.tmp, "guarded"))):
            for _ in range(2):  # the second time from the page cache
                r = http_request(port, "GET", "/clean.txt", timeout=10)
                self.assertEqual(r.status, 200)
                self.assertIsNone(first_difference(r.body, clean))
                r = http_request(port, "GET", "/denied.txt", timeout=10)
                self.assertEqual(r.status, 400, r.body[:200])
                self.assertEqual(error_of(r.body)["type"], "output_blocked")
                self.assertNotIn(b"secret sauce", r.body)

    def test_file_out_of_the_page_cache_is_read_on_the_pool(self):
        # Pages dropped from the cache make the worker's RWF_NOWAIT read say EAGAIN: the rest is
        # read on the blocking pool, and every byte must still be the file's.
        path = os.path.join(self.root, "cold.bin")
        data = os.urandom(3 * 1024 * 1024 + 17)
        write(path, data)
        for attempt in range(3):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            if attempt == 1:
                r = http_request(self.port, "GET", "/cold.bin", headers={"Range": "bytes=1000000-2000000"},
                                 timeout=10)
                self.assertEqual(r.status, 206)
                self.assertIsNone(first_difference(r.body, data[1000000:2000001]))
            else:
                r = http_request(self.port, "GET", "/cold.bin", timeout=10)
                self.assertEqual(r.status, 200)
                self.assertIsNone(first_difference(r.body, data))

    def test_large_file_middle_range(self):
        first, last = 1234567, 3456789
        r = http_request(self.port, "GET", "/big.bin", headers={"Range": "bytes=%d-%d" % (first, last)},
                         timeout=10)
        self.assertEqual(r.status, 206)
        self.assertEqual(r.headers["content-range"], "bytes %d-%d/%d" % (first, last, self.BIG))
        self.assertIsNone(first_difference(r.body, self.big[first:last + 1]))
        # a range that crosses a 256 KiB piece boundary, and the tail
        r = http_request(self.port, "GET", "/big.bin", headers={"Range": "bytes=262140-262150"})
        self.assertEqual(r.body, self.big[262140:262151])
        r = http_request(self.port, "GET", "/big.bin", headers={"Range": "bytes=-300000"}, timeout=10)
        self.assertEqual(r.body, self.big[-300000:])

    def test_keepalive_sequence(self):
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=10)
        try:
            r = keepalive_request(conn, "GET", "/small.txt")
            self.assertEqual((r.status, r.body), (200, b"small file\n"))
            tag = r.headers["etag"]
            r = keepalive_request(conn, "GET", "/big.bin")
            self.assertIsNone(first_difference(r.body, self.big))
            r = keepalive_request(conn, "GET", "/small.txt", headers={"If-None-Match": tag})
            self.assertEqual((r.status, r.body), (304, b""))
            r = keepalive_request(conn, "GET", "/missing")
            self.assertEqual(r.status, 404)
            r = keepalive_request(conn, "GET", "/big.bin", headers={"Range": "bytes=100-199"})
            self.assertEqual((r.status, r.body), (206, self.big[100:200]))
            r = keepalive_request(conn, "HEAD", "/big.bin")
            self.assertEqual((r.status, r.headers["content-length"], r.body), (200, str(self.BIG), b""))
            r = keepalive_request(conn, "POST", "/small.txt", body=b"x" * 100)
            self.assertEqual(r.status, 405)
            r = keepalive_request(conn, "GET", "/other.css")
            self.assertEqual((r.status, r.body), (200, b"p { margin: 0 }\n"))
        finally:
            conn.close()

    def test_concurrent_downloads_exact(self):
        digest = hashlib.sha256(self.big).digest()
        results = []
        lock = threading.Lock()

        def one(i):
            try:
                if i % 2:
                    r = http_request(self.port, "GET", "/big.bin", timeout=20)
                    ok = r.status == 200 and hashlib.sha256(r.body).digest() == digest
                else:
                    first = 100000 * i + 7
                    r = http_request(self.port, "GET", "/big.bin", timeout=20,
                                     headers={"Range": "bytes=%d-%d" % (first, first + 700000)})
                    ok = r.status == 206 and r.body == self.big[first:first + 700001]
            except Exception as e:  # noqa: BLE001
                ok = repr(e)
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(results, [True] * 10)

    def test_pipelined(self):
        tag = etag_of(os.path.join(self.root, "small.txt"))
        reqs = [("GET", "/small.txt", ""), ("GET", "/big.bin", ""),
                ("GET", "/small.txt", "If-None-Match: %s\r\n" % tag), ("GET", "/nope", ""),
                ("GET", "/big.bin", "Range: bytes=4096-8191\r\n"), ("HEAD", "/other.css", ""),
                ("GET", "/big.bin", "Range: bytes=%d-\r\n" % (self.BIG + 1)),
                ("GET", "/other.css", "Connection: close\r\n")]
        data = b"".join(("%s %s HTTP/1.1\r\nHost: a\r\n%s\r\n" % (m, p, h)).encode() for m, p, h in reqs)
        methods = [m for m, _, _ in reqs]
        got, _ = raw_exchange(self.port, data, read_timeout=15, expect=len(reqs), methods=methods)
        rs = parse_responses(got, methods=methods)
        self.assertEqual([r[0] for r in rs], [200, 200, 304, 404, 206, 200, 416, 200])
        self.assertEqual(rs[0][2], b"small file\n")
        self.assertIsNone(first_difference(rs[1][2], self.big))
        self.assertEqual(rs[2][2], b"")
        self.assertEqual(rs[4][2], self.big[4096:8192])
        self.assertEqual(rs[5][1]["content-length"], "16")
        self.assertEqual(rs[6][1]["content-range"], "bytes */%d" % self.BIG)
        self.assertEqual(rs[7][2], b"p { margin: 0 }\n")

    def test_stalled_readers_do_not_block_others(self):
        socks = []
        try:
            for _ in range(48):
                s = self._slow_socket()
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                socks.append(s)
            self._read_head(socks[0])
            started = time.monotonic()
            r = http_request(self.port, "GET", "/small.txt", timeout=3)
            self.assertEqual((r.status, r.body), (200, b"small file\n"))
            self.assertLess(time.monotonic() - started, 1.0)
            r = http_request(self.port, "GET", "/big.bin", timeout=10)
            self.assertEqual(hashlib.sha256(r.body).digest(), hashlib.sha256(self.big).digest())
        finally:
            for s in socks:
                s.close()

    def test_clients_vanishing_mid_body(self):
        for i in range(30):
            s = self._slow_socket()
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n"
                      + (b"GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n" if i % 2 else b""))
            s.recv(4096)
            if i % 3 == 0:   # reset rather than close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        self.assertTrue(self.gw.alive())
        r = http_request(self.port, "GET", "/big.bin", timeout=10)
        self.assertEqual(hashlib.sha256(r.body).digest(), hashlib.sha256(self.big).digest())

    def test_deep_pipeline(self):
        one = (b"GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /other.css HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=-3\r\n\r\n")
        n = 60
        data = one * n + b"GET /other.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        got, _ = raw_exchange(self.port, data, read_timeout=10, expect=3 * n + 1)
        rs = parse_responses(got)
        self.assertEqual(len(rs), 3 * n + 1)
        expected = [(200, b"small file\n"), (200, b"p { margin: 0 }\n"), (206, self.big[-3:])] * n
        expected.append((200, b"p { margin: 0 }\n"))
        self.assertEqual([(st, body) for st, _, body in rs], expected)

    def test_request_bodies_on_get_are_not_requests(self):
        # a GET with a body: the body is skipped or the connection closed; it is never read
        # as the next request
        smuggled = b"GET /other.css HTTP/1.1\r\nHost: a\r\n\r\n"
        for framing in (b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled,
                        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(smuggled) + smuggled
                        + b"\r\n0\r\n\r\n"):
            with self.subTest(framing=framing[:20]):
                data = (b"GET /small.txt HTTP/1.1\r\nHost: a\r\n" + framing
                        + b"GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                got, _ = raw_exchange(self.port, data, read_timeout=3, expect=2)
                rs = parse_responses(got)
                self.assertGreaterEqual(len(rs), 1)
                self.assertEqual((rs[0][0], rs[0][2]), (200, b"small file\n"))
                if rs[0][1].get("connection", "").lower() == "close":
                    self.assertEqual(len(rs), 1)
                else:
                    self.assertEqual([(st, body) for st, _, body in rs[1:]], [(200, b"small file\n")])

    def _slow_socket(self, small_buffer=True):
        """A client socket; with small_buffer its receive buffer is 8 KiB (and the kernel's
        autotuning is off, which makes reading it all slow: only for a few MiB)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_buffer:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect((LOCALHOST, self.port))
        return s

    @staticmethod
    def _read_head(s):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("closed before the head: %r" % buf)
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        return head.decode("latin-1"), rest

    def test_slow_reader_exact_and_worker_free(self):
        s = self._slow_socket()
        try:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            head, body = self._read_head(s)
            body = bytearray(body)
            self.assertTrue(head.startswith("HTTP/1.1 200"), head)
            while len(body) < 8192:
                body += s.recv(4096)
            # stall; meanwhile the only worker still answers others at once
            started = time.monotonic()
            r = http_request(self.port, "GET", "/small.txt", timeout=3)
            self.assertEqual((r.status, r.body), (200, b"small file\n"))
            self.assertLess(time.monotonic() - started, 1.0)
            time.sleep(0.3)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        finally:
            s.close()
        self.assertIsNone(first_difference(body, self.big))

    def test_file_growing_mid_body_sends_promised_length(self):
        # 24 MiB: more than the socket buffers hold while the client does not read
        content = os.urandom(1024 * 1024) * 24
        path = write(os.path.join(self.root, "grows.bin"), content)
        s = self._slow_socket(small_buffer=False)
        try:
            s.sendall(b"GET /grows.bin HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            head, body = self._read_head(s)
            self.assertIn("Content-Length: %d" % len(content), head)
            with open(path, "ab") as f:
                f.write(b"APPENDED" * 100000)
            data = bytearray(body)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertIsNone(first_difference(data[:len(content)], content))
        rest = parse_responses(bytes(data[len(content):]))
        self.assertEqual([(st, b) for st, _, b in rest], [(200, b"small file\n")])

    def test_file_shrinking_mid_body_ends_connection(self):
        size = 24 * 1024 * 1024
        content = os.urandom(1024 * 1024) * 24
        path = write(os.path.join(self.root, "shrinks.bin"), content)
        s = self._slow_socket(small_buffer=False)
        try:
            s.sendall(b"GET /shrinks.bin HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = self._read_head(s)
            body = bytearray(body)
            self.assertIn("Content-Length: %d" % size, head)
            while len(body) < 4096:
                body += s.recv(4096)
            with open(path, "r+b") as f:
                f.truncate(1000)
            deadline = time.monotonic() + 8
            closed = False
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                body += chunk
        finally:
            s.close()
        self.assertTrue(closed, "the connection stayed open after the file shrank")
        self.assertLess(len(body), size)
        # sendfile queues page references, not copies: bytes queued before the truncation may
        # arrive as the file's new content (zeros), as with nginx. What was read before it is exact.
        self.assertIsNone(first_difference(body[:4096], content[:4096]))
        r = http_request(self.port, "GET", "/small.txt")
        self.assertEqual((r.status, r.body), (200, b"small file\n"))

    def test_file_replaced_by_rename_mid_body_keeps_old_bytes(self):
        # The documented way to change a file being served: write a new one and rename it into
        # place. A download in flight keeps the old file's bytes, all of them.
        content = os.urandom(1024 * 1024) * 8
        path = write(os.path.join(self.root, "replaced.bin"), content)
        s = self._slow_socket(small_buffer=False)
        try:
            s.sendall(b"GET /replaced.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            head, body = self._read_head(s)
            body = bytearray(body)
            self.assertIn("Content-Length: %d" % len(content), head)
            while len(body) < 4096:
                body += s.recv(4096)
            fresh = write(path + ".new", os.urandom(len(content)))
            os.rename(fresh, path)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        finally:
            s.close()
        self.assertIsNone(first_difference(bytes(body), content))


# --------------------------------------------------------------------------
# 11. configuration: check, serve, reload
# --------------------------------------------------------------------------

def route_config(port, route_lines, extra=""):
    return ("workers: 1\nlisteners:\n  - name: public\n    address: 127.0.0.1:%d\n"
            "upstreams:\n  - name: u\n    targets: [ \"127.0.0.1:9\" ]\n%sroutes:\n%s"
            % (port, extra, route_lines))


class StaticConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ganglion-static-cfg-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir_a = os.path.join(self.tmp, "site-a")
        self.dir_b = os.path.join(self.tmp, "site-b")
        write(os.path.join(self.dir_a, "f.txt"), b"from A\n")
        write(os.path.join(self.dir_a, "only-a.txt"), b"only in A\n")
        write(os.path.join(self.dir_b, "f.txt"), b"from B\n")

    def check(self, text):
        path = os.path.join(self.tmp, "ganglion.yaml")
        with open(path, "w") as f:
            f.write(text)
        p = run_cli(["check", "--config", path])
        return path, p

    def assertRefused(self, text, *needles, line_needle=None):
        path, p = self.check(text)
        self.assertEqual(p.returncode, 1, "accepted:\n" + text + p.stdout)
        for needle in needles:
            self.assertIn(needle, p.stderr)
        if line_needle:
            self.assertIn("%s:%d: " % (path, line_of(text, line_needle)), p.stderr)
        return p

    def test_check_ok(self):
        path, p = self.check(route_config(8080, '  - name: r\n    static: { root: "%s" }\n' % self.dir_a))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("config ok", p.stdout)

    def test_missing_root_refused(self):
        missing = os.path.join(self.tmp, "no-such-dir")
        text = route_config(8080, '  - name: r\n    static: { root: "%s" }\n' % missing)
        self.assertRefused(text, "static.root '%s': No such file or directory" % missing,
                           line_needle="static:")

    def test_serve_with_missing_root_exits(self):
        missing = os.path.join(self.tmp, "no-such-dir")
        path = os.path.join(self.tmp, "serve.yaml")
        with open(path, "w") as f:
            f.write(route_config(free_port(), '  - name: r\n    static: { root: "%s" }\n' % missing))
        p = run_cli(["serve", "--config", path], timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("static.root '%s': No such file or directory" % missing, p.stdout + p.stderr)

    def test_root_that_is_a_file_refused(self):
        f = os.path.join(self.dir_a, "f.txt")
        self.assertRefused(route_config(8080, '  - name: r\n    static: { root: "%s" }\n' % f),
                           "static.root", line_needle="static:")

    def test_static_with_upstream_refused(self):
        text = route_config(8080, '  - name: r\n    static: { root: "%s" }\n    upstream: u\n' % self.dir_a)
        self.assertRefused(text, "route 'r' has both 'static' and 'upstream': pick one")

    def test_static_with_welcome_refused(self):
        # docs: "A route has one of `upstream`, `llm`, `static` and `welcome`."
        text = route_config(8080, '  - name: r\n    static: { root: "%s" }\n    welcome: {}\n' % self.dir_a)
        self.assertRefused(text, "'static'")

    def test_static_with_llm_refused(self):
        text = route_config(8080, '  - name: r\n    static: { root: "%s" }\n    llm: { auth: none }\n'
                            % self.dir_a,
                            extra='providers:\n  - { name: o, kind: ollama, base_url: "http://127.0.0.1:9" }\n')
        self.assertRefused(text, "'static'")

    def test_unknown_field_refused(self):
        text = route_config(8080, '  - name: r\n    static: { root: "%s", bogus: 1 }\n' % self.dir_a)
        self.assertRefused(text, "unknown field 'bogus'", line_needle="bogus")

    def test_bad_fields_refused(self):
        for fields, needle in (('index: "a/b"', "index"), ('index: ".."', "index"),
                               ('index: "../x"', "index"), ("dotfiles: maybe", "dotfiles"),
                               ("follow_symlinks: 2", "follow_symlinks"),
                               ('types: { md: "not a type" }', "not a type"),
                               ("types: [ md ]", "types")):
            with self.subTest(fields=fields):
                text = route_config(8080, '  - name: r\n    static: { root: "%s", %s }\n'
                                    % (self.dir_a, fields))
                self.assertRefused(text, needle, line_needle="static:")
        text = route_config(8080, "  - name: r\n    static: {}\n")
        self.assertRefused(text, "root", line_needle="static:")

    def test_relative_root_is_relative_to_config_file(self):
        cfgdir = os.path.join(self.tmp, "conf")
        write(os.path.join(cfgdir, "public", "rel.txt"), b"relative root\n")
        port = free_port()
        path = os.path.join(cfgdir, "ganglion.yaml")
        with open(path, "w") as f:
            f.write(route_config(port, "  - name: r\n    static: { root: ./public }\n"))
        p = subprocess.run([os.path.abspath(BIN), "check", "--config", path], cwd="/", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        log = open(os.path.join(self.tmp, "rel.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([os.path.abspath(BIN), "serve", "--config", path], cwd="/", stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)

        def up():
            socket.create_connection((LOCALHOST, port), timeout=0.5).close()
            return True
        self.assertTrue(wait_until(up, timeout=5), "gateway did not start")
        r = http_request(port, "GET", "/rel.txt")
        self.assertEqual((r.status, r.body), (200, b"relative root\n"))

    def test_reload_during_a_download(self):
        big_a = os.urandom(1024 * 1024) * 24
        write(os.path.join(self.dir_a, "big.bin"), big_a)
        write(os.path.join(self.dir_b, "big.bin"), b"B's big.bin\n")
        port, admin = free_port(), free_port()
        base = ("workers: 1\nlisteners:\n  - name: public\n    address: 127.0.0.1:%d\n"
                "routes:\n  - name: r\n    static: { root: \"%%s\" }\n"
                "admin:\n  address: 127.0.0.1:%d\n  token: %s\n" % (port, admin, TOKEN))
        with Gateway(base % self.dir_a, admin_port=admin, port=port) as gw:
            s = socket.create_connection((LOCALHOST, port), timeout=10)
            try:
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += s.recv(4096)
                body = bytearray(buf.partition(b"\r\n\r\n")[2])
                gw.reload_file(base % self.dir_b)
                self.assertEqual(gw.admin("POST", "/reload", token=TOKEN).status, 200)
                self.assertEqual(gw.request("GET", "/big.bin").body, b"B's big.bin\n")
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            finally:
                s.close()
            self.assertIsNone(first_difference(body, big_a),
                              "the download in flight changed files at the reload")

    def test_reload_switches_root_and_bad_root_is_refused(self):
        port, admin = free_port(), free_port()
        base = ("workers: 1\nlisteners:\n  - name: public\n    address: 127.0.0.1:%d\n"
                "routes:\n  - name: r\n    static: { root: \"%%s\" }\n"
                "admin:\n  address: 127.0.0.1:%d\n  token: %s\n" % (port, admin, TOKEN))
        with Gateway(base % self.dir_a, admin_port=admin, port=port) as gw:
            self.assertEqual(gw.request("GET", "/f.txt").body, b"from A\n")
            gw.reload_file(base % self.dir_b)
            r = gw.admin("POST", "/reload", token=TOKEN)
            self.assertEqual(r.status, 200, r.body)
            self.assertIn("version", r.json())
            self.assertEqual(gw.request("GET", "/f.txt").body, b"from B\n")
            self.assertEqual(gw.request("GET", "/only-a.txt").status, 404)
            # the root is held open: renaming it does not change what is served
            moved = self.dir_b + "-moved"
            os.rename(self.dir_b, moved)
            self.assertEqual(gw.request("GET", "/f.txt").body, b"from B\n")
            # a reload to a root that does not exist is refused; the old files stay served
            missing = os.path.join(self.tmp, "gone")
            gw.reload_file(base % missing)
            r = gw.admin("POST", "/reload", token=TOKEN)
            self.assertEqual(r.status, 400, r.body)
            err = r.json()["error"]
            self.assertEqual(err["type"], "invalid_config")
            self.assertIn("static.root '%s': No such file or directory" % missing, err["message"])
            r = gw.request("GET", "/f.txt")
            self.assertEqual((r.status, r.body), (200, b"from B\n"))
            self.assertTrue(wait_until(lambda: "reload rejected" in gw.log_text(), timeout=2))


# --------------------------------------------------------------------------
# 12. the admin API's console
# --------------------------------------------------------------------------

ADMIN_CONFIG = """\
workers: 1
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
routes:
  - name: files
    static: { root: "@ROOT@" }
admin:
  address: 127.0.0.1:@ADMIN@
  token: @TOKEN@
@CONSOLE@"""


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ganglion-console-")
        cls.root = build_tree(cls.tmp)
        cls.big = os.urandom(3 * 1024 * 1024)
        write(os.path.join(cls.root, "big.bin"), cls.big)
        cls.port, cls.admin_port = free_port(), free_port()
        cls.gw = Gateway(cls.config('  console: { root: "%s" }\n' % cls.root),
                         admin_port=cls.admin_port, port=cls.port)
        try:
            cls.gw.start()
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def config(cls, console):
        return render(ADMIN_CONFIG, port=cls.port, admin=cls.admin_port, root=cls.root,
                      token=TOKEN, console=console)

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertTrue(self.gw.alive(), "the gateway died; log:\n" + self.gw.log_text()[-3000:])

    def admin(self, method, path, token=None, headers=None):
        return self.gw.admin(method, path, token=token, headers=headers)

    def test_index_without_token(self):
        r = self.admin("GET", "/console/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"<!doctype html><title>root index</title>\n")
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        self.assertEqual(r.headers["cache-control"], "no-cache")
        self.assertEqual(r.headers["etag"], etag_of(os.path.join(self.root, "index.html")))
        self.assertEqual(r.headers["last-modified"], http_date(MTIME))
        r = self.admin("GET", "/console/app.js")
        self.assertEqual((r.status, r.body), (200, b"console.log('app');\n"))
        self.assertEqual(r.headers["content-type"], "text/javascript; charset=utf-8")
        r = self.admin("GET", "/console/sub/page.html", token=TOKEN)
        self.assertEqual((r.status, r.body), (200, b"<p>sub page</p>\n"))

    def test_redirects(self):
        for target in ("/console", "/console?x=1"):
            with self.subTest(target=target):
                status, headers, _ = raw(self.admin_port, target)
                self.assertEqual(status, 301)
                self.assertEqual(headers.get("location", "").split("?")[0], "/console/")
        status, headers, _ = raw(self.admin_port, "/console/sub?q=2")
        self.assertEqual((status, headers.get("location")), (301, "./sub/?q=2"))

    def test_head_and_methods(self):
        g = self.admin("GET", "/console/")
        h = self.admin("HEAD", "/console/")
        self.assertEqual((h.status, h.body), (200, b""))
        for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
            self.assertEqual(h.headers.get(name), g.headers.get(name), name)
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                r = self.admin(method, "/console/")
                self.assertEqual(r.status, 405)
                self.assertEqual(r.headers.get("allow"), "GET, HEAD")
                self.assertEqual(error_of(r.body)["code"], 405)

    def test_conditional_and_range(self):
        tag = etag_of(os.path.join(self.root, "range.bin"))
        r = self.admin("GET", "/console/range.bin", headers={"If-None-Match": tag})
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.admin("GET", "/console/range.bin", headers={"Range": "bytes=10-19"})
        self.assertEqual((r.status, r.body), (206, bytes(range(10, 20))))
        self.assertEqual(r.headers["content-range"], "bytes 10-19/1024")
        r = self.admin("GET", "/console/range.bin", headers={"Range": "bytes=4000-"})
        self.assertEqual(r.status, 416)
        self.assertEqual(r.headers["content-range"], "bytes */1024")

    def test_refusals(self):
        for target, status in (("/console/.env", 404), ("/console/.git/config", 404),
                               ("/console/nope.txt", 404), ("/console/empty/", 404),
                               ("/console/link-in-rel", 403), ("/console/link-out-rel", 403),
                               ("/console/link-out-abs", 403), ("/console/linkdir-out/secret.txt", 403),
                               ("/console/passwd", 403), ("/console/fifo", 404),
                               ("/console/sock", 404)):
            with self.subTest(target=target):
                got, headers, body = raw(self.admin_port, target, timeout=3)
                self.assertNoLeak(body, target)
                self.assertEqual(got, status, body[:200])
                self.assertEqual(error_of(body)["code"], status)
        self.assertEqual(self.admin("GET", "/healthz").body, b"ok\n")

    def assertNoLeak(self, body, what):
        self.assertNotIn(SENTINEL, body, "%s returned a file outside the console root" % what)
        self.assertNotIn(b"root:x:0:0", body, "%s returned /etc/passwd" % what)
        self.assertNotIn(b"dotenv-secret", body, what)

    def test_escapes_never_leave_root(self):
        targets = [prefix + target for prefix in ("/console", "/console/sub")
                   for target, _, _ in ESCAPES]
        targets += ["/console/../sentinel.txt", "/console/..", "/console/../root.txt",
                    "/console%2f..%2fsentinel.txt", "/console/%2e%2e/%2e%2e/sentinel.txt",
                    "/console/.%2e/rootx/secret.txt"]
        for target in targets:
            for token in (None, TOKEN):
                hdrs = [("Authorization", "Bearer " + token)] if token else []
                status, _, body = raw(self.admin_port, target, headers=hdrs, timeout=3)
                self.assertNoLeak(body, target)
                self.assertNotEqual(status, 200, "GET %s answered 200: %r" % (target[:120], body[:200]))
                # 414: the admin API's request target is at most 2048 bytes
                self.assertIn(status, (400, 401, 403, 404, 414), target[:120])

    def test_escape_statuses(self):
        # the `..` that survives to the file lookup (an encoded slash), a NUL, a bad '%': 400
        for target in ("/console/..%2fsentinel.txt", "/console/%2e%2e%2fsentinel.txt",
                       "/console/sub%2f..%2f..%2fsentinel.txt", "/console/hello.txt%00"):
            with self.subTest(target=target):
                status, _, body = raw(self.admin_port, target)
                self.assertEqual(status, 400, body[:200])
        # The admin API normalises paths: a stray '%' is a literal one, naming the file "%zz".
        status, _, body = raw(self.admin_port, "/console/%zz")
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(body, b"literal percent file\n")
        for target in ("//console/../../etc/passwd", "/console/..\\sentinel.txt",
                       "/console/%252e%252e%252fsentinel.txt"):
            with self.subTest(target=target):
                status, _, body = raw(self.admin_port, target)
                self.assertNoLeak(body, target)
                self.assertIn(status, (401, 404))

    def test_stalled_console_downloads_cannot_take_every_admin_connection(self):
        # 300 unread console downloads held all 256 admin connections: /healthz and the token
        # holders were locked out. At most 64 console responses are sent at once.
        stalled = []
        try:
            for _ in range(70):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(5)
                s.connect((LOCALHOST, self.admin_port))
                s.sendall(b"GET /console/big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                stalled.append(s)
            refused = 0
            for s in stalled:
                head = s.recv(200)
                refused += head.startswith(b"HTTP/1.1 503 ")
            self.assertEqual(refused, 6, "70 stalled console downloads: 64 sent, 6 refused")
            status, headers, body = raw(self.admin_port, "/console/hello.txt")
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("retry-after"), "1")
            self.assertEqual(error_of(body)["type"], "overloaded")
            status, _, body = raw(self.admin_port, "/healthz")
            self.assertEqual((status, body), (200, b"ok\n"))
        finally:
            for s in stalled:
                s.close()
        wait_until(lambda: raw(self.admin_port, "/console/hello.txt")[0] == 200, timeout=5)

    def test_slow_console_download_does_not_block_admin(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect((LOCALHOST, self.admin_port))
        try:
            s.sendall(b"GET /console/big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(4096)
            head, _, body = buf.partition(b"\r\n\r\n")
            body = bytearray(body)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            started = time.monotonic()
            self.assertEqual(self.admin("GET", "/healthz").status, 200)
            self.assertEqual(self.admin("GET", "/console/hello.txt").body, b"hello, static world\n")
            self.assertLess(time.monotonic() - started, 1.0)
            time.sleep(0.2)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        finally:
            s.close()
        self.assertIsNone(first_difference(body, self.big))

    def test_other_admin_endpoints_unchanged(self):
        self.assertEqual(self.admin("GET", "/healthz").status, 200)
        self.assertEqual(self.admin("GET", "/config").status, 401)
        self.assertEqual(self.admin("GET", "/config", token=TOKEN).status, 200)
        self.assertEqual(self.admin("GET", "/consolex").status, 401)
        self.assertEqual(self.admin("GET", "/consolex", token=TOKEN).status, 404)
        self.assertEqual(self.admin("GET", "/nope").status, 401)

    def test_zz_reload_changes_and_removes_console(self):
        # runs last in this class (name order): it changes the console
        other = os.path.join(self.tmp, "console2")
        write(os.path.join(other, "index.html"), b"second console\n")
        try:
            self.gw.reload_file(self.config('  console: { root: "%s", cache_control: "max-age=7" }\n'
                                            % other))
            self.assertEqual(self.admin("POST", "/reload", token=TOKEN).status, 200)
            r = self.admin("GET", "/console/")
            self.assertEqual((r.status, r.body), (200, b"second console\n"))
            self.assertEqual(r.headers.get("cache-control"), "max-age=7")
            # a console root that does not exist is refused; the console stays
            self.gw.reload_file(self.config('  console: { root: "%s" }\n'
                                            % os.path.join(self.tmp, "nowhere")))
            self.assertEqual(self.admin("POST", "/reload", token=TOKEN).status, 400)
            self.assertEqual(self.admin("GET", "/console/").body, b"second console\n")
            # removed: /console/ is an unknown path
            self.gw.reload_file(self.config(""))
            self.assertEqual(self.admin("POST", "/reload", token=TOKEN).status, 200)
            self.assertEqual(self.admin("GET", "/console/").status, 401)
            self.assertEqual(self.admin("GET", "/console/", token=TOKEN).status, 404)
            self.assertEqual(self.admin("GET", "/healthz").status, 200)
        finally:
            self.gw.reload_file(self.config('  console: { root: "%s" }\n' % self.root))
            self.admin("POST", "/reload", token=TOKEN)


class NoConsoleTest(unittest.TestCase):
    def test_console_is_unknown_path_without_console(self):
        tmp = tempfile.mkdtemp(prefix="ganglion-noconsole-")
        self.addCleanup(shutil.rmtree, tmp, True)
        root = build_tree(tmp)
        port, admin = free_port(), free_port()
        with Gateway(render(ADMIN_CONFIG, port=port, admin=admin, root=root, token=TOKEN, console=""),
                     admin_port=admin, port=port) as gw:
            for path in ("/console/", "/console", "/console/index.html"):
                with self.subTest(path=path):
                    self.assertEqual(gw.admin("GET", path).status, 401)
                    r = gw.admin("GET", path, token=TOKEN)
                    self.assertEqual(r.status, 404)
                    self.assertEqual(error_of(r.body)["code"], 404)
            r = gw.admin("GET", "/healthz")
            self.assertEqual((r.status, r.body), (200, b"ok\n"))
            # the public static route on the same gateway still works
            self.assertEqual(gw.request("GET", "/hello.txt").body, b"hello, static world\n")

    def test_console_config_errors(self):
        tmp = tempfile.mkdtemp(prefix="ganglion-consolecfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.makedirs(os.path.join(tmp, "c"))
        for console, needle in (('  console: { root: "%s/missing" }\n' % tmp, "No such file or directory"),
                                ('  console: { root: "%s/c", bogus: 1 }\n' % tmp, "unknown field 'bogus'"),
                                ('  console: { root: "%s/c", index: "a/b" }\n' % tmp, "index")):
            with self.subTest(console=console):
                text = render(ADMIN_CONFIG, port=8080, admin=9901, root=tmp, token=TOKEN, console=console)
                path = os.path.join(tmp, "g.yaml")
                with open(path, "w") as f:
                    f.write(text)
                p = run_cli(["check", "--config", path])
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertIn(needle, p.stderr)
                self.assertIn("%s:%d: " % (path, line_of(text, "console:")), p.stderr)


if __name__ == "__main__":
    unittest.main()
