"""LLM gateway: the OpenAI-compatible API in front of a fake provider (real binary, loopback).

Covers gateway keys, model lookup, chat completions (whole and streamed, usage hidden or
shown), embeddings, model listing, OpenAI-style errors naming the field, provider errors kept
with their status, failover across a model's targets, and the answer headers.
"""

import json
import socket
import subprocess
import threading
import time
import unittest

from harness import BIN, Gateway, first_status, free_port, raw_exchange, render, wait_until
from fake_provider import FakeProvider

CONFIG = """
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
providers:
  - name: main
    kind: openai
    base_url: http://@MAIN@/v1
    api_key: sk-provider-main
  - name: backup
    kind: openai
    base_url: http://@BACKUP@/v1
    api_key: sk-provider-backup
  - name: claude
    kind: anthropic
    base_url: http://@MAIN@
    api_key: sk-ant-provider
  - name: google
    kind: gemini
    base_url: http://@MAIN@
    api_key: gm-provider-key
  - name: aws
    kind: bedrock
    base_url: http://@MAIN@
    region: us-east-1
    access_key_id: AKIDEXAMPLE
    secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
models:
  - name: bedrock-haiku
    targets: [ { provider: aws, model: "anthropic.claude-3-haiku-20240307-v1:0" } ]
  - name: titan-embed
    targets: [ { provider: aws, model: "amazon.titan-embed-text-v2:0" } ]
  - name: cohere-embed
    targets: [ { provider: aws, model: "cohere.embed-english-v3" } ]
  - name: gemini-flash
    targets: [ { provider: google, model: gemini-2.0-flash } ]
  - name: gemini-embed
    targets: [ { provider: google, model: text-embedding-004 } ]
  - name: claude-haiku
    targets: [ { provider: claude, model: claude-3-5-haiku-latest } ]
  - name: gpt-then-claude
    strategy: fallback
    targets:
      - { provider: main, model: primary-model }
      - { provider: claude, model: claude-3-5-haiku-latest }
  - name: gpt-4o-mini
    targets: [ { provider: main, model: gpt-4o-mini-2024-07-18 } ]
  - name: resilient
    strategy: fallback
    circuit_breaker: { failures: 0 }
    targets:
      - { provider: main, model: primary-model }
      - { provider: backup, model: backup-model }
  - name: guarded
    strategy: fallback
    circuit_breaker: { failures: 2, cooldown: 30s }
    targets:
      - { provider: main, model: guarded-primary }
      - { provider: backup, model: guarded-backup }
  - name: patient
    retries: 2
    retry_max_wait: 2s
    targets: [ { provider: main, model: patient-model } ]
  - name: quick-first-token
    strategy: fallback
    first_token_timeout: 300ms
    targets:
      - { provider: main, model: slow-model }
      - { provider: backup, model: fast-model }
  - name: my-deployment
    targets: [ { provider: main, model: prod-chat, tokenizer: o200k_base } ]
  - name: borrowed-name
    targets: [ { provider: main, model: gpt-4o, tokenizer: none } ]
  - name: small-window
    strategy: fallback
    targets:
      - { provider: main, model: tiny-model, context_window: 10 }
      - { provider: backup, model: big-model, context_window: 100000 }
  - name: by-cost
    strategy: cost
    targets:
      - { provider: main, model: dear-model, price: { input: 10, output: 30 } }
      - { provider: backup, model: cheap-model, price: { input: 0.1, output: 0.3 } }
  - name: by-latency
    strategy: latency
    targets:
      - { provider: main, model: slow-latency }
      - { provider: backup, model: fast-latency }
  - name: embed
    targets: [ { provider: main, model: text-embedding-3-small } ]
keys:
  - name: demo
    key: sk-gw-demo
  - name: cached
    key: sk-gw-cached
    cache: true
"""

AUTH = {"Authorization": "Bearer sk-gw-demo", "Content-Type": "application/json"}


