#!/usr/bin/env python3
"""Many concurrent LLM streams through the gateway, none allowed to stall.

Opens N streaming chat completions at once (asyncio, one connection each) against a gateway
whose provider streams slowly (the fake provider with an event delay), and checks that every
stream finishes with [DONE] and that no stream waits longer than --max-gap seconds between
two reads. Prints completion counts, the largest gap, wall time and the gateway's RSS.

    python3 bench/llm_streams.py --streams 1000 --event-delay 0.2

Starts its own slow-streaming provider (asyncio, in this process, so it can hold thousands of
streams) and the gateway (tests/integration harness), so it needs the built binary
(GANGLION_BIN, default build/ganglion).
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from harness import Gateway, free_port, render  # noqa: E402

CONFIG = """
workers: @WORKERS@
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - { name: fake, kind: openai, base_url: "http://@PROVIDER@/v1", api_key: sk-fake }
models:
  - { name: m, targets: [ { provider: fake, model: m } ] }
keys:
  - { name: bench, key: sk-bench-key-123 }
access_log: { enabled: false }
"""


async def one_stream(port, body, max_gap, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-bench-key-123\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)).encode() + body)
    await writer.drain()
    data = b""
    last = time.monotonic()
    while b"data: [DONE]" not in data:
        chunk = await asyncio.wait_for(reader.read(65536), timeout=max_gap * 4)
        now = time.monotonic()
        stats["max_gap"] = max(stats["max_gap"], now - last)
        last = now
        if not chunk:
            break
        data += chunk
    writer.close()
    if b"data: [DONE]" in data and b" 200 " in data.split(b"\r\n", 1)[0]:
        stats["done"] += 1
    else:
        stats["failed"] += 1


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


async def provider_conn(reader, writer, args):
    """Answers each chat request with a slow OpenAI stream: one word every event_delay."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            for i in range(args.words):
                await asyncio.sleep(args.event_delay)
                delta = {"role": "assistant", "content": "w%d " % i} if i == 0 else {"content": "w%d " % i}
                event = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}])
                writer.write(chunk(b"data: " + json.dumps(event).encode() + b"\n\n"))
                await writer.drain()
            done = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
            usage = dict(base, choices=[], usage={"prompt_tokens": 5, "completion_tokens": args.words,
                                                  "total_tokens": 5 + args.words})
            for event in (done, usage):
                writer.write(chunk(b"data: " + json.dumps(event).encode() + b"\n\n"))
            writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main_async(args, port):
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    stats = {"done": 0, "failed": 0, "max_gap": 0.0}
    started = time.monotonic()
    results = await asyncio.gather(*(one_stream(port, body, args.max_gap, stats) for _ in range(args.streams)),
                                   return_exceptions=True)
    stats["errors"] = sum(1 for r in results if isinstance(r, Exception))
    stats["wall"] = time.monotonic() - started
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--event-delay", type=float, default=0.2)
    ap.add_argument("--words", type=int, default=10)
    ap.add_argument("--max-gap", type=float, default=2.0, help="seconds a stream may wait between reads")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.streams * 4 + 256)), hard))
    provider_port, port = free_port(), free_port()
    with Gateway(render(CONFIG, port=port, provider="127.0.0.1:%d" % provider_port, workers=args.workers)) as gw:
        before = rss_kb(gw.pid)

        async def run():
            server = await asyncio.start_server(lambda r, w: provider_conn(r, w, args), "127.0.0.1", provider_port,
                                                backlog=4096)
            async with server:
                return await main_async(args, port)

        stats = asyncio.run(run())
        after = rss_kb(gw.pid)
    ok = stats["done"] == args.streams and stats["max_gap"] <= args.max_gap
    print("streams %d: completed %d, failed %d, errors %d; largest gap between reads %.2f s (limit %.1f); "
          "wall %.1f s; gateway RSS %.1f MB before, %.1f MB after"
          % (args.streams, stats["done"], stats["failed"], stats["errors"], stats["max_gap"], args.max_gap,
             stats["wall"], before / 1024, after / 1024))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
