"""Shared helpers for the Ganglion integration tests (Python 3 standard library only).

Nothing here knows about a particular test: it starts the gateway binary with a
config, runs fake upstreams (a well-behaved HTTP/1.1 echo server and a raw
socket server for hostile behaviour), and speaks raw HTTP/1.1 to the gateway.
"""

import getpass
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("GANGLION_BIN") or os.path.join(REPO, "build", "ganglion")

LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()
_port_rng = random.Random(os.getpid() ^ time.time_ns())


def free_port(udp=False):
    """A loopback TCP (or, with `udp`, UDP) port that was free a moment ago, chosen below the kernel's ephemeral
    range. A port from bind(0) is an ephemeral one, which every outgoing connection on the box
    may take as its source port: under `ctest -j2` one was taken that way between the test
    picking it and the gateway binding it ("already in use by another process"). Ports are
    drawn at random and never handed out twice by one process."""
    low = 10000
    high = max(low + 1000, _EPHEMERAL_LOW)
    for _ in range(500):
        port = _port_rng.randrange(low, high)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below %d" % high)


def render(template, **values):
    """Replace @NAME@ placeholders (keeps YAML braces readable in tests)."""
    out = template
    for key, value in values.items():
        out = out.replace("@%s@" % key.upper(), str(value))
    leftover = re.search(r"@[A-Z_0-9]+@", out)
    if leftover:
        raise ValueError("unfilled placeholder %s in config" % leftover.group(0))
    return out


def line_of(text, needle, occurrence=1):
    """1-based line number of the n-th line containing needle."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise ValueError("%r not found in text" % needle)


def unread_by_server(server_port, clients):
    """Bytes the server side of each client socket (IPv4 loopback) has received but not read
    yet, from /proc/net/tcp: 0 for all means the server has read everything sent so far. A
    connection the server has closed counts as read. Linux only."""
    wanted = {c.getsockname()[1] for c in clients}
    unread = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            remote_port = int(fields[2].split(":")[1], 16)
            if local_port == server_port and remote_port in wanted:
                unread += int(fields[4].split(":")[1], 16)
    return unread


def wait_until(predicate, timeout=5.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def require_binary():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        raise RuntimeError(
            "gateway binary not found at %s (build it, or set GANGLION_BIN)" % BIN)


def run_cli(args, env=None, timeout=10):
    """Run the binary with args; returns CompletedProcess with text output."""
    require_binary()
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([BIN] + list(args), env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True,
                          errors="replace")


# --------------------------------------------------------------------------
# the gateway process
# --------------------------------------------------------------------------

_LISTENER_ADDR = re.compile(r"address:\s*[\"']?127\.0\.0\.1:(\d+)")


class Gateway:
    """Runs `ganglion serve --config FILE` for the duration of a with-block.

    Readiness: GET /healthz on admin_port answers 200 when admin_port is given,
    otherwise the first listener port (or `port`) accepts TCP connections.
    """

    def __init__(self, config_yaml_text, env=None, admin_port=None, port=None,
                 start_timeout=5.0):
        self.config_text = config_yaml_text
        self.env = env or {}
        self.admin_port = admin_port
        self.port = port
        if self.port is None:
            section = config_yaml_text.split("listeners:", 1)
            m = _LISTENER_ADDR.search(section[1] if len(section) > 1 else config_yaml_text)
            self.port = int(m.group(1)) if m else None
        self.start_timeout = start_timeout
        self.proc = None
        self.dir = None
        self.config_path = None
        self.log_path = None
        self._log_file = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        require_binary()
        self.dir = tempfile.mkdtemp(prefix="ganglion-it-")
        self.config_path = os.path.join(self.dir, "ganglion.yaml")
        self.log_path = os.path.join(self.dir, "gateway.log")
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        full_env = dict(os.environ)
        full_env.update(self.env)
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve", "--config", self.config_path],
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited with %s during start-up; log:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            if self._ready():
                return self
            if time.monotonic() >= deadline:
                log = self.log_text()
                self.stop()
                raise RuntimeError("gateway not ready after %.1fs; log:\n%s"
                                   % (self.start_timeout, log))
            time.sleep(0.01)

    def _ready(self):
        if self.admin_port is not None:
            try:
                conn = http.client.HTTPConnection(LOCALHOST, self.admin_port, timeout=0.5)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
                return ok
            except OSError:
                return False
        if self.port is None:
            raise RuntimeError("no listener port found in config; pass port=")
        try:
            socket.create_connection((LOCALHOST, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self, timeout=5.0):
        """SIGTERM, wait `timeout`, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.dir and not os.environ.get("GANGLION_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    # -- helpers -----------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_records(self, *needles):
        """The access-log records (JSON lines of the log) whose text holds every needle."""
        return [json.loads(line) for line in self.log_text().splitlines()
                if line.startswith("{") and all(n in line for n in needles)]

    def reload_file(self, new_text):
        """Atomically replace the config file's contents."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(new_text)
        os.replace(tmp, self.config_path)
        self.config_text = new_text

    def signal(self, sig):
        os.kill(self.pid, sig)

    def request(self, method="GET", path="/", **kw):
        return http_request(self.port, method, path, **kw)

    def admin(self, method="GET", path="/healthz", token=None, **kw):
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return http_request(self.admin_port, method, path, headers=headers, **kw)


# --------------------------------------------------------------------------
# HTTP client helpers
# --------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body, reason=""):
        self.status = status
        self.headers = headers
        self.body = body
        self.reason = reason

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


def _lower_headers(pairs):
    out = {}
    for name, value in pairs:
        name = name.lower()
        out[name] = out[name] + ", " + value if name in out else value
    return out


def http_request(port, method="GET", path="/", body=None, headers=None, timeout=5.0,
                 chunked=False):
    """One request on a fresh connection via http.client; returns Response."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        if chunked:
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, _lower_headers(resp.getheaders()), data, resp.reason)
    finally:
        conn.close()