def chat(model="gpt-4o-mini", text="echo: hello there", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return json.dumps(body)


def sse_events(body):
    """The data payloads of an SSE body, in order."""
    events = []
    for block in body.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                events.append(line[6:])
    return events


def named_events(body):
    """The (event type, JSON data) pairs of an SSE body whose events carry an `event:` line."""
    events = []
    for block in body.decode().split("\n\n"):
        lines = dict(l.split(": ", 1) for l in block.splitlines() if ": " in l)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


class LlmGatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.main = FakeProvider(name="main").__enter__()
        cls.backup = FakeProvider(name="backup").__enter__()
        cls.gw = Gateway(render(CONFIG, port=free_port(), main=cls.main.address,
                                backup=cls.backup.address)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.backup.__exit__(None, None, None)
        cls.main.__exit__(None, None, None)

    def setUp(self):
        self.main.clear()
        self.backup.clear()

    def post(self, path, body, headers=AUTH):
        return self.gw.request("POST", path, body=body, headers=headers)

    def assertOpenAIError(self, resp, status, code=None, param=None):
        self.assertEqual(resp.status, status, resp.body)
        err = resp.json()["error"]
        self.assertTrue(err["message"])
        self.assertIn("type", err)
        if code is not None:
            self.assertEqual(err["code"], code)
        if param is not None:
            self.assertEqual(err["param"], param)
        return err

    # --- keys -----------------------------------------------------------------
    def test_missing_key_is_401(self):
        resp = self.post("/v1/chat/completions", chat(), headers={"Content-Type": "application/json"})
        self.assertOpenAIError(resp, 401, code="missing_api_key")
        self.assertEqual(self.main.requests, [])

    def test_wrong_key_is_401_and_masked(self):
        resp = self.post("/v1/chat/completions", chat(), headers={"Authorization": "Bearer sk-wrong-secret-key"})
        err = self.assertOpenAIError(resp, 401, code="invalid_api_key")
        self.assertNotIn("sk-wrong-secret-key", err["message"])

    def test_x_api_key_header_works(self):
        resp = self.post("/v1/chat/completions", chat(), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 200, resp.body)

    def test_provider_key_replaces_client_key(self):
        resp = self.post("/v1/chat/completions", chat())
        self.assertEqual(resp.status, 200, resp.body)
        sent = self.main.last()
        self.assertEqual(sent["headers"]["authorization"], "Bearer sk-provider-main")
        self.assertNotIn("sk-gw-demo", json.dumps(sent["headers"]))

    # --- chat -----------------------------------------------------------------
    def test_chat_completion(self):
        resp = self.post("/v1/chat/completions", chat(text="echo: the quick fox"))
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(body["choices"][0]["message"]["content"], "the quick fox")
        self.assertEqual(body["usage"]["completion_tokens"], 3)
        self.assertEqual(resp.headers["x-ganglion-provider"], "main")
        self.assertEqual(resp.headers["x-ganglion-model"], "gpt-4o-mini-2024-07-18")
        self.assertEqual(resp.headers["x-ganglion-attempts"], "1")
        self.assertTrue(resp.headers["x-request-id"])
        sent = self.main.last()
        self.assertEqual(sent["path"], "/v1/chat/completions")
        self.assertEqual(sent["json"]["model"], "gpt-4o-mini-2024-07-18")

    def test_unknown_fields_reach_openai_providers(self):
        resp = self.post("/v1/chat/completions", chat(seed=7, logit_bias={"50256": -100}, store=False,
                                                      metadata={"team": "a"}))
        self.assertEqual(resp.status, 200, resp.body)
        sent = self.main.last()["json"]
        self.assertEqual(sent["seed"], 7)
        self.assertEqual(sent["metadata"], {"team": "a"})
        self.assertIs(sent["store"], False)

    def test_client_request_id_is_kept(self):
        headers = dict(AUTH, **{"x-request-id": "trace-123"})
        resp = self.post("/v1/chat/completions", chat(), headers=headers)
        self.assertEqual(resp.headers["x-request-id"], "trace-123")

    def test_stream_hides_usage_the_client_did_not_ask_for(self):
        resp = self.post("/v1/chat/completions", chat(text="echo: one two three", stream=True))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertIn("text/event-stream", resp.headers["content-type"])
        events = sse_events(resp.body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertTrue(all("usage" not in c for c in chunks), chunks)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, "one two three")
        # ... but the gateway asked the provider for it, to account the call.
        self.assertEqual(self.main.last()["json"]["stream_options"], {"include_usage": True})

    def test_stream_with_usage(self):
        resp = self.post("/v1/chat/completions",
                         chat(text="echo: one two", stream=True, stream_options={"include_usage": True}))
        chunks = [json.loads(e) for e in sse_events(resp.body)[:-1]]
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 2)

    def test_stream_split_events_are_reassembled(self):
        self.main.script(split_events=True)
        resp = self.post("/v1/chat/completions", chat(text="echo: a b c d", stream=True))
        chunks = [json.loads(e) for e in sse_events(resp.body)[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, "a b c d")

    def test_stream_cut_midway_ends_with_an_error_event(self):
        self.main.script(cut_after=2)
        resp = self.post("/v1/chat/completions", chat(text="echo: a b c d e f", stream=True))
        self.assertEqual(resp.status, 200, resp.body)
        events = sse_events(resp.body)
        self.assertIn("error", json.loads(events[-2]))
        self.assertEqual(events[-1], "[DONE]")

    def test_tool_calls_stream_intact(self):
        tools = [{"type": "function", "function": {"name": "get_weather",
                                                   "parameters": {"type": "object"}}}]
        resp = self.post("/v1/chat/completions", chat(text="weather in two cities", tools=tools, stream=True))
        calls = {}
        for e in sse_events(resp.body)[:-1]:
            for choice in json.loads(e)["choices"]:
                for tc in choice["delta"].get("tool_calls") or []:
                    slot = calls.setdefault(tc["index"], {"name": "", "args": ""})
                    slot["name"] += tc.get("function", {}).get("name") or ""
                    slot["args"] += tc.get("function", {}).get("arguments") or ""
        self.assertEqual(len(calls), 2)
        self.assertEqual(json.loads(calls[0]["args"]), {"city": "Paris"})
        self.assertEqual(json.loads(calls[1]["args"]), {"city": "Tokyo"})
        self.assertEqual(calls[0]["name"], "get_weather")

    # --- bad input -------------------------------------------------------------
    def test_malformed_json_is_400(self):
        resp = self.post("/v1/chat/completions", '{"model": "gpt-4o-mini", "messages": [')
        self.assertOpenAIError(resp, 400, code="invalid_json")

    def test_schema_errors_name_the_field(self):
        cases = [
            ('{"messages": []}', "model", "missing_required_parameter"),
            ('{"model": "gpt-4o-mini"}', "messages", "missing_required_parameter"),
            ('{"model": "gpt-4o-mini", "messages": []}', "messages", "empty_array"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role",
             "invalid_value"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}', "messages[0].content",
             "invalid_type"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
             "temperature", "decimal_above_max_value"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "f"}]}',
             "tools[0].type", "invalid_value"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}',
             "messages[0].tool_call_id", "missing_required_parameter"),
            ('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}',
             "stream_options", "invalid_value"),
        ]
        for body, param, code in cases:
            with self.subTest(param=param):
                self.assertOpenAIError(self.post("/v1/chat/completions", body), 400, code=code, param=param)
        self.assertEqual(self.main.requests, [])

    def test_unknown_model_is_404(self):
        resp = self.post("/v1/chat/completions", chat(model="no-such-model"))
        self.assertOpenAIError(resp, 404, code="model_not_found", param="model")

    def test_unknown_endpoint_and_method(self):
        self.assertOpenAIError(self.post("/v1/nothing", "{}"), 404, code="unknown_url")
        resp = self.gw.request("GET", "/v1/chat/completions", headers=AUTH)
        self.assertOpenAIError(resp, 405)

    def test_body_limit(self):
        head = ("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-gw-demo\r\n"
                "Content-Length: %d\r\n\r\n" % (33 << 20)).encode()
        data, _ = raw_exchange(self.gw.port, head + b'{"model":', read_timeout=2.0, expect=1)
        self.assertEqual(first_status(data), 413)
        self.assertIn(b"request_too_large", data)

    # --- provider errors and failover -------------------------------------------
    def test_provider_error_keeps_status_and_message(self):
        self.main.script(status=400, body={"error": {"message": "context too long", "type": "invalid_request_error",
                                                     "param": "messages", "code": "context_length_exceeded"}})
        resp = self.post("/v1/chat/completions", chat())
        err = self.assertOpenAIError(resp, 400, code="context_length_exceeded")
        self.assertEqual(err["message"], "context too long")

    def test_provider_429_without_fallback_is_429(self):
        self.main.script(status=429)
        resp = self.post("/v1/chat/completions", chat())
        self.assertOpenAIError(resp, 429)

    def test_fallback_on_429_and_5xx(self):
        for status in (429, 500, 503):
            with self.subTest(status=status):
                self.main.script(status=status)
                resp = self.post("/v1/chat/completions", chat(model="resilient"))
                self.assertEqual(resp.status, 200, resp.body)
                self.assertEqual(resp.headers["x-ganglion-provider"], "backup")
                self.assertEqual(resp.headers["x-ganglion-model"], "backup-model")
                self.assertEqual(resp.headers["x-ganglion-attempts"], "2")
                self.assertEqual(self.backup.last()["headers"]["authorization"], "Bearer sk-provider-backup")

    def test_no_fallback_on_client_errors(self):
        self.main.script(status=400)
        resp = self.post("/v1/chat/completions", chat(model="resilient"))
        self.assertEqual(resp.status, 400)
        self.assertEqual(self.backup.requests, [])

    def test_every_target_failing_is_never_200(self):
        self.main.script(status=503)
        self.backup.script(status=502)
        resp = self.post("/v1/chat/completions", chat(model="resilient"))
        self.assertOpenAIError(resp, 502)
        self.assertEqual(resp.headers["x-ganglion-attempts"], "2")

    def test_fallback_when_provider_drops_the_connection(self):
        # Enough drops that the gateway's retries of pooled (possibly stale) connections run out.
        self.main.script(close=True, times=5)
        resp = self.post("/v1/chat/completions", chat(model="resilient"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.headers["x-ganglion-provider"], "backup")

    # --- resilience and strategies --------------------------------------------------
    def test_circuit_breaker_opens_after_consecutive_failures(self):
        self.main.script(status=503, times=2)
        for _ in range(2):
            self.assertEqual(self.post("/v1/chat/completions", chat(model="guarded")).headers["x-ganglion-attempts"], "2")
        # The circuit is open now: the backup is asked first, the primary not at all.
        before = len(self.main.requests)
        resp = self.post("/v1/chat/completions", chat(model="guarded"))
        self.assertEqual(resp.headers["x-ganglion-provider"], "backup")
        self.assertEqual(resp.headers["x-ganglion-attempts"], "1")
        self.assertEqual(len(self.main.requests), before)

    def test_retries_honour_retry_after(self):
        self.main.script(status=429, headers={"Retry-After": "1"})
        started = time.monotonic()
        resp = self.post("/v1/chat/completions", chat(model="patient"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(resp.headers["x-ganglion-attempts"], "2")
        # A Retry-After beyond retry_max_wait is not waited for: the 429 comes back with it.
        self.main.script(status=429, headers={"Retry-After": "60"})
        resp = self.post("/v1/chat/completions", chat(model="patient"))
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.headers["retry-after"], "60")

    def test_first_token_deadline_fails_over(self):
        self.main.script(first_token_delay=2.0)
        started = time.monotonic()
        resp = self.post("/v1/chat/completions", chat(model="quick-first-token", text="echo: fast one", stream=True))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertEqual(resp.headers["x-ganglion-provider"], "backup")
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in sse_events(resp.body)[:-1] if json.loads(e)["choices"])
        self.assertEqual(text, "fast one")

    def test_context_window_skips_small_targets(self):
        resp = self.post("/v1/chat/completions", chat(model="small-window", text="echo: " + "word " * 200))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.headers["x-ganglion-model"], "big-model")
        self.assertEqual(resp.headers["x-ganglion-attempts"], "1")

    def test_cost_strategy_prefers_the_cheaper_target(self):
        resp = self.post("/v1/chat/completions", chat(model="by-cost"))
        self.assertEqual(resp.headers["x-ganglion-model"], "cheap-model")

    def test_latency_strategy_learns_the_faster_target(self):
        self.main.script(delay=0.3, times=50)
        seen = [self.post("/v1/chat/completions", chat(model="by-latency")).headers["x-ganglion-provider"]
                for _ in range(6)]
        # Both get measured once (no sample sorts first), then the fast one keeps winning.
        self.assertEqual(seen[-3:], ["backup"] * 3)

    def test_client_hang_up_cancels_a_whole_answer_call(self):
        self.main.script(delay=3.0)
        body = chat(text="echo: never read").encode()
        sock = socket.create_connection(("127.0.0.1", self.gw.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-gw-demo\r\n"
                     b"Content-Type: application/json\r\nx-request-id: hangup-1\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body)
        self.main.wait_for_requests(1, timeout=5)
        sock.close()

        def logged():
            return self.gw.access_records('"client_closed"', '"gpt-4o-mini-2024-07-18"')
        self.assertTrue(wait_until(logged, timeout=2.5), "the call was not cancelled early")
        rec = logged()[0]
        self.assertLess(rec["duration_us"], 2_500_000)
        self.assertTrue(rec["usage_estimated"])
        # gpt-4o-mini: the prompt counted with o200k_base, as OpenAI would have billed it: 3 per
        # message + "user" + "echo: never read" (4) + 3 priming the reply.
        self.assertEqual(rec["prompt_tokens"], 3 + 1 + 4 + 3)

    # --- response cache ------------------------------------------------------------
    def test_cache_per_key_hits_and_replays_streams(self):
        headers = {"Authorization": "Bearer sk-gw-cached"}
        body = chat(text="echo: cache me please", temperature=0)
        first = self.post("/v1/chat/completions", body, headers=headers)
        self.assertEqual(first.headers["x-ganglion-cache"], "miss")
        # The same request with its fields in another order is the same request.
        reordered = json.dumps(dict(reversed(list(json.loads(body).items()))))
        second = self.post("/v1/chat/completions", reordered, headers=headers)
        self.assertEqual(second.headers["x-ganglion-cache"], "hit")
        self.assertEqual(second.body, first.body)
        self.assertEqual(second.headers["x-ganglion-provider"], "main")
        self.assertEqual(len(self.main.requests), 1)
        streamed = chat(text="echo: stream me", stream=True)
        a = self.post("/v1/chat/completions", streamed, headers=headers)
        b = self.post("/v1/chat/completions", streamed, headers=headers)
        self.assertEqual((a.headers["x-ganglion-cache"], b.headers["x-ganglion-cache"]), ("miss", "hit"))
        self.assertEqual(b.headers["content-type"], "text/event-stream")
        self.assertEqual(sse_events(b.body), sse_events(a.body))
        self.assertEqual(len(self.main.requests), 2)
        # A request may opt out; other keys never see this key's answers.
        off = self.post("/v1/chat/completions", body, headers=dict(headers, **{"x-ganglion-cache": "off"}))
        self.assertNotIn("x-ganglion-cache", off.headers)
        other = self.post("/v1/chat/completions", body, headers=dict(AUTH, **{"x-ganglion-cache": "on"}))
        self.assertEqual(other.headers["x-ganglion-cache"], "miss")
        self.assertEqual(len(self.main.requests), 4)

    def test_failed_answers_are_not_cached(self):
        headers = {"Authorization": "Bearer sk-gw-cached"}
        self.main.script(status=500)
        body = chat(model="gpt-4o-mini", text="echo: fails first")
        self.assertEqual(self.post("/v1/chat/completions", body, headers=headers).status, 500)
        again = self.post("/v1/chat/completions", body, headers=headers)
        self.assertEqual(again.status, 200)
        self.assertEqual(again.headers["x-ganglion-cache"], "miss")

    # --- translated providers -----------------------------------------------------
    def test_anthropic_whole_answer_in_openai_shape(self):
        resp = self.post("/v1/chat/completions", chat(model="claude-haiku", text="echo: bonjour tout le monde"))
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["choices"][0]["message"]["content"], "bonjour tout le monde")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(body["usage"]["completion_tokens"], 4)
        sent = self.main.last()
        self.assertEqual(sent["path"], "/v1/messages")
        self.assertEqual(sent["headers"]["x-api-key"], "sk-ant-provider")
        self.assertIn("anthropic-version", sent["headers"])
        self.assertNotIn("authorization", sent["headers"])
        self.assertEqual(sent["json"]["model"], "claude-3-5-haiku-latest")
        self.assertGreater(sent["json"]["max_tokens"], 0)

    def test_anthropic_stream_with_tools(self):
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        resp = self.post("/v1/chat/completions", chat(model="claude-haiku", text="weather please", tools=tools,
                                                      stream=True, stream_options={"include_usage": True}))
        self.assertEqual(resp.status, 200, resp.body)
        events = sse_events(resp.body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        calls = {}
        finish = None
        for c in chunks:
            for choice in c["choices"]:
                finish = choice.get("finish_reason") or finish
                for tc in choice["delta"].get("tool_calls") or []:
                    slot = calls.setdefault(tc["index"], {"name": "", "args": ""})
                    slot["name"] += tc.get("function", {}).get("name") or ""
                    slot["args"] += tc.get("function", {}).get("arguments") or ""
        self.assertEqual(finish, "tool_calls")
        self.assertEqual(sorted(json.loads(v["args"])["city"] for v in calls.values()), ["Paris", "Tokyo"])
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertGreater(chunks[-1]["usage"]["prompt_tokens"], 0)
        self.assertTrue(self.main.last()["json"]["stream"])

    def test_anthropic_error_keeps_status(self):
        self.main.script(status=529)
        resp = self.post("/v1/chat/completions", chat(model="claude-haiku"))
        err = self.assertOpenAIError(resp, 529)
        self.assertEqual(err["type"], "overloaded_error")

    def test_fallback_across_dialects(self):
        self.main.script(status=503)
        resp = self.post("/v1/chat/completions", chat(model="gpt-then-claude", text="echo: via claude"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.headers["x-ganglion-provider"], "claude")
        self.assertEqual(resp.json()["choices"][0]["message"]["content"], "via claude")

    def test_n_above_one_skips_targets_that_return_one_choice(self):
        # gpt-then-claude: the OpenAI target serves n=2; when it fails, Claude cannot, so the
        # client hears why instead of getting one choice where it asked for two.
        resp = self.post("/v1/chat/completions", chat(model="gpt-then-claude", n=2))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.headers["x-ganglion-provider"], "main")
        self.main.script(status=503)
        resp = self.post("/v1/chat/completions", chat(model="gpt-then-claude", n=2))
        err = self.assertOpenAIError(resp, 400, code="unsupported_value", param="n")
        self.assertIn("Anthropic returns one choice per call", err["message"])
        self.main.clear()
        resp = self.post("/v1/chat/completions", chat(model="claude-haiku", n=3))
        self.assertOpenAIError(resp, 400, code="unsupported_value", param="n")
        self.assertEqual(self.main.requests, [])  # refused before any provider call

    def test_bedrock_whole_answer_signed(self):
        resp = self.post("/v1/chat/completions", chat(model="bedrock-haiku", text="echo: from bedrock"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json()["choices"][0]["message"]["content"], "from bedrock")
        sent = self.main.last()
        self.assertEqual(sent["path"], "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
        self.assertIn("SignedHeaders=content-type;host;x-amz-date", sent["headers"]["authorization"])
        self.assertEqual(sent["json"]["messages"][0]["content"][0]["text"], "echo: from bedrock")

    def test_bedrock_embeddings_titan_and_cohere(self):
        resp = self.post("/v1/embeddings", json.dumps({"model": "titan-embed", "input": "one two three",
                                                       "dimensions": 256}))
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(len(body["data"]), 1)
        self.assertEqual(len(body["data"][0]["embedding"]), 8)
        self.assertEqual(body["usage"]["prompt_tokens"], 3)  # Titan's inputTextTokenCount
        sent = self.main.last()
        self.assertEqual(sent["path"], "/model/amazon.titan-embed-text-v2%3A0/invoke")
        self.assertEqual(sent["json"], {"inputText": "one two three", "dimensions": 256})
        self.assertTrue(sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
        resp = self.post("/v1/embeddings", json.dumps({"model": "cohere-embed", "input": ["a", "b c"]}))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual([d["index"] for d in resp.json()["data"]], [0, 1])
        self.assertEqual(self.main.last()["json"], {"texts": ["a", "b c"], "input_type": "search_document"})
        # Titan takes one text a call: a batch is refused before any provider call.
        self.main.clear()
        resp = self.post("/v1/embeddings", json.dumps({"model": "titan-embed", "input": ["a", "b"]}))
        self.assertOpenAIError(resp, 400, code="invalid_value", param="input")
        self.assertEqual(self.main.requests, [])
        resp = self.post("/v1/embeddings", json.dumps({"model": "bedrock-haiku", "input": "x"}))
        self.assertOpenAIError(resp, 400, code="embeddings_unsupported", param="model")

    def test_bedrock_event_stream(self):
        self.main.script(split_events=True)
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        resp = self.post("/v1/chat/completions", chat(model="bedrock-haiku", text="weather?", tools=tools,
                                                      stream=True, stream_options={"include_usage": True}))
        self.assertEqual(resp.status, 200, resp.body)
        chunks = [json.loads(e) for e in sse_events(resp.body)[:-1]]
        args = {}
        for c in chunks:
            for choice in c["choices"]:
                for tc in choice["delta"].get("tool_calls") or []:
                    args[tc["index"]] = args.get(tc["index"], "") + (tc["function"].get("arguments") or "")
        self.assertEqual(sorted(json.loads(a)["city"] for a in args.values()), ["Paris", "Tokyo"])
        self.assertGreater(chunks[-1]["usage"]["completion_tokens"], 0)
        self.assertTrue(self.main.last()["path"].endswith("/converse-stream"))

    def test_gemini_whole_answer(self):
        resp = self.post("/v1/chat/completions", chat(model="gemini-flash", text="echo: hola amigos"))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json()["choices"][0]["message"]["content"], "hola amigos")
        sent = self.main.last()
        self.assertEqual(sent["path"], "/v1beta/models/gemini-2.0-flash:generateContent")
        self.assertEqual(sent["headers"]["x-goog-api-key"], "gm-provider-key")
        self.assertEqual(sent["json"]["contents"][0]["role"], "user")

    def test_gemini_stream_split_crlf_events(self):
        self.main.script(split_events=-1)  # cut between the \r and \n of the CRLF pair
        resp = self.post("/v1/chat/completions", chat(model="gemini-flash", text="echo: one two three four",
                                                      stream=True, stream_options={"include_usage": True}))
        self.assertEqual(resp.status, 200, resp.body)
        events = sse_events(resp.body)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text.split(), ["one", "two", "three", "four"])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 4)
        self.assertTrue(self.main.last()["path"].endswith(":streamGenerateContent?alt=sse"))

    def test_gemini_tool_calls(self):
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        resp = self.post("/v1/chat/completions", chat(model="gemini-flash", text="weather?", tools=tools))
        self.assertEqual(resp.status, 200, resp.body)
        choice = resp.json()["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        cities = sorted(json.loads(c["function"]["arguments"])["city"] for c in choice["message"]["tool_calls"])
        self.assertEqual(cities, ["Paris", "Tokyo"])

    def test_gemini_embeddings(self):
        resp = self.post("/v1/embeddings", json.dumps({"model": "gemini-embed", "input": ["x", "y", "z"]}))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual([d["index"] for d in resp.json()["data"]], [0, 1, 2])

    def test_embeddings_honour_base64_for_every_provider_kind(self):
        # The openai client asks for base64 by default and decodes it as float32: a float array
        # from a Gemini or Bedrock target would be read as garbage.
        import base64
        import struct
        for model, text in (("gemini-embed", "x"), ("titan-embed", "one two"), ("cohere-embed", "a b")):
            floats = self.post("/v1/embeddings", json.dumps({"model": model, "input": [text] if model != "titan-embed"
                                                             else text})).json()["data"][0]["embedding"]
            resp = self.post("/v1/embeddings", json.dumps({"model": model, "input": [text] if model != "titan-embed"
                                                           else text, "encoding_format": "base64"}))
            self.assertEqual(resp.status, 200, resp.body)
            encoded = resp.json()["data"][0]["embedding"]
            self.assertIsInstance(encoded, str, model)
            raw = base64.b64decode(encoded)
            decoded = struct.unpack("<%df" % (len(raw) // 4), raw)
            self.assertEqual(len(decoded), len(floats), model)
            for got, want in zip(decoded, floats):
                self.assertAlmostEqual(got, want, places=5)

    def test_gemini_error_keeps_status(self):
        self.main.script(status=429)
        err = self.assertOpenAIError(self.post("/v1/chat/completions", chat(model="gemini-flash")), 429)
        self.assertEqual(err["code"], "RESOURCE_EXHAUSTED")

    # --- Anthropic-compatible ingress (/v1/messages) ---------------------------------
    def messages(self, model, text="echo: hello claude", headers=None, **extra):
        body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
        body.update(extra)
        h = {"x-api-key": "sk-gw-demo", "anthropic-version": "2023-06-01", "content-type": "application/json"}
        h.update(headers or {})
        return self.post("/v1/messages", json.dumps(body), headers=h)

    def test_messages_to_anthropic_pass_through(self):
        resp = self.messages("claude-haiku", headers={"anthropic-beta": "tools-2024-05-16"})
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(body["type"], "message")
        self.assertEqual(body["content"][0]["text"], "hello claude")
        sent = self.main.last()
        self.assertEqual(sent["path"], "/v1/messages")
        self.assertEqual(sent["headers"]["x-api-key"], "sk-ant-provider")
        self.assertEqual(sent["headers"]["anthropic-beta"], "tools-2024-05-16")
        self.assertEqual(sent["json"]["model"], "claude-3-5-haiku-latest")
        self.assertEqual(sent["json"]["max_tokens"], 100)

    def test_messages_stream_to_anthropic_relayed(self):
        resp = self.messages("claude-haiku", stream=True)
        self.assertEqual(resp.status, 200, resp.body)
        text = resp.body.decode()
        kinds = [l[7:] for l in text.splitlines() if l.startswith("event: ")]
        self.assertEqual(kinds[0], "message_start")
        self.assertEqual(kinds[-1], "message_stop")

    def test_messages_to_openai_translated(self):
        resp = self.messages("gpt-4o-mini", text="echo: from openai", system="be brief")
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(body["type"], "message")
        self.assertEqual(body["content"], [{"type": "text", "text": "from openai"}])
        self.assertEqual(body["stop_reason"], "end_turn")
        self.assertEqual(body["usage"]["output_tokens"], 2)
        sent = self.main.last()["json"]
        self.assertEqual(sent["messages"][0], {"role": "system", "content": "be brief"})
        self.assertEqual(sent["max_tokens"], 100)

    def test_messages_stream_translated_with_tools(self):
        tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
        resp = self.messages("gpt-4o-mini", text="weather?", tools=tools, stream=True)
        self.assertEqual(resp.status, 200, resp.body)
        events = named_events(resp.body)
        kinds = [k for k, _ in events]
        self.assertEqual(kinds[0], "message_start")
        self.assertEqual(kinds[-2:], ["message_delta", "message_stop"])
        args = {}
        for kind, data in events:
            if kind == "content_block_start" and data["content_block"]["type"] == "tool_use":
                args[data["index"]] = ""
            if kind == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
                args[data["index"]] += data["delta"]["partial_json"]
        self.assertEqual(sorted(json.loads(a)["city"] for a in args.values()), ["Paris", "Tokyo"])
        self.assertEqual(events[-2][1]["delta"]["stop_reason"], "tool_use")
        self.assertGreater(events[-2][1]["usage"]["output_tokens"], 0)
        # Clients read the prompt count in message_start, as Anthropic sends it there (it was 0).
        self.assertGreater(events[0][1]["message"]["usage"]["input_tokens"], 0)
        self.assertGreater(events[-2][1]["usage"]["input_tokens"], 0)  # the provider's own, at the end

    def test_messages_count_tokens(self):
        body = {"model": "claude-haiku", "messages": [{"role": "user", "content": "one two three"}]}
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json(), {"input_tokens": 6})  # counted by the (fake) provider
        self.assertEqual(self.main.last()["path"], "/v1/messages/count_tokens")
        self.assertNotIn("max_tokens", self.main.last()["json"])
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "exact")
        # An OpenAI-family model: counted by the gateway with o200k_base, as OpenAI bills the chat
        # form: 3 per message + "user" (1) + "one two three" (3) + 3 priming the reply.
        body["model"] = "gpt-4o-mini"
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(resp.json(), {"input_tokens": 10})
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "exact")
        body["system"] = "Be brief."  # a system message: 3 + "system" (1) + "Be brief." (3)
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.json(), {"input_tokens": 17})
        # Dense text (1,200 bytes, which bytes/4 estimated at 300): "é", 399 " é" and a last " ",
        # as tiktoken splits it.
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\u00e9 " * 400}]}
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.json(), {"input_tokens": 3 + 1 + 401 + 3})
        # A deployment named otherwise, with `tokenizer:` set: counted; `none`: estimated.
        body["model"] = "my-deployment"
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual((resp.json(), resp.headers.get("x-ganglion-token-count")), ({"input_tokens": 408}, "exact"))
        body["model"] = "borrowed-name"
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "estimate")
        # Neither Anthropic nor OpenAI-family: the estimate, marked as such.
        body["model"] = "gemini-flash"
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 200, resp.body)
        self.assertGreater(resp.json()["input_tokens"], 0)
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "estimate")

    def test_whole_answer_without_usage_is_estimated(self):
        # A provider that reports no usage on a whole answer: the call is charged the prompt as
        # counted (o200k: 3 + "user" + "echo: never read" (4) + 3) and a token per 4 bytes of the
        # answer's text, marked estimated (it used to cost nothing).
        answer = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 40},
                               "finish_reason": "stop"}]}
        for path, body in (("/v1/chat/completions", chat(text="echo: never read")),
                           ("/v1/responses", json.dumps({"model": "gpt-4o-mini", "input": "echo: never read"}))):
            if path == "/v1/responses":
                answer = {"id": "resp_x", "object": "response", "model": "gpt-4o-mini", "status": "completed",
                          "output": [{"type": "message", "role": "assistant",
                                      "content": [{"type": "output_text", "text": "x" * 40}]}]}
            self.main.script(status=200, body=answer)
            host = "no-usage-%s.test" % path.rsplit("/", 1)[1]  # tells its access record apart
            resp = self.post(path, body, headers=dict(AUTH, Host=host))
            self.assertEqual(resp.status, 200, resp.body)
            self.assertTrue(wait_until(lambda: self.gw.access_records('"host":"%s"' % host), timeout=3))
            recs = self.gw.access_records('"host":"%s"' % host)
            self.assertTrue(recs[0].get("usage_estimated"), recs[0])
            self.assertEqual(recs[0]["prompt_tokens"], 3 + 1 + 4 + 3, recs[0])
            self.assertEqual(recs[0]["completion_tokens"], 10, recs[0])

    def test_count_tokens_of_large_prompts(self):
        # Over 64 KiB the count runs on the blocking pool: still exact (checked against the CLI,
        # which tiktoken's own test holds equal to OpenAI's tokenizer).
        text = "".join("word%d, " % i for i in range(20000))  # ~200 kB, many pieces
        counted = subprocess.run([BIN, "tokens", "--model", "gpt-4o-mini"], input=text.encode(),
                                 capture_output=True, check=True)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.json(), {"input_tokens": 3 + 1 + int(counted.stdout) + 3})
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "exact")
        # One long word: too long a piece for the worker, counted on the pool, still exact.
        word = "ab" * 30000
        counted = subprocess.run([BIN, "tokens", "--model", "gpt-4o-mini"], input=word.encode(),
                                 capture_output=True, check=True)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": word}]}
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.json(), {"input_tokens": 3 + 1 + int(counted.stdout) + 3})
        # Past 4 MiB nothing is counted (a bound on the work one call may ask for): the estimate.
        body["messages"][0]["content"] = "a" * (5 << 20)
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 200, resp.body[:200])
        self.assertEqual(resp.headers.get("x-ganglion-token-count"), "estimate")
        self.assertGreater(resp.json()["input_tokens"], (5 << 20) // 4)

    def test_messages_text_blocks_need_their_text(self):
        for block, message in (({"type": "text"}, "messages.0.content.0.text: Field required"),
                               ({"type": "text", "text": None}, "messages.0.content.0.text: Input should be a valid string")):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [block]}]}
            resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
            self.assertEqual(resp.status, 400, resp.body)
            self.assertEqual(resp.json()["error"]["message"], message)
        # A plain-text document reaches non-Anthropic models as text.
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "one two three"}}]}]}
        resp = self.post("/v1/messages/count_tokens", json.dumps(body), headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.json(), {"input_tokens": 10})

    def test_messages_errors_in_anthropic_shape(self):
        resp = self.post("/v1/messages", json.dumps({"model": "claude-haiku", "messages": []}),
                         headers={"x-api-key": "sk-gw-demo"})
        self.assertEqual(resp.status, 400)
        body = resp.json()
        self.assertEqual(body["type"], "error")
        self.assertEqual(body["error"]["type"], "invalid_request_error")
        self.assertIn("max_tokens", body["error"]["message"])
        missing = self.messages("no-such-model")
        self.assertEqual(missing.status, 404)
        self.assertEqual(missing.json()["error"]["type"], "not_found_error")
        unauth = self.post("/v1/messages", "{}", headers={"x-api-key": "wrong-key-123"})
        self.assertEqual(unauth.status, 401)
        self.assertEqual(unauth.json()["error"]["type"], "authentication_error")

    # --- Responses API pass-through -------------------------------------------------
    def test_responses_pass_through(self):
        resp = self.post("/v1/responses", json.dumps({"model": "gpt-4o-mini", "input": "echo: via responses"}))
        self.assertEqual(resp.status, 200, resp.body)
        body = resp.json()
        self.assertEqual(body["object"], "response")
        self.assertGreater(body["usage"]["output_tokens"], 0)
        sent = self.main.last()
        self.assertEqual(sent["path"], "/v1/responses")
        self.assertEqual(sent["json"]["model"], "gpt-4o-mini-2024-07-18")
        self.assertEqual(sent["headers"]["authorization"], "Bearer sk-provider-main")

    def test_responses_stream_relayed(self):
        resp = self.post("/v1/responses", json.dumps({"model": "gpt-4o-mini", "input": "echo: a b c", "stream": True}))
        self.assertEqual(resp.status, 200, resp.body)
        kinds = [l[7:] for l in resp.body.decode().splitlines() if l.startswith("event: ")]
        self.assertEqual(kinds[0], "response.created")
        self.assertEqual(kinds[-1], "response.completed")
        self.assertIn("response.output_text.delta", kinds)

    def test_responses_translated_for_other_providers(self):
        # Whole answer from Anthropic and Gemini targets, in the Responses shape.
        for model in ("claude-haiku", "gemini-flash"):
            resp = self.post("/v1/responses", json.dumps({"model": model, "instructions": "be brief",
                                                          "input": "echo: translated", "max_output_tokens": 50}))
            self.assertEqual(resp.status, 200, resp.body)
            r = resp.json()
            self.assertEqual(r["object"], "response")
            self.assertTrue(r["id"].startswith("resp_"))
            self.assertEqual(r["status"], "completed")
            self.assertEqual(r["output"][0]["type"], "message")
            self.assertEqual(r["output"][0]["content"][0], {"type": "output_text", "text": "translated", "annotations": []})
            self.assertGreater(r["usage"]["input_tokens"], 0)
            self.assertEqual(r["usage"]["output_tokens"], 1)
            self.assertEqual(r["instructions"], "be brief")
        sent = self.main.last()["json"]  # Gemini's request: instructions as the system instruction
        self.assertEqual(sent["systemInstruction"]["parts"][0]["text"], "be brief")
        # A tool loop: function calls out, function_call_output items back in.
        tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
        resp = self.post("/v1/responses", json.dumps({"model": "claude-haiku", "input": "weather?", "tools": tools}))
        calls = [o for o in resp.json()["output"] if o["type"] == "function_call"]
        self.assertEqual(sorted(json.loads(c["arguments"])["city"] for c in calls), ["Paris", "Tokyo"])
        follow = [{"role": "user", "content": "weather?"}] + calls + [
            {"type": "function_call_output", "call_id": c["call_id"], "output": "sunny"} for c in calls]
        resp = self.post("/v1/responses", json.dumps({"model": "claude-haiku", "input": follow, "tools": tools}))
        self.assertEqual(resp.status, 200, resp.body)
        sent = self.main.last()["json"]["messages"]
        self.assertEqual([b["type"] for b in sent[-1]["content"]], ["tool_result", "tool_result"])
        self.assertEqual([b["tool_use_id"] for b in sent[-1]["content"]], [c["call_id"] for c in calls])
        # What only OpenAI keeps cannot be translated: a 400 naming the field.
        resp = self.post("/v1/responses", json.dumps({"model": "claude-haiku", "input": "hi",
                                                      "previous_response_id": "resp_1"}))
        self.assertOpenAIError(resp, 400, code="unsupported_parameter", param="previous_response_id")
        self.assertOpenAIError(self.post("/v1/responses", json.dumps({"input": "hi"})), 400, param="model")

    def test_responses_stream_translated_for_other_providers(self):
        resp = self.post("/v1/responses", json.dumps({"model": "gemini-flash", "input": "echo: one two", "stream": True}))
        self.assertEqual(resp.status, 200, resp.body)
        events = named_events(resp.body)
        kinds = [k for k, _ in events]
        self.assertEqual(kinds[:2], ["response.created", "response.in_progress"])
        self.assertEqual(kinds[-1], "response.completed")
        self.assertIn("response.output_item.added", kinds)
        self.assertIn("response.output_item.done", kinds)
        text = "".join(d["delta"] for k, d in events if k == "response.output_text.delta")
        self.assertEqual(text, "one two")
        self.assertEqual([d["sequence_number"] for _, d in events], list(range(len(events))))
        done = events[-1][1]["response"]
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["output"][0]["content"][0]["text"], "one two")
        self.assertGreater(done["usage"]["input_tokens"], 0)

    # --- other endpoints ---------------------------------------------------------
    def test_models_list(self):
        resp = self.gw.request("GET", "/v1/models", headers=AUTH)
        self.assertEqual(resp.status, 200)
        ids = [m["id"] for m in resp.json()["data"]]
        self.assertEqual(ids[:9], ["bedrock-haiku", "titan-embed", "cohere-embed", "gemini-flash", "gemini-embed",
                                   "claude-haiku", "gpt-then-claude", "gpt-4o-mini", "resilient"])
        one = self.gw.request("GET", "/v1/models/resilient", headers=AUTH)
        self.assertEqual(one.json()["id"], "resilient")
        self.assertOpenAIError(self.gw.request("GET", "/v1/models/nope", headers=AUTH), 404, code="model_not_found")

    def test_embeddings(self):
        resp = self.post("/v1/embeddings", json.dumps({"model": "embed", "input": ["a b", "c"]}))
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(len(resp.json()["data"]), 2)
        self.assertEqual(self.main.last()["json"]["model"], "text-embedding-3-small")
        bad = self.post("/v1/embeddings", json.dumps({"model": "embed", "input": 5}))
        self.assertOpenAIError(bad, 400, code="invalid_type", param="input")


