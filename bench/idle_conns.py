#!/usr/bin/env python3
"""Open N keep-alive client connections to a server and hold them idle.

Each connection sends one complete request (GET / HTTP/1.1, Host: x) and reads
the whole reply, so the server has seen a real request on it and now holds it as
an idle keep-alive connection. Then the script prints one line

    READY opened=<n ok> failed=<n failed> seconds=<time to open>

on stdout and holds the connections until it gets SIGTERM/SIGINT, stdin is
closed (only with --until-stdin-eof), or --hold seconds pass. On the way out it
prints

    DONE still_open=<n> closed_by_peer=<n>

Used by bench/proxy_vs_nginx.sh to measure a gateway's RSS with many idle
clients. Only the standard library is used.
"""

import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def raise_nofile(want):
    """The Python equivalent of `ulimit -n <want>` (falls back to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for target in ((want, max(want, hard)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, target)
            return target[0]
        except (ValueError, OSError):
            continue
    return soft


def reply_complete(buf):
    """True once buf holds one whole HTTP/1.1 response (Content-Length or chunked)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").lower()
    body = buf[end + 4:]
    length = None
    chunked = False
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        name = name.strip()
        if name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return True
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
    status = head.split(" ", 2)
    if len(status) >= 2 and status[1] in ("204", "304"):
        return True
    if chunked:
        return body.endswith(b"0\r\n\r\n")
    if length is not None:
        return len(body) >= length
    return True  # no framing info: take the head as the whole reply


def open_batch(host, port, count, timeout):
    """Open `count` connections concurrently; return (list of ok sockets, n failed)."""
    sel = selectors.DefaultSelector()
    state = {}
    failed = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            s.close()
            failed += 1
            continue
        state[s] = {"phase": "connect", "buf": b""}
        sel.register(s, selectors.EVENT_WRITE)
    ok = []
    deadline = time.monotonic() + timeout
    while state and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(0.2, deadline - time.monotonic()))):
            s = key.fileobj
            st = state[s]
            try:
                if st["phase"] == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    s.send(REQUEST)  # tiny; fits the empty send buffer
                    st["phase"] = "read"
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("peer closed before the reply was complete")
                    st["buf"] += data
                    if reply_complete(st["buf"]):
                        sel.unregister(s)
                        del state[s]
                        ok.append(s)
            except OSError:
                sel.unregister(s)
                del state[s]
                s.close()
                failed += 1
    for s in list(state):
        sel.unregister(s)
        s.close()
        failed += 1
    sel.close()
    return ok, failed


class Stop(Exception):
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", "--connections", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=250, help="connections opened concurrently")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per batch")
    ap.add_argument("--hold", type=float, default=120.0, help="hold at most this many seconds")
    ap.add_argument("--until-stdin-eof", action="store_true", help="also stop when stdin closes")
    args = ap.parse_args()

    limit = raise_nofile(65536)
    if limit < args.connections + 64:
        print(f"warning: RLIMIT_NOFILE is {limit}, fewer than the {args.connections} connections asked for",
              file=sys.stderr)

    def on_signal(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    socks = []
    failed = 0
    t0 = time.monotonic()
    try:
        remaining = args.connections
        while remaining > 0:
            batch = min(args.batch, remaining)
            ok, bad = open_batch(args.host, args.port, batch, args.timeout)
            socks += ok
            failed += bad
            remaining -= batch
            # A server that refuses everything: stop early rather than spin.
            if not socks and failed >= 2 * args.batch:
                failed += remaining
                break
        print(f"READY opened={len(socks)} failed={failed} seconds={time.monotonic() - t0:.2f}", flush=True)

        sel = selectors.DefaultSelector()
        if args.until_stdin_eof:
            sel.register(sys.stdin, selectors.EVENT_READ)
        deadline = time.monotonic() + args.hold
        while time.monotonic() < deadline:
            events = sel.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))) if sel.get_map() else None
            if events:
                if not sys.stdin.readline():
                    break
            elif not sel.get_map():
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    except Stop:
        pass

    # Count how many the server has closed meanwhile (readable + EOF or error).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    closed = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1)
            if data == b"":
                closed += 1
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            closed += 1
    print(f"DONE still_open={len(socks) - closed} closed_by_peer={closed}", flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
