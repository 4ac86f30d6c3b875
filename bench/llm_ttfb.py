#!/usr/bin/env python3
"""Time to first byte of streamed chat completions, one connection, for bench/llm_vs_portkey.sh.

Sends N (after W warm-up) POST /v1/chat/completions (--path) requests with "stream": true, one after
another on one keep-alive HTTP/1.1 connection, and times each from just before the request
is written until the first byte of the response body (the start of the first SSE event)
arrives. The rest of the body is then read and checked (it must contain "data: [DONE]").

Prints one line:  OK n=N p50_us=.. p90_us=.. p99_us=.. max_us=.. bad=B
"""

import argparse
import http.client
import json
import socket
import sys
import time


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/chat/completions")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-w", "--warmup", type=int, default=200)
    ap.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()

    headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
    for h in a.header:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    body = json.dumps({
        "model": a.model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
        "max_tokens": 32,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }, separators=(",", ":")).encode()

    conn = None
    samples = []
    bad = 0
    for i in range(a.warmup + a.n):
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=a.timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r, first = None, b""
        try:
            t0 = time.perf_counter_ns()
            conn.request("POST", a.path, body=body, headers=headers)
            r = conn.getresponse()
            first = r.read(1)
            t1 = time.perf_counter_ns()
            rest = r.read()
            ok = r.status == 200 and first == b"d" and b"data: [DONE]" in rest
            if r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            print(f"request failed: {e}", file=sys.stderr)
            ok = False
            conn.close()
            conn = None
        if not ok:
            bad += 1
            if bad == 1:
                print(f"bad reply: status {getattr(r, 'status', '?')} first={first!r}", file=sys.stderr)
            if bad > 10 and bad > i // 10:
                print("too many bad replies", file=sys.stderr)
                print(f"FAILED bad={bad}")
                return 1
            continue
        if i >= a.warmup:
            samples.append((t1 - t0) / 1000.0)

    s = sorted(samples)
    print("OK n=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f bad=%d"
          % (len(s), pct(s, 50), pct(s, 90), pct(s, 99), s[-1] if s else float("nan"), bad))
    return 0 if s else 1


if __name__ == "__main__":
    sys.exit(main())
