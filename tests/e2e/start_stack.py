#!/usr/bin/env python3
"""Starts the fake LLM provider and the real gateway for the end-to-end tests (sdk.test.mjs,
clients.test.mjs; stack.mjs drives it). The config's providers are of the openai, anthropic,
gemini and bedrock kinds, all pointed at the one fake provider.

Prints one JSON line, {"gateway": PORT, "provider": PORT}, once both answer, then serves
commands read from stdin, one JSON object per line, answering one JSON line each:

  {"script": {...}}   provider.script(**...)   (e.g. {"status": 503} or {"delay": 0.5, "times": 20})
  {"clear": true}     provider.clear(): forget recorded requests and unused script entries
  {"last": true}      the last request the provider saw: {"method", "path", "json"}
  {"requests": true}  every request the provider saw since the last clear, in that shape

Anything else, or a failing command, answers {"error": "..."}. Closing stdin (or SIGTERM)
stops the gateway and the provider. The gateway binary is $GANGLION_BIN (default
build/ganglion); its log is copied to stderr on exit when GANGLION_E2E_LOG is set.
"""

import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from harness import Gateway, free_port, render  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

CONFIG = """
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - name: main
    kind: openai
    base_url: http://@FAKE@/v1
    api_key: sk-provider-main
  - name: claude
    kind: anthropic
    base_url: http://@FAKE@
    api_key: sk-ant-provider
  - name: google
    kind: gemini
    base_url: http://@FAKE@
    api_key: gm-provider-key
  - name: aws
    kind: bedrock
    base_url: http://@FAKE@
    region: us-east-1
    access_key_id: AKIDEXAMPLE
    secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
models:
  - name: gpt-4o-mini
    targets: [ { provider: main, model: gpt-4o-mini-2024-07-18 } ]
  - name: claude-haiku
    targets: [ { provider: claude, model: claude-3-5-haiku-latest } ]
  - name: resilient
    strategy: fallback
    targets:
      - { provider: main, model: primary-model }
      - { provider: claude, model: claude-3-5-haiku-latest }
  - name: embed
    targets: [ { provider: main, model: text-embedding-3-small } ]
  - name: budgeted
    targets: [ { provider: main, model: priced-model, price: { input: 1, output: 1 } } ]
  - name: gemini-flash
    targets: [ { provider: google, model: gemini-2.5-flash } ]
  - name: gemini-embed
    targets: [ { provider: google, model: text-embedding-004 } ]
  - name: cohere-embed
    targets: [ { provider: aws, model: "cohere.embed-english-v3" } ]
keys:
  - name: demo
    key: sk-gw-demo
  - name: budgeted
    key: sk-gw-budgeted
    budget: { usd: 0.005, period: day }
"""


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def brief(request):
    return {"method": request.get("method"), "path": request.get("path"), "json": request.get("json")}


def serve_commands(provider):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            if "script" in cmd:
                provider.script(**cmd["script"])
                reply({"ok": True})
            elif cmd.get("clear"):
                provider.clear()
                reply({"ok": True})
            elif cmd.get("last"):
                last = provider.last()
                reply({"ok": True, "last": None if last is None else brief(last)})
            elif cmd.get("requests"):
                reply({"ok": True, "requests": [brief(r) for r in provider.requests]})
            else:
                reply({"error": "unknown command"})
        except Exception as exc:  # one bad command must not take the stack down
            reply({"error": "%s: %s" % (type(exc).__name__, exc)})


def main():
    # SIGTERM (the test runner giving up) unwinds the with-blocks like stdin closing does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with FakeProvider(name="fake") as provider:
        gateway = Gateway(render(CONFIG, port=free_port(), fake=provider.address),
                          start_timeout=10.0)
        with gateway:
            try:
                reply({"gateway": gateway.port, "provider": provider.port})
                serve_commands(provider)
            finally:
                if os.environ.get("GANGLION_E2E_LOG"):
                    sys.stderr.write(gateway.log_text())


if __name__ == "__main__":
    main()