LIMITS_CONFIG = """
listeners:
  - name: public
    address: 127.0.0.1:@PORT@
routes:
  - name: filtered-llm
    match: { path_prefix: /filtered/v1/ }
    llm: {}
    filters: [ { key_auth: {} } ]
  - name: llm
    match: { path_prefix: /v1/ }
    llm: {}
providers:
  - name: main
    kind: openai
    base_url: http://@MAIN@/v1
    api_key: sk-provider-main
models:
  - name: priced
    targets: [ { provider: main, model: priced-model, price: { input: 1, output: 1 } } ]
  - name: unpriced
    targets: [ { provider: main, model: my-local-model } ]
  - name: priced-gpt
    targets: [ { provider: main, model: gpt-4o-mini, price: { input: 1, output: 1 } } ]
keys:
  - name: budgeted
    key: sk-gw-budgeted
    budget: { usd: 0.005, period: day }
  - name: slow
    key: sk-gw-slow
    rpm: 2
  - name: filtered
    key: sk-gw-filtered
    rpm: 2
  - name: counter
    key: sk-gw-counter
    rpm: 2
  - name: free
    key: sk-gw-free
admin:
  address: 127.0.0.1:@ADMIN@
  token: admin-token-for-tests
"""


class LlmLimitsTest(unittest.TestCase):
    """Budgets reserve before the call and settle after; rates refuse with Retry-After."""

    @classmethod
    def setUpClass(cls):
        cls.main = FakeProvider(name="main").__enter__()
        admin = free_port()
        cls.gw = Gateway(render(LIMITS_CONFIG, port=free_port(), main=cls.main.address, admin=admin),
                         admin_port=admin).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        cls.main.__exit__(None, None, None)

    def call(self, key, model="priced", **extra):
        return self.gw.request("POST", "/v1/chat/completions", body=chat(model=model, **extra),
                               headers={"Authorization": "Bearer " + key}, timeout=10)

    def test_concurrent_calls_never_overshoot_the_budget(self):
        # Each call reserves (prompt estimate + 1000 max tokens) x $1/M, about $0.001: a $0.005
        # budget has room for four at a time, however many race for it.
        self.main.script(delay=0.5, times=20)
        results = [None] * 20

        def one(i):
            results[i] = self.call("sk-gw-budgeted", text="echo: hi", max_tokens=1000)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [r for r in results if r.status == 200]
        refused = [r for r in results if r.status == 429]
        self.assertEqual(len(ok) + len(refused), 20, [r.status for r in results])
        self.assertGreaterEqual(len(ok), 1)
        self.assertLessEqual(len(ok), 4)
        err = refused[0].json()["error"]
        self.assertEqual(err["code"], "budget_exceeded")
        self.assertEqual(err["type"], "insufficient_quota")
        self.assertGreater(int(refused[0].headers["retry-after"]), 0)
        self.main.clear()
        # Settled at their real (tiny) cost, the finished calls leave the budget open again.
        self.assertEqual(self.call("sk-gw-budgeted", text="echo: again", max_tokens=1000).status, 200)

    def test_access_log_has_tokens_and_exact_cost(self):
        self.assertEqual(self.call("sk-gw-free", text="echo: one two three").status, 200)
        def logged():
            return self.gw.access_records('"key":"free"')
        self.assertTrue(wait_until(logged, timeout=3))
        rec = logged()[-1]
        self.assertEqual(rec["model"], "priced-model")
        self.assertEqual(rec["completion_tokens"], 3)
        tokens = rec["prompt_tokens"] + rec["completion_tokens"]
        self.assertEqual(rec["cost_usd"], "%d.%06d" % divmod(tokens, 10**6))  # $1 per million, exactly

    def test_metrics_count_tokens_and_cost(self):
        for _ in range(2):
            self.assertEqual(self.call("sk-gw-free", text="echo: four words right here").status, 200)
        text = self.gw.admin("GET", "/metrics", token="admin-token-for-tests").text
        labels = 'model="priced",provider="main",provider_model="priced-model"'
        values = {}
        for line in text.splitlines():
            if line.startswith("ganglion_llm_") and labels in line:
                name, value = line.rsplit(" ", 1)
                values[name] = value
        self.assertGreaterEqual(int(values["ganglion_llm_calls_total{%s,outcome=\"ok\"}" % labels]), 2)
        completion = int(values["ganglion_llm_tokens_total{%s,kind=\"completion\"}" % labels])
        prompt = int(values["ganglion_llm_tokens_total{%s,kind=\"prompt\"}" % labels])
        self.assertGreaterEqual(completion, 8)
        # $1 per million tokens: the exact cost is the token count in millionths of a dollar.
        self.assertEqual(values["ganglion_llm_cost_usd_total{%s}" % labels], "%d.%012d" % divmod((prompt + completion) * 10**6, 10**12))
        for family in ("calls", "tokens", "cost_usd", "usage_estimated", "cache_hits"):
            self.assertIn("# HELP ganglion_llm_%s_total " % family, text)

    def test_metrics_sum_every_workers_calls(self):
        # Each worker counts its own calls; /metrics sums them all (a source that saw only one
        # worker's counters went unnoticed while every test sent its calls one at a time).
        labels = 'model="priced",provider="main",provider_model="priced-model"'
        name = 'ganglion_llm_calls_total{%s,outcome="ok"}' % labels

        def calls_ok():
            text = self.gw.admin("GET", "/metrics", token="admin-token-for-tests").text
            return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + " "))

        before = calls_ok()
        marker = "echo: spread %d" % time.time_ns()
        for _ in range(16):  # fresh connections land on the workers as the kernel spreads them
            self.assertEqual(self.call("sk-gw-free", text=marker).status, 200)
        self.assertTrue(wait_until(lambda: len(self.gw.access_records('"key":"free"')) > 0, timeout=3))
        workers = {r["worker"] for r in self.gw.access_records('"key":"free"')}
        if len(workers) < 2:
            self.skipTest("every call landed on one worker")
        self.assertEqual(calls_ok() - before, 16)

    def test_provider_calls_are_upstream_requests_in_metrics(self):
        def value(text, name):
            return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + " "))
        self.assertEqual(self.call("sk-gw-free", text="echo: count me").status, 200)
        text = self.gw.admin("GET", "/metrics", token="admin-token-for-tests").text
        self.assertGreater(value(text, 'ganglion_upstream_requests_total{upstream="provider:main",code="2xx"}'), 0)
        self.assertGreater(value(text, 'ganglion_upstream_duration_seconds_count{upstream="provider:main"}'), 0)

    def test_admin_shows_key_spend(self):
        self.assertEqual(self.call("sk-gw-budgeted", text="echo: spend a little", max_tokens=10).status, 200)

        def keys():
            body = self.gw.admin("GET", "/llm/keys", token="admin-token-for-tests").json()
            return {k["name"]: k for k in body["keys"]}
        # The call settles just after its last byte is sent: give it a moment.
        self.assertTrue(wait_until(lambda: keys()["budgeted"]["reserved_usd"] == "0.000000", timeout=3), keys())
        keys = keys()
        self.assertEqual(keys["budgeted"]["budget_usd"], "0.005000")
        self.assertEqual(keys["budgeted"]["period"], "day")
        self.assertGreater(float(keys["budgeted"]["spent_usd"]), 0)
        self.assertEqual(keys["budgeted"]["reserved_usd"], "0.000000")
        self.assertEqual(keys["slow"]["rpm"], 2)
        self.assertNotIn("free", keys)  # no limits: not listed

    def test_requests_per_minute(self):
        statuses = [self.call("sk-gw-slow").status for _ in range(3)]
        self.assertEqual(statuses[:2], [200, 200])
        self.assertEqual(statuses[2], 429)
        resp = self.call("sk-gw-slow")
        self.assertEqual(resp.json()["error"]["code"], "rate_limit_exceeded")
        self.assertIn(resp.headers["retry-after"], ("29", "30"))

    def test_key_auth_filter_on_an_llm_route(self):
        # The filter authenticates (and strips the header); the LLM API takes its key, limits included.
        statuses = [self.gw.request("POST", "/filtered/v1/chat/completions", body=chat(model="priced"),
                                    headers={"Authorization": "Bearer sk-gw-filtered"}).status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])
        self.assertEqual(self.gw.request("POST", "/filtered/v1/chat/completions", body=chat(model="priced"),
                                         headers={"Authorization": "Bearer nope-nope-nope"}).status, 401)

    def test_every_field_the_count_reads_is_in_the_bound(self):
        # The prompt count reads a message's name, tool_call_id, refusal and function_call, so
        # the bound the budget reserves must hold them too: 200 kB in `name` is 200,000 tokens at
        # most, $0.20 at $1 per million, past this key's $0.005. (Admitted on a few bytes, such
        # a call used to be charged its counted name afterwards: any number of them at once.)
        for field, value in (("name", "a " * 100000), ("tool_call_id", "b " * 100000),
                             ("refusal", "c " * 100000)):
            message = {"role": "tool" if field == "tool_call_id" else "assistant" if field == "refusal" else "user",
                       "content": "hi", field: value}
            if field == "tool_call_id":
                body = {"model": "priced-gpt", "max_tokens": 5, "messages": [
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    message]}
            else:
                body = {"model": "priced-gpt", "max_tokens": 5, "messages": [message]}
            resp = self.gw.request("POST", "/v1/chat/completions", body=json.dumps(body),
                                   headers={"Authorization": "Bearer sk-gw-budgeted"}, timeout=10)
            self.assertEqual(resp.status, 429, (field, resp.body[:300]))
            self.assertEqual(resp.json()["error"]["code"], "budget_exceeded")

    def test_count_tokens_is_held_to_the_request_rate(self):
        body = json.dumps({"model": "priced", "messages": [{"role": "user", "content": "count me"}]})
        statuses = [self.gw.request("POST", "/v1/messages/count_tokens", body=body,
                                    headers={"Authorization": "Bearer sk-gw-counter"}).status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])

    def test_budget_needs_a_price(self):
        resp = self.call("sk-gw-budgeted", model="unpriced")
        self.assertEqual(resp.status, 400)
        self.assertEqual(resp.json()["error"]["code"], "price_unknown")
        self.assertEqual(self.call("sk-gw-free", model="unpriced").status, 200)  # no budget: fine


if __name__ == "__main__":
    unittest.main()