def keepalive_request(conn, method="GET", path="/", body=None, headers=None):
    """A request on an existing http.client.HTTPConnection; returns Response."""
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return Response(resp.status, _lower_headers(resp.getheaders()), data, resp.reason)


def raw_exchange(port, data, read_timeout=2.0, expect=None, methods=None, shut_wr=False):
    """Send raw bytes on a fresh socket; read until the peer closes, read_timeout
    seconds pass (overall), or `expect` complete responses have arrived.
    Returns (bytes_received, peer_closed)."""
    s = socket.create_connection((LOCALHOST, port), timeout=read_timeout)
    buf = b""
    closed = False
    try:
        try:
            if data:
                s.sendall(data)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + read_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            s.settimeout(remaining)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
            if expect is not None:
                try:
                    if len(parse_responses(buf, methods=methods, eof=False)) >= expect:
                        break
                except ValueError:
                    pass  # not HTTP; keep reading until close/timeout
    finally:
        s.close()
    return buf, closed


def raw_request(port, data, read_timeout=2.0, expect=None, methods=None):
    """Send raw bytes; return all bytes received until close/timeout/`expect` responses."""
    return raw_exchange(port, data, read_timeout, expect, methods)[0]


def _parse_one(data, pos, method, eof):
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    head = data[pos:end].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("bad status line %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    start = end + 4
    if (method or "").upper() == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return status, headers, b"", start
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        p = start
        while True:
            le = data.find(b"\r\n", p)
            if le < 0:
                return None
            size = int(data[p:le].split(b";")[0].strip(), 16)
            p = le + 2
            if size == 0:
                # trailers until an empty line
                while True:
                    le = data.find(b"\r\n", p)
                    if le < 0:
                        return None
                    line = data[p:le]
                    p = le + 2
                    if not line:
                        return status, headers, body, p
            if len(data) < p + size + 2:
                return None
            body += data[p:p + size]
            p += size + 2
    if "content-length" in headers:
        n = int(headers["content-length"].split(",")[0])
        if len(data) - start < n:
            return None
        return status, headers, data[start:start + n], start + n
    if not eof:
        return None
    return status, headers, data[start:], len(data)


def parse_responses(data, methods=None, eof=True):
    """Split a byte stream into complete HTTP/1.x responses.

    Returns a list of (status, headers-dict-lower-case, body-bytes). Interim 1xx
    responses (except 101) are skipped. `methods` gives the request method for
    each response in order (HEAD responses have no body). With eof=True a
    response without Content-Length/chunked framing takes the rest of the data.
    Incomplete trailing data is ignored."""
    out = []
    pos = 0
    index = 0
    while pos < len(data):
        method = methods[index] if methods and index < len(methods) else None
        one = _parse_one(data, pos, method, eof)
        if one is None:
            break
        status, headers, body, pos = one
        if 100 <= status < 200 and status != 101:
            continue
        out.append((status, headers, body))
        index += 1
    return out


def first_status(data):
    """Status code of the first status line in data, or None."""
    m = re.match(rb"HTTP/\d\.\d (\d{3})", data)
    return int(m.group(1)) if m else None


def error_json(body):
    """Decode a gateway error body; returns the inner `error` object."""
    doc = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    return doc["error"]


# --------------------------------------------------------------------------
# fake upstreams
# --------------------------------------------------------------------------

_KEYWORDS = ("status", "delay", "chunked", "sse", "big", "close", "close-silent")


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestUpstream/1"
    timeout = 30
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        owner = self.server.owner
        with owner.lock:
            owner.connections += 1

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    # -- body reading ------------------------------------------------------
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            return body
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionError("eof in chunk data")
                body += data
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if length:
            n = int(length)
            data = self.rfile.read(n)
            if len(data) != n:
                raise ConnectionError("eof in body")
            return data
        return b""

    # -- responses ---------------------------------------------------------
    def _send(self, status, body, content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Upstream", self.server.owner.name)
        for name, value in (extra or []):
            self.send_header(name, value)
        for spec in self.headers.get_all("X-Reply-Header") or []:
            name, _, value = spec.partition("=")
            self.send_header(name.strip(), value.strip())
        if status not in (204, 304) and not (100 <= status < 200):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _handle(self):
        owner = self.server.owner
        try:
            body = self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        record = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "upstream": owner.name,
        }
        with owner.lock:
            owner.requests.append(record)
        route = self.path.split("?", 1)[0]
        parts = route.strip("/").split("/")
        # the keyword may follow a route prefix: /a/delay/500 behaves like /delay/500
        for idx, seg in enumerate(parts):
            if seg in _KEYWORDS:
                parts = parts[idx:]
                break
        echo = json.dumps(record).encode()

        if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
            status = int(parts[1])
            self._send(status, json.dumps({"status": status}).encode())
        elif parts[0] == "delay" and len(parts) > 1 and parts[1].isdigit():
            time.sleep(int(parts[1]) / 1000.0)
            self._send(200, echo)
        elif parts[0] == "chunked" and len(parts) > 1 and parts[1].isdigit():
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(n):
                    self._chunk(b"chunk-%d\n" % i)
                self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "sse" and len(parts) > 1 and parts[1].isdigit():
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            times = []
            for i in range(n):
                self._chunk(b"data: %d\n\n" % i)
                times.append(time.monotonic())
                if i + 1 < n:
                    time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            with owner.lock:
                owner.sse_send_times.append(times)
        elif parts[0] == "big" and len(parts) > 1 and parts[1].isdigit():
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command != "HEAD":
                block = b"x" * 65536
                left = n
                while left > 0:
                    piece = block[:min(left, len(block))]
                    self.wfile.write(piece)
                    left -= len(piece)
        elif parts[0] == "close":
            # announced close
            self._send(200, echo, extra=[("Connection", "close")])
            self.close_connection = True
        elif parts[0] == "close-silent":
            # closes after the response without saying so
            self._send(200, echo)
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(200, echo)


class _UpstreamServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class ThreadedServer:
    """An HTTP server on a free loopback port, served from a daemon thread for a with-block.
    Subclasses set `handler` (the request handler class, which reaches the instance as
    `self.server.owner`) and may set `ssl_context` (serve HTTPS)."""

    handler = None
    ssl_context = None

    def __enter__(self):
        self.server = _UpstreamServer((LOCALHOST, 0), self.handler)
        self.server.owner = self
        if self.ssl_context is not None:
            self.server.socket = self.ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping()
        self.server.shutdown()
        self.server.server_close()
        return False

    def stopping(self):
        """Called before the server shuts down (wake handlers that wait)."""

    @property
    def address(self):
        return "%s:%d" % (LOCALHOST, self.port)

    @property
    def url(self):
        return "http://%s" % self.address


class Upstream(ThreadedServer):
    """Threaded HTTP/1.1 echo server on a free loopback port.

    Counts `connections` accepted and `requests` (list of echo records)."""

    handler = _UpstreamHandler

    def __init__(self, name="upstream", ssl_context=None):
        self.name = name
        self.ssl_context = ssl_context  # set: serve HTTPS with this server context
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []
        self.sse_send_times = []
        self.server = None
        self.thread = None
        self.port = None


    @property
    def request_count(self):
        with self.lock:
            return len(self.requests)

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None


def read_request_head(sock, timeout=2.0):
    """Read from sock until the end of a request head; returns bytes (maybe partial)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    return buf


class RawServer:
    """Accepts TCP connections and runs handler(sock, server) on each, in a thread.

    server.stop_event is set on exit so handlers that hang can wait on it."""

    def __init__(self, handler):
        self.handler = handler
        self.lock = threading.Lock()
        self.connections = 0
        self.received = []
        self.stop_event = threading.Event()
        self.sock = None
        self.port = None
        self._socks = []

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self._socks.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn, self)
        except Exception:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def __exit__(self, *exc):
        self.stop_event.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        return False

    @property
    def address(self):
        return "%s:%d" % (LOCALHOST, self.port)


class SingleUpstreamCase(unittest.TestCase):
    """A test class with one echo upstream named "backend" and one gateway, started once for
    the class from CONFIG (a render() template with @PORT@ and @UP@)."""

    CONFIG = None

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream("backend").__enter__()
        cls.port = free_port()
        cls.gw = Gateway(render(cls.CONFIG, port=cls.port, up=cls.up.port))
        try:
            cls.gw.start()
        except Exception:
            cls.up.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.up.__exit__(None, None, None)


# --------------------------------------------------------------------------
# Redis: a real redis-server on a free loopback port, nothing persisted
# --------------------------------------------------------------------------

def wait_for_port(port, proc, timeout=5.0):
    """Whether a server `proc` started listens on `port` within `timeout` (False once it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOCALHOST, port), timeout=0.2).close()
            return True
        except OSError:
            if proc.poll() is not None:
                return False
            time.sleep(0.01)
    return False


