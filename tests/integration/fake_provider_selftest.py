"""Self-test of fake_provider.py (no gateway needed): python3 tests/integration/fake_provider_selftest.py

Talks to FakeProvider with http.client and raw sockets and checks each dialect's wire format,
keep-alive, split SSE chunks, scripted errors, delays and mid-stream cuts.
"""

import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import LOCALHOST, raw_exchange  # noqa: E402
from fake_provider import FakeProvider  # noqa: E402

OPENAI_AUTH = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}
ANTHROPIC_AUTH = {"x-api-key": "ak-test", "anthropic-version": "2023-06-01",
                  "Content-Type": "application/json"}
GEMINI_AUTH = {"x-goog-api-key": "gk-test", "Content-Type": "application/json"}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def post(port, path, doc, headers, conn=None):
    """POST JSON; returns (status, lower-case headers, body bytes)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    try:
        conn.request("POST", path, body=json.dumps(doc).encode(), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        if own:
            conn.close()


def raw_post(port, path, doc, headers, read_timeout=3.0):
    """POST over a raw socket; returns (status, headers, chunks, terminated, peer_closed).
    chunks are the chunked-encoding payloads exactly as framed by the server."""
    body = json.dumps(doc).encode()
    head = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (path, LOCALHOST, len(body))
    head += "".join("%s: %s\r\n" % kv for kv in headers.items())
    data, closed = raw_exchange(port, head.encode() + b"\r\n" + body, read_timeout=read_timeout, expect=1)
    head_end = data.index(b"\r\n\r\n")
    lines = data[:head_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    chunks, pos, terminated = [], head_end + 4, False
    while True:
        le = data.find(b"\r\n", pos)
        if le < 0:
            break
        size = int(data[pos:le], 16)
        if size == 0:
            terminated = data[le + 2:le + 4] == b"\r\n"
            break
        if len(data) < le + 2 + size + 2:
            break
        chunks.append(data[le + 2:le + 2 + size])
        pos = le + 2 + size + 2
    return status, hdrs, chunks, terminated, closed


def sse_events(raw, sep=b"\n\n"):
    """Split an SSE byte stream into (event-name or None, data-string) pairs."""
    out = []
    for block in raw.split(sep):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:].decode())
        out.append((name, "\n".join(data)))
    return out


class FakeProviderTest(unittest.TestCase):

    def setUp(self):
        self.p = FakeProvider().__enter__()
        self.port = self.p.port

    def tearDown(self):
        self.p.__exit__(None, None, None)

    # -- OpenAI chat ----------------------------------------------------------------
    def test_openai_non_stream_keepalive_and_recording(self):
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        doc = {"model": "gpt-4o", "messages": [{"role": "system", "content": "be brief"},
                                                {"role": "user", "content": "say hi please"}]}
        status, headers, body = post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH, conn)
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["content-length"]), len(body))
        obj = json.loads(body)
        self.assertTrue(obj["id"].startswith("chatcmpl-fake"))
        self.assertEqual(obj["object"], "chat.completion")
        self.assertEqual(obj["model"], "gpt-4o")
        choice = obj["choices"][0]
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertEqual(choice["message"]["content"], "Hello from fake gpt-4o")
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertEqual(obj["usage"], {"prompt_tokens": 2 + 3 + 3 + 3, "completion_tokens": 4,
                                        "total_tokens": 15,
                                        "prompt_tokens_details": {"cached_tokens": 0},
                                        "completion_tokens_details": {"reasoning_tokens": 0}})
        # second request on the same connection, echo reply
        doc["messages"].append({"role": "user", "content": [{"type": "text", "text": "echo: same socket"}]})
        status, _, body = post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH, conn)
        conn.close()
        self.assertEqual(json.loads(body)["choices"][0]["message"]["content"], "same socket")
        self.assertEqual(self.p.connections, 1)
        reqs = self.p.wait_for_requests(2)
        self.assertEqual(reqs[0]["method"], "POST")
        self.assertEqual(reqs[0]["path"], "/v1/chat/completions")
        self.assertEqual(reqs[0]["headers"]["authorization"], "Bearer sk-test")
        self.assertEqual(reqs[0]["json"]["model"], "gpt-4o")
        self.assertIsInstance(reqs[1]["body"], bytes)

    def test_openai_requires_bearer(self):
        status, _, body = post(self.port, "/v1/chat/completions", {"model": "m", "messages": []},
                               {"Content-Type": "application/json"})
        self.assertEqual(status, 401)
        err = json.loads(body)["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertEqual(err["code"], "invalid_api_key")

    def test_openai_tool_calls_non_stream(self):
        doc = {"model": "gpt-4o", "tools": [WEATHER_TOOL],
               "messages": [{"role": "user", "content": "What is the weather?"}]}
        obj = json.loads(post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH)[2])
        choice = obj["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        self.assertIsNone(choice["message"]["content"])
        calls = choice["message"]["tool_calls"]
        self.assertEqual([c["function"]["name"] for c in calls], ["get_weather"] * 2)
        self.assertEqual([json.loads(c["function"]["arguments"]) for c in calls],
                         [{"city": "Paris"}, {"city": "Tokyo"}])
        doc["tool_choice"] = "none"
        obj = json.loads(post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH)[2])
        self.assertEqual(obj["choices"][0]["finish_reason"], "stop")

    def test_openai_stream_split_events_with_usage(self):
        doc = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
               "messages": [{"role": "user", "content": "echo: one two three"}]}
        self.p.script(split_events=True)
        status, headers, chunks, terminated, _ = raw_post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH)
        self.assertEqual(status, 200)
        self.assertEqual(headers["transfer-encoding"], "chunked")
        self.assertTrue(headers["content-type"].startswith("text/event-stream"))
        self.assertTrue(terminated)
        self.assertEqual(len(chunks) % 2, 0)
        for first in chunks[::2]:                       # no first half is a whole event or line
            self.assertNotIn(b"\n\n", first)
            self.assertFalse(first.endswith(b"\n"))
        events = sse_events(b"".join(chunks))
        self.assertEqual(len(events), len(chunks) // 2)
        self.assertEqual(events[-1][1], "[DONE]")
        objs = [json.loads(d) for _, d in events[:-1]]
        self.assertEqual(objs[0]["choices"][0]["delta"], {"role": "assistant", "content": "", "refusal": None})
        text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs if o["choices"])
        self.assertEqual(text, "one two three")
        self.assertEqual([o["choices"][0]["delta"]["content"] for o in objs[1:4]], ["one", " two", " three"])
        self.assertEqual(objs[-2]["choices"][0], {"index": 0, "delta": {}, "logprobs": None,
                                                   "finish_reason": "stop"})
        self.assertTrue(all("usage" in o and o["usage"] is None for o in objs[:-1]))
        self.assertEqual(objs[-1]["choices"], [])
        self.assertEqual(objs[-1]["usage"]["completion_tokens"], 3)
        self.assertEqual(objs[-1]["usage"]["prompt_tokens"], 4 + 3)

    def test_openai_stream_tool_call_fragments_no_usage(self):
        doc = {"model": "gpt-4o", "stream": True, "tools": [WEATHER_TOOL],
               "messages": [{"role": "user", "content": "weather please"}]}
        status, _, chunks, terminated, _ = raw_post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH)
        self.assertTrue(terminated)
        events = sse_events(b"".join(chunks))
        self.assertEqual(len(chunks), len(events))       # one chunk per event by default
        objs = [json.loads(d) for _, d in events[:-1]]
        self.assertTrue(all("usage" not in o for o in objs))
        args = {}
        for o in objs:
            for tc in o["choices"][0]["delta"].get("tool_calls") or []:
                if "id" in tc:
                    self.assertEqual(tc["type"], "function")
                    self.assertEqual(tc["function"], {"name": "get_weather", "arguments": ""})
                    args[tc["index"]] = ""
                else:
                    self.assertLessEqual(len(tc["function"]["arguments"]), 5)
                    args[tc["index"]] += tc["function"]["arguments"]
        self.assertEqual(args, {0: '{"city":"Paris"}', 1: '{"city":"Tokyo"}'})
        self.assertEqual(objs[-1]["choices"][0]["finish_reason"], "tool_calls")

    def test_azure(self):
        path = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"
        doc = {"messages": [{"role": "user", "content": "hi"}]}
        status, _, body = post(self.port, path, doc, {"api-key": "az", "Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["model"], "my-dep")
        status, _, body = post(self.port, path, doc, {"Content-Type": "application/json"})
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body)["error"]["code"], "401")
        status, _, _ = post(self.port, path.split("?")[0], doc, {"api-key": "az"})
        self.assertEqual(status, 404)

    def test_embeddings_and_models(self):
        doc = {"model": "text-embedding-3-small", "input": ["a b", "c"]}
        obj = json.loads(post(self.port, "/v1/embeddings", doc, OPENAI_AUTH)[2])
        self.assertEqual(obj["object"], "list")
        self.assertEqual([d["index"] for d in obj["data"]], [0, 1])
        self.assertEqual(len(obj["data"][0]["embedding"]), 8)
        self.assertEqual(obj["usage"], {"prompt_tokens": 3, "total_tokens": 3})
        again = json.loads(post(self.port, "/v1/embeddings", {"model": "x", "input": "a b"}, OPENAI_AUTH)[2])
        self.assertEqual(again["data"][0]["embedding"], obj["data"][0]["embedding"])
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        conn.request("GET", "/v1/models", headers=OPENAI_AUTH)
        models = json.loads(conn.getresponse().read())
        conn.close()
        self.assertEqual(models["object"], "list")
        self.assertIn("gpt-4o", [m["id"] for m in models["data"]])

    # -- OpenAI Responses -------------------------------------------------------------
    def test_responses(self):
        doc = {"model": "gpt-4.1", "input": "echo: hi there"}
        obj = json.loads(post(self.port, "/v1/responses", doc, OPENAI_AUTH)[2])
        self.assertEqual(obj["object"], "response")
        self.assertEqual(obj["status"], "completed")
        self.assertEqual(obj["output"][0]["content"][0]["text"], "hi there")
        self.assertEqual(obj["usage"]["input_tokens"], 3 + 3)
        self.assertEqual(obj["usage"]["output_tokens"], 2)
        self.assertEqual(obj["usage"]["total_tokens"], 8)
        doc["stream"] = True
        _, _, chunks, terminated, _ = raw_post(self.port, "/v1/responses", doc, OPENAI_AUTH)
        self.assertTrue(terminated)
        events = sse_events(b"".join(chunks))
        names = [n for n, _ in events]
        self.assertEqual(names[0], "response.created")
        self.assertEqual(names[-1], "response.completed")
        datas = [json.loads(d) for _, d in events]
        self.assertEqual([d["type"] for d in datas], names)
        self.assertEqual([d["sequence_number"] for d in datas], list(range(len(datas))))
        self.assertEqual("".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta"),
                         "hi there")
        self.assertEqual(datas[-1]["response"]["usage"]["output_tokens"], 2)

    # -- Anthropic ----------------------------------------------------------------------
    def test_anthropic_non_stream_and_headers(self):
        doc = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "be nice",
               "messages": [{"role": "user", "content": "hello there"}]}
        status, _, body = post(self.port, "/v1/messages", doc, ANTHROPIC_AUTH)
        self.assertEqual(status, 200)
        obj = json.loads(body)
        self.assertTrue(obj["id"].startswith("msg_"))
        self.assertEqual((obj["type"], obj["role"], obj["stop_reason"], obj["stop_sequence"]),
                         ("message", "assistant", "end_turn", None))
        self.assertEqual(obj["content"], [{"type": "text", "text": "Hello from fake claude-sonnet-4-5"}])
        self.assertEqual(obj["usage"], {"input_tokens": 10, "cache_creation_input_tokens": 0,
                                        "cache_read_input_tokens": 0, "output_tokens": 4})
        status, _, body = post(self.port, "/v1/messages", doc, {"anthropic-version": "2023-06-01"})
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body), {"type": "error", "error": {
            "type": "authentication_error", "message": "x-api-key header is required"}})
        status, _, body = post(self.port, "/v1/messages", doc, {"x-api-key": "k"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"]["type"], "invalid_request_error")

    def test_anthropic_stream_text_and_tools(self):
        doc = {"model": "claude-x", "max_tokens": 100, "stream": True,
               "messages": [{"role": "user", "content": "echo: a b"}]}
        _, headers, chunks, terminated, _ = raw_post(self.port, "/v1/messages", doc, ANTHROPIC_AUTH)
        self.assertTrue(terminated)
        raw = b"".join(chunks)
        self.assertIn(b'event: ping\ndata: {"type": "ping"}\n\n', raw)
        events = sse_events(raw)
        names = [n for n, _ in events]
        self.assertEqual(names, ["message_start", "content_block_start", "ping", "content_block_delta",
                                 "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
        datas = [json.loads(d) for _, d in events]
        self.assertEqual([d["type"] for d in datas], names)
        self.assertEqual(datas[0]["message"]["usage"]["input_tokens"], 3 + 3)
        self.assertEqual("".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta"), "a b")
        self.assertEqual(datas[6]["delta"], {"stop_reason": "end_turn", "stop_sequence": None})
        self.assertEqual(datas[6]["usage"], {"output_tokens": 2})
        # tools
        doc["tools"] = [{"name": "get_weather", "input_schema": {"type": "object"}}]
        doc["messages"] = [{"role": "user", "content": [{"type": "text", "text": "weather?"}]}]
        _, _, chunks, _, _ = raw_post(self.port, "/v1/messages", doc, ANTHROPIC_AUTH)
        datas = [json.loads(d) for _, d in sse_events(b"".join(chunks))]
        starts = [d for d in datas if d["type"] == "content_block_start"]
        self.assertEqual([s["content_block"]["type"] for s in starts], ["tool_use", "tool_use"])
        self.assertEqual(starts[0]["content_block"]["input"], {})
        parts = {}
        for d in datas:
            if d["type"] == "content_block_delta":
                self.assertEqual(d["delta"]["type"], "input_json_delta")
                parts[d["index"]] = parts.get(d["index"], "") + d["delta"]["partial_json"]
        self.assertEqual({i: json.loads(s) for i, s in parts.items()}, {0: {"city": "Paris"}, 1: {"city": "Tokyo"}})
        self.assertEqual(datas[-2]["delta"]["stop_reason"], "tool_use")
        # a tool_result turn answers with text
        doc["stream"] = False
        doc["messages"].append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "sunny weather"}]})
        obj = json.loads(post(self.port, "/v1/messages", doc, ANTHROPIC_AUTH)[2])
        self.assertEqual(obj["stop_reason"], "end_turn")

    # -- Gemini -----------------------------------------------------------------------------
    def test_gemini_non_stream_and_key(self):
        doc = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        path = "/v1beta/models/gemini-2.5-flash:generateContent"
        status, _, body = post(self.port, path, doc, GEMINI_AUTH)
        self.assertEqual(status, 200)
        obj = json.loads(body)
        cand = obj["candidates"][0]
        self.assertEqual(cand["content"], {"parts": [{"text": "Hello from fake gemini-2.5-flash"}], "role": "model"})
        self.assertEqual(cand["finishReason"], "STOP")
        self.assertEqual(obj["usageMetadata"]["promptTokenCount"], 4)
        self.assertEqual(obj["usageMetadata"]["candidatesTokenCount"], 4)
        self.assertEqual(obj["usageMetadata"]["totalTokenCount"], 8)
        self.assertEqual(obj["modelVersion"], "gemini-2.5-flash")
        self.assertEqual(post(self.port, path + "?key=abc", doc, {})[0], 200)
        status, _, body = post(self.port, path, doc, {})
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["error"]["status"], "PERMISSION_DENIED")

    def test_gemini_stream_sse_crlf_and_tools(self):
        doc = {"contents": [{"role": "user", "parts": [{"text": "echo: x y z"}]}]}
        path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        self.p.script(split_events=-1)   # cut between the final "\r\n\r" and "\n"
        _, headers, chunks, terminated, _ = raw_post(self.port, path, doc, GEMINI_AUTH)
        self.assertTrue(terminated)
        self.assertEqual(headers["content-type"], "text/event-stream")
        self.assertTrue(all(c.endswith(b"\r\n\r") for c in chunks[::2]))
        raw = b"".join(chunks)
        self.assertTrue(raw.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": "x"}],"role": "model"}'))
        self.assertTrue(raw.endswith(b"}\r\n\r\n"))
        objs = [json.loads(d) for _, d in sse_events(raw, b"\r\n\r\n")]
        self.assertEqual(len(objs), 3)
        self.assertEqual("".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs), "x y z")
        self.assertTrue(all("usageMetadata" in o for o in objs))
        self.assertNotIn("finishReason", objs[0]["candidates"][0])
        self.assertEqual(objs[-1]["candidates"][0]["finishReason"], "STOP")
        self.assertEqual(objs[-1]["usageMetadata"]["candidatesTokenCount"], 3)
        # function calls
        doc = {"contents": [{"role": "user", "parts": [{"text": "weather in two cities"}]}],
               "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}
        obj = json.loads(post(self.port, path.replace("streamGenerateContent?alt=sse", "generateContent"),
                              doc, GEMINI_AUTH)[2])
        self.assertEqual(obj["candidates"][0]["content"]["parts"],
                         [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                          {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}}])

    # -- scripts ---------------------------------------------------------------------------
    def test_scripted_errors_per_dialect(self):
        self.p.script(status=429, headers={"Retry-After": "2"})
        self.p.script(status=529)
        self.p.script(status=503)
        self.p.script(status=400, body={"custom": True})
        status, headers, body = post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)
        self.assertEqual((status, headers["retry-after"]), (429, "2"))
        self.assertEqual(json.loads(body)["error"]["code"], "rate_limit_exceeded")
        status, _, body = post(self.port, "/v1/messages", {}, ANTHROPIC_AUTH)
        self.assertEqual(json.loads(body)["error"]["type"], "overloaded_error")
        status, _, body = post(self.port, "/v1beta/models/g:generateContent", {}, GEMINI_AUTH)
        self.assertEqual(json.loads(body)["error"], {"code": 503, "message": "fake provider error 503",
                                                     "status": "UNAVAILABLE"})
        status, _, body = post(self.port, "/v1/chat/completions", {}, {})
        self.assertEqual((status, json.loads(body)), (400, {"custom": True}))
        self.assertEqual(self.p.pending, 0)
        self.assertEqual(post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)[0], 200)

    def test_cut_after(self):
        self.p.script(cut_after=2)
        doc = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "echo: a b c d"}]}
        _, _, chunks, terminated, closed = raw_post(self.port, "/v1/chat/completions", doc, OPENAI_AUTH)
        self.assertFalse(terminated)
        self.assertTrue(closed)
        self.assertEqual(len(chunks), 2)
        self.assertEqual(len(sse_events(b"".join(chunks))), 2)

    def test_reply_usage_close_and_timing(self):
        self.p.script(reply="scripted words here", usage={"prompt": 100, "cached_tokens": 40})
        obj = json.loads(post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)[2])
        self.assertEqual(obj["choices"][0]["message"]["content"], "scripted words here")
        self.assertEqual(obj["usage"]["prompt_tokens"], 100)
        self.assertEqual(obj["usage"]["total_tokens"], 103)
        self.assertEqual(obj["usage"]["prompt_tokens_details"]["cached_tokens"], 40)

        self.p.script(close=True)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)

        self.p.script(delay=0.3)
        t0 = time.monotonic()
        post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

        self.p.script(first_token_delay=0.4, event_delay=0.05)
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        t0 = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": "m", "stream": True, "messages": []}), headers=OPENAI_AUTH)
        resp = conn.getresponse()
        t_head = time.monotonic() - t0
        resp.read()
        t_all = time.monotonic() - t0
        conn.close()
        self.assertLess(t_head, 0.3)
        self.assertGreaterEqual(t_all, 0.4 + 0.05 * 4)

    def test_wait_clear_and_bad_keys(self):
        with self.assertRaises(TypeError):
            self.p.script(stauts=500)
        post(self.port, "/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_AUTH)
        self.assertEqual(len(self.p.wait_for_requests(1, 1)), 1)
        with self.assertRaises(TimeoutError):
            self.p.wait_for_requests(2, 0.2)
        self.p.script(status=500)
        self.p.clear()
        self.assertEqual((self.p.requests, self.p.pending), ([], 0))
        self.assertEqual(self.p.address, "127.0.0.1:%d" % self.port)


if __name__ == "__main__":
    unittest.main()