class RedisServer:
    """Runs `redis-server` for a with-block; stop()/start() keep the port (outage tests)."""

    def __init__(self, password=None):
        self.port = free_port()
        self.password = password
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise unittest.SkipTest("redis-server is not installed (scripts/install-deps.sh installs it)")
        args = [exe, "--port", str(self.port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_for_port(self.port, self.proc):
            return self
        self.stop()
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def url(self, password=None):
        password = self.password if password is None else password
        auth = ":%s@" % password if password else ""
        return "redis://%s127.0.0.1:%d/3" % (auth, self.port)

    def cli(self, *args):
        """Runs one command through a raw RESP exchange; returns the decoded reply."""
        parts = ([("AUTH", self.password)] if self.password else []) + [("SELECT", "3"), args]
        payload = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                                                           for a in c) for c in parts)
        with socket.create_connection((LOCALHOST, self.port), timeout=2) as s:
            s.sendall(payload)
            f = s.makefile("rb")
            replies = [_read_resp(f) for _ in parts]
        return replies[-1]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _read_resp(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise ValueError("not RESP: %r" % line)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    """A CA, two server certificates (localhost, other.test) and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=Ganglion Test CA", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue-ca.key", "-out", "rogue-ca.pem",
            "-days", "2", "-subj", "/CN=Rogue CA", cwd=d)
    for name, san in (("localhost", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:other.test"),
                      ("client", None)):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + (name if name != "other" else "other.test"), cwd=d)
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % san if san else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", ext, cwd=d)


class Receiver:
    """An HTTP receiver of sink batches: answers `status` (200 unless told otherwise)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = []
        self.attempts = 0
        self.status = 200
        self.headers = []
        self.echo_headers = False  # answer a failure with the request's headers (a careless proxy)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The head and the body leave in one write (flushed after each request): written
            # apart, Nagle's algorithm and the client's delayed ACK cost 40 ms per batch.
            wbufsize = 64 * 1024

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with owner.lock:
                    owner.attempts += 1
                    status = owner.status
                    owner.headers.append(dict(self.headers.items()))
                    if 200 <= status < 300:
                        owner.batches.append(json.loads(body))
                self.send_response(status)
                if status == 204:  # no body, and no Content-Length: as InfluxDB answers a write
                    self.end_headers()
                    return
                reply = b'{"ok":true}'
                if owner.echo_headers and not 200 <= status < 300:
                    reply = json.dumps({"error": "refused: %s" % dict(self.headers.items())}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def records(self):
        with self.lock:
            return [r for b in self.batches for r in b["records"]]


class Mosquitto:
    """Runs the Debian `mosquitto` broker for a with-block on a free port (in-memory sessions:
    a restart forgets them). `extra` adds lines to its listener (TLS, password files);
    stop()/start() keep the port (outage tests)."""

    def __init__(self, extra="", allow_anonymous=True, persistent=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ganglion-mosquitto-")
        self.extra = extra
        self.allow_anonymous = allow_anonymous
        self.persistent = persistent  # sessions and queued messages survive stop()/start()
        self.proc = None

    def start(self):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if not exe or not shutil.which("mosquitto_pub"):
            raise unittest.SkipTest("mosquitto is not installed (scripts/install-deps.sh installs it)")
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            # `user`: run as root, mosquitto would switch to the mosquitto user, who cannot read
            # this directory (the log, the TLS files).
            persistence = ("persistence true\npersistence_location %s/\n" % self.dir if self.persistent
                           else "persistence false\n")
            f.write("user %s\nper_listener_settings true\nlistener %d %s\nallow_anonymous %s\n%s\n"
                    "%slog_dest file %s\nlog_type all\n" % (
                        getpass.getuser(), self.port, LOCALHOST, "true" if self.allow_anonymous else "false", self.extra,
                        persistence, os.path.join(self.dir, "mosquitto.log")))
        self.proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_for_port(self.port, self.proc):
            return self
        self.stop()
        raise RuntimeError("mosquitto did not start on port %d: %s" % (self.port, self.log()[-2000:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if not os.environ.get("GANGLION_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "mosquitto.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def url(self, scheme="mqtt"):
        return "%s://%s:%d" % (scheme, LOCALHOST, self.port)

    def publish(self, topic, payload, qos=1, args=()):
        """Publishes one message with mosquitto_pub (which waits for the broker's PUBACK/PUBCOMP)."""
        cmd = ["mosquitto_pub", "-h", LOCALHOST, "-p", str(self.port), "-t", topic, "-q", str(qos),
               "-m", payload, *args]
        subprocess.run(cmd, check=True, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def publish_many(self, topic, payloads, qos=1, args=()):
        """Publishes one message per line on one connection (mosquitto_pub -l)."""
        cmd = ["mosquitto_pub", "-h", LOCALHOST, "-p", str(self.port), "-t", topic, "-q", str(qos), "-l", *args]
        subprocess.run(cmd, input="\n".join(payloads) + "\n", text=True, check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _coap_tool(name):
    exe = shutil.which(name + "-notls") or shutil.which(name)
    if not exe:
        raise unittest.SkipTest("%s is not installed (scripts/install-deps.sh installs libcoap3-bin)" % name)
    return exe


def _coap_dtls_tool(name):
    exe = shutil.which(name + "-openssl")
    if not exe:
        raise unittest.SkipTest("%s-openssl is not installed (scripts/install-deps.sh installs libcoap3-bin)" % name)
    return exe


def _udp_port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((LOCALHOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def coaps(method, uri, identity, key, payload=None, content_format=None, extra=(), wait=3):
    """One request over DTLS with a pre-shared key (libcoap's OpenSSL `coap-client`; with
    `identity` empty, the certificate options in `extra`); returns (code, text) as coap()
    does, ("", "") when the handshake fails or nothing answers."""
    cmd = [_coap_dtls_tool("coap-client"), "-B", str(wait), "-m", method] + list(extra)
    if identity:
        cmd += ["-u", identity, "-k", key]
    if content_format is not None:
        cmd += ["-t", str(content_format)]
    if payload is not None:
        cmd += ["-e", payload]
    cmd.append(uri)
    return _coap_result(subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 10))


def coap(method, uri, payload=None, content_format=None, non=False, wait=3, extra=()):
    """One request with libcoap's `coap-client`. Returns (code, text): ("2.xx", payload) for a
    success (coap-client does not print a success's code); for an error, coap-client prints
    "4.04 Not Found ..." on stderr, split into its code and the rest; ("", "") when nothing
    answered within `wait` seconds."""
    cmd = [_coap_tool("coap-client"), "-B", str(wait), "-m", method]
    if content_format is not None:
        cmd += ["-t", str(content_format)]
    if payload is not None:
        cmd += ["-e", payload]
    if non:
        cmd.append("-N")
    cmd += list(extra)
    cmd.append(uri)
    return _coap_result(subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 10))


def _coap_result(r):
    lines = [line for line in r.stderr.splitlines() if not re.search(r" (EMRG|ALRT|CRIT|ERR|WARN|NOTE|INFO|DEBG) ", line)]
    m = re.match(r"^(\d\.\d\d)\s*(.*)$", "\n".join(lines).strip(), re.S)
    if m:
        return m.group(1), m.group(2)
    if "cannot send CoAP pdu" in r.stderr + r.stdout or r.returncode != 0:
        return "", ""
    # libcoap's log lines (a DTLS alert) go to stdout too.
    return "2.xx", "".join(line for line in r.stdout.splitlines(True)
                           if not re.search(r" (EMRG|ALRT|CRIT|ERR|WARN|NOTE|INFO|DEBG) ", line))


class CoapServer:
    """libcoap's example `coap-server` on a free UDP port for a with-block: its resource
    /example_data takes a PUT and is observable (each PUT notifies the observers). With
    `psk_key`, the OpenSSL build also serves CoAP over DTLS on the next port (`dtls_port`),
    taking that pre-shared key for any identity."""

    def __init__(self, psk_key=None):
        self.psk_key = psk_key
        while True:
            self.port = free_port(udp=True)
            if not psk_key or _udp_port_free(self.port + 1):
                break
        self.dtls_port = self.port + 1
        self.proc = None

    def start(self):
        exe = _coap_tool("coap-server") if not self.psk_key else _coap_dtls_tool("coap-server")
        cmd = [exe, "-A", LOCALHOST, "-p", str(self.port)]
        if self.psk_key:
            cmd += ["-k", self.psk_key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            code, _ = coap("get", self.uri("/.well-known/core"), wait=1)
            if code:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("coap-server did not answer on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def uri(self, path):
        return "coap://%s:%d%s" % (LOCALHOST, self.port, path)

    def dtls_uri(self, path):
        return "coaps://%s:%d%s" % (LOCALHOST, self.dtls_port, path)


class InfluxDB:
    """Runs Debian's InfluxDB 1.x server (`influxd`) for a with-block on free ports, its data in a
    temporary directory, with database `db` created. `max_body_size` (bytes, 0: InfluxDB's 25 MB)
    makes it answer 413 to larger writes. query() runs InfluxQL and returns the result's series."""

    def __init__(self, db="plant", max_body_size=0):
        self.port = free_port()
        self.rpc_port = free_port()
        self.db = db
        self.max_body_size = max_body_size
        self.dir = tempfile.mkdtemp(prefix="ganglion-influxdb-")
        self.proc = None

    def start(self):
        exe = shutil.which("influxd")
        if not exe:
            raise unittest.SkipTest("influxd is not installed (scripts/install-deps.sh installs it)")
        conf = os.path.join(self.dir, "influxdb.conf")
        with open(conf, "w") as f:
            f.write('reporting-disabled = true\nbind-address = "%s:%d"\n'
                    '[meta]\n  dir = "%s/meta"\n'
                    '[data]\n  dir = "%s/data"\n  wal-dir = "%s/wal"\n  query-log-enabled = false\n'
                    '[http]\n  bind-address = "%s:%d"\n  log-enabled = false\n%s'
                    '[monitor]\n  store-enabled = false\n' % (
                        LOCALHOST, self.rpc_port, self.dir, self.dir, self.dir, LOCALHOST, self.port,
                        "  max-body-size = %d\n" % self.max_body_size if self.max_body_size else ""))
        self.log_file = open(os.path.join(self.dir, "influxd.log"), "wb")
        self.proc = subprocess.Popen([exe, "-config", conf], stdout=self.log_file, stderr=subprocess.STDOUT)
        if wait_for_port(self.port, self.proc, timeout=20):
            if self.db:
                self.query("CREATE DATABASE \"%s\"" % self.db, method="POST")
            return self
        self.stop()
        raise RuntimeError("influxd did not start on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.log_file.close()
        if not os.environ.get("GANGLION_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_url(self, precision=None, db=None):
        url = "http://%s:%d/write?db=%s" % (LOCALHOST, self.port, db or self.db)
        return url + ("&precision=" + precision if precision else "")

    def write(self, lines, precision="ms"):
        """Writes line protocol directly; returns (status, body)."""
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=10)
        try:
            conn.request("POST", "/write?db=%s&precision=%s" % (self.db, precision), body=lines.encode())
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def query(self, q, method="GET"):
        """Runs InfluxQL `q`; returns the first statement's series (a list of {name, columns, values,
        tags}), with times as epoch milliseconds."""
        import urllib.parse
        params = urllib.parse.urlencode({"db": self.db, "q": q, "epoch": "ms"})
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=10)
        try:
            if method == "POST":
                conn.request("POST", "/query", body=params.encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            else:
                conn.request("GET", "/query?" + params)
            r = conn.getresponse()
            body = json.loads(r.read() or b"{}")
        finally:
            conn.close()
        results = body.get("results") or [{}]
        if "error" in results[0]:
            raise RuntimeError("InfluxQL %r: %s" % (q, results[0]["error"]))
        return results[0].get("series", [])

    def rows(self, q):
        """The rows of `q` as dicts (column: value), series after series."""
        out = []
        for s in self.query(q):
            for v in s["values"]:
                row = dict(zip(s["columns"], v))
                row.update(s.get("tags") or {})
                out.append(row)
        return out


class ModbusServer:
    """A Modbus TCP server (function codes 1-6 and 16) on a free port for a with-block.
    `holding`, `inputs`, `coils`, `discrete` map 0-based addresses to values (registers are
    16-bit); an address it lacks answers exception 2 (illegal data address). `silent = True`
    makes it read requests and answer nothing (a device that stopped answering). stop() and
    start() keep the port."""

    def __init__(self, unit_id=1):
        self.port = free_port()
        self.unit_id = unit_id
        self.holding, self.inputs, self.coils, self.discrete = {}, {}, {}, {}
        self.silent = False
        self.delay_next = 0.0  # seconds the next answer waits (then 0 again): a late answer
        self.latency = 0.0     # seconds every answer waits (a real device's turnaround)
        self.requests = 0
        self.writes = []  # (table, address, values)
        self.lock = threading.Lock()
        self.sock = None

    def set_registers(self, table, address, regs):
        with self.lock:
            for i, r in enumerate(regs):
                table[address + i] = r & 0xFFFF

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCALHOST, self.port))
        self.sock.listen(16)
        self.open = True
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()
        return self

    def stop(self):
        self.open = False
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        self.sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self, sock):
        conns = []
        while self.open:
            try:
                conn, _ = sock.accept()
            except OSError:
                break
            conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def _recv(self, conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _serve(self, conn):
        try:
            while self.open:
                head = self._recv(conn, 7)
                tid, proto, length, unit = int.from_bytes(head[0:2], "big"), int.from_bytes(head[2:4], "big"), \
                    int.from_bytes(head[4:6], "big"), head[6]
                pdu = self._recv(conn, length - 1)
                with self.lock:
                    self.requests += 1
                    if self.silent:
                        continue
                    answer = self._answer(pdu)
                    delay, self.delay_next = self.delay_next, 0.0
                if delay or self.latency:
                    time.sleep(delay + self.latency)
                conn.sendall(tid.to_bytes(2, "big") + proto.to_bytes(2, "big") +
                             (len(answer) + 1).to_bytes(2, "big") + bytes([unit]) + answer)
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, pdu):
        fn = pdu[0]

        def error(code):
            return bytes([fn | 0x80, code])
        if fn in (1, 2, 3, 4):
            address, count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
            table = {1: self.coils, 2: self.discrete, 3: self.holding, 4: self.inputs}[fn]
            if any(address + i not in table for i in range(count)):
                return error(2)
            if fn in (1, 2):
                bits = [1 if table[address + i] else 0 for i in range(count)]
                packed = bytearray((count + 7) // 8)
                for i, b in enumerate(bits):
                    packed[i // 8] |= b << (i % 8)
                return bytes([fn, len(packed)]) + bytes(packed)
            body = b"".join(table[address + i].to_bytes(2, "big") for i in range(count))
            return bytes([fn, len(body)]) + body
        if fn in (5, 6):
            address, value = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
            table = self.coils if fn == 5 else self.holding
            if address not in table:
                return error(2)
            table[address] = (1 if value == 0xFF00 else 0) if fn == 5 else value
            self.writes.append(("coil" if fn == 5 else "holding", address, [value]))
            return pdu[:5]
        if fn == 16:
            address, count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
            values = [int.from_bytes(pdu[6 + 2 * i:8 + 2 * i], "big") for i in range(count)]
            if any(address + i not in self.holding for i in range(count)):
                return error(2)
            for i, v in enumerate(values):
                self.holding[address + i] = v
            self.writes.append(("holding", address, values))
            return pdu[:5]
        return error(1)


def check_config(text):
    """Runs `ganglion check` on a config file holding `text`; returns (exit status, output)."""
    d = tempfile.mkdtemp(prefix="ganglion-check-")
    try:
        path = os.path.join(d, "ganglion.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = run_cli(["check", "--config", path])
        return r.returncode, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def assert_refused_at(test, text, cases):
    """For each (old, new, message[, needle]) case: `text` with `old` replaced by `new` fails
    `ganglion check` with `message`, at the line of `old`'s first line in `text` (or, with a
    needle, at the line holding the needle in the changed text)."""
    for case in cases:
        old, new, message = case[:3]
        with test.subTest(new=new):
            test.assertIn(old, text)
            bad = text.replace(old, new, 1)
            code, out = check_config(bad)
            test.assertNotEqual(code, 0, out)
            test.assertIn(message, out)
            where, needle = (bad, case[3]) if len(case) > 3 else (text, old.split("\n")[0])
            line = next(i for i, l in enumerate(where.split("\n")) if needle in l) + 1
            test.assertIn(":%d:" % line, out)
