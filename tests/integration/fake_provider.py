"""Fake LLM provider for the Ganglion integration tests (Python 3 standard library only).

One threaded HTTP/1.1 keep-alive server on a loopback port that answers in five provider
dialects, deterministically, so gateway tests can check translation, streaming, usage
accounting, retries and failure handling without a network:

  OpenAI     POST <prefix>/chat/completions, <prefix>/embeddings, <prefix>/responses,
             GET <prefix>/models                      (Authorization: Bearer ... required)
  Azure      the same under /openai/deployments/{dep}/...?api-version=...  (api-key header)
  Anthropic  POST /v1/messages                     (x-api-key + anthropic-version required)
  Gemini     POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse
             | :batchEmbedContents,
             GET /v1beta/models                    (x-goog-api-key header or ?key=)
  Bedrock    POST /model/{id}/converse | /converse-stream (AWS event-stream) | /invoke (Titan and
             Cohere embeddings)                    (SigV4 Authorization + X-Amz-Date required)

    with FakeProvider() as p:
        p.script(status=429, headers={"Retry-After": "1"})   # next request fails
        p.script(cut_after=3)                                # the one after dies mid-stream
        ... point the gateway at p.address ...
        p.wait_for_requests(2, timeout=5)
        assert p.requests[0]["json"]["model"] == "gpt-4o"

Default answers: reply text "Hello from fake <model>", or the rest of the last user message
when it starts with "echo:" (one space after the colon is dropped). When the request offers
tools (tool choice not "none") and the last message is a user turn mentioning "weather",
the answer is two parallel calls of the first tool, {"city":"Paris"} and {"city":"Tokyo"}.
Token counts: prompt = words of every message's text + 3 per message (system prompt counts
as a message); completion = words of the reply, or 5 per tool call.

Wire details followed (see the selftest for checks):
  * OpenAI chat stream: `data: {chat.completion.chunk}\\n\\n` events, role delta first, then
    content/tool-call deltas, a finish chunk with an empty delta, with
    stream_options.include_usage a last chunk with "choices": [] and usage (every earlier
    chunk then carries "usage": null), then `data: [DONE]\\n\\n`. Non-stream JSON is indented
    like the real API's.
  * Responses API stream: `event: <type>\\ndata: {"type":..,"sequence_number":..,...}\\n\\n`
    from response.created to response.completed, no [DONE].
  * Anthropic stream: message_start, content_block_start, ping (whose JSON the real API
    writes as {"type": "ping"} with a space), content_block_delta (text_delta /
    input_json_delta), content_block_stop, message_delta, message_stop; compact JSON.
  * Gemini alt=sse: `data: {...}\\r\\n\\r\\n` (CRLF pairs, as recorded from the real API, JSON
    with ": " separators), no [DONE]; without alt=sse a JSON array is streamed. Non-stream
    and error bodies are 2-space indented.
"""

import base64
import hashlib
import itertools
import json
import urllib.parse
import re
import socket
import struct
import threading
import time
import zlib
from urllib.parse import parse_qs, urlsplit

from harness import ThreadedServer, _UpstreamHandler

__all__ = ["FakeProvider", "SCRIPT_KEYS"]

# Keys accepted by FakeProvider.script(); see its docstring.
SCRIPT_KEYS = frozenset([
    "status", "body", "headers", "delay", "first_token_delay", "cut_after", "reply",
    "usage", "close", "event_delay", "split_events",
])

TOOL_CITIES = ("Paris", "Tokyo")
TOOL_CALL_TOKENS = 5          # completion tokens charged per tool call
ARG_FRAGMENT = 5              # characters per streamed tool-argument fragment


# --------------------------------------------------------------------------
# JSON and text helpers
# --------------------------------------------------------------------------

def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _indented(obj):
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _google(obj):
    """Google's streamed JSON style: {"a": 1,"b": 2} (", " never, ": " always)."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode("utf-8")


def _words(text):
    return len(text.split()) if isinstance(text, str) else 0


def _pieces(text):
    """Split text into word-sized pieces whose concatenation is exactly text."""
    parts = re.findall(r"\s*\S+", text)
    if not parts:
        return [text] if text else []
    tail = text[len("".join(parts)):]
    parts[-1] += tail
    return parts


def _fragments(s, size=ARG_FRAGMENT):
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


def _content_text(content):
    """Text of a message content: a string or a list of parts with "text" fields."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return " ".join(texts)
    return ""


def _usage_from_override(base, override):
    """Apply a script usage dict. Keys may be generic (prompt, completion, total, cached,
    cache_creation, reasoning) or any dialect's own names (prompt_tokens, input_tokens,
    promptTokenCount, ...)."""
    aliases = {
        "prompt": "prompt", "prompt_tokens": "prompt", "input_tokens": "prompt",
        "promptTokenCount": "prompt",
        "completion": "completion", "completion_tokens": "completion",
        "output_tokens": "completion", "candidatesTokenCount": "completion",
        "total": "total", "total_tokens": "total", "totalTokenCount": "total",
        "cached": "cached", "cached_tokens": "cached", "cache_read_input_tokens": "cached",
        "cachedContentTokenCount": "cached",
        "cache_creation": "cache_creation", "cache_creation_input_tokens": "cache_creation",
        "reasoning": "reasoning", "reasoning_tokens": "reasoning",
        "thoughtsTokenCount": "reasoning",
    }
    usage = dict(base)
    total_given = False
    for key, value in (override or {}).items():
        if key not in aliases:
            raise KeyError("unknown usage key %r" % key)
        usage[aliases[key]] = value
        total_given = total_given or aliases[key] == "total"
    if not total_given:
        usage["total"] = usage["prompt"] + usage["completion"]
    return usage


# --------------------------------------------------------------------------
# the decision shared by all dialects
# --------------------------------------------------------------------------

def _aws_event(event_type, obj):
    """One AWS event-stream message: prelude (lengths + CRC32), string headers, payload, CRC32."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v
    payload = json.dumps(dict(obj, p="abcdefgh"), separators=(",", ":"), sort_keys=True).encode()
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


class _Turn:
    """What the fake answers: text or tool calls, plus usage numbers."""

    def __init__(self, text=None, tool_calls=None, usage=None):
        self.text = text
        self.tool_calls = tool_calls or []   # list of (name, arguments-json-string)
        self.usage = usage


def _decide(model, messages, tool_name, tools_allowed, entry):
    """messages: list of (role, text, is_tool_result) with role "system"/"user"/other."""
    prompt = sum(_words(text) + 3 for _, text, _ in messages)
    last = messages[-1] if messages else ("user", "", False)
    turn = _Turn()
    if entry.get("reply") is not None:
        turn.text = entry["reply"]
    elif (tool_name and tools_allowed and last[0] == "user" and not last[2]
          and "weather" in last[1].lower()):
        turn.tool_calls = [(tool_name, _compact({"city": c}).decode()) for c in TOOL_CITIES]
    elif last[0] == "user" and last[1].startswith("echo:"):
        rest = last[1][len("echo:"):]
        turn.text = rest[1:] if rest.startswith(" ") else rest
    else:
        turn.text = "Hello from fake %s" % model
    completion = (TOOL_CALL_TOKENS * len(turn.tool_calls)) if turn.tool_calls else _words(turn.text)
    base = {"prompt": prompt, "completion": completion, "total": prompt + completion,
            "cached": 0, "cache_creation": 0, "reasoning": 0}
    turn.usage = _usage_from_override(base, entry.get("usage"))
    return turn


# --------------------------------------------------------------------------
# default error bodies per dialect
# --------------------------------------------------------------------------

_OPENAI_ERR = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
               403: ("invalid_request_error", None), 404: ("invalid_request_error", None),
               429: ("requests", "rate_limit_exceeded"), 500: ("server_error", None),
               503: ("server_error", None)}
_ANTHROPIC_ERR = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                  404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                  500: "api_error", 529: "overloaded_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                  501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _error_body(dialect, status, message=None):
    """(content-type, body bytes) of a provider-style error."""
    message = message or "fake provider error %d" % status
    if dialect == "anthropic":
        kind = _ANTHROPIC_ERR.get(status, "api_error")
        return "application/json", _compact({"type": "error", "error": {"type": kind, "message": message}})
    if dialect == "gemini":
        return ("application/json; charset=UTF-8",
                _indented({"error": {"code": status, "message": message,
                                     "status": _GOOGLE_STATUS.get(status, "UNKNOWN")}}))
    if dialect == "azure":
        return "application/json", _compact({"error": {"code": str(status), "message": message}})
    kind, code = _OPENAI_ERR.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return "application/json", _indented({"error": {"message": message, "type": kind,
                                                     "param": None, "code": code}})


def _dialect(path):
    route = path.split("?", 1)[0]
    if _BEDROCK_ROUTE.search(route):
        return "bedrock"
    if "/openai/deployments/" in route:
        return "azure"
    if route.endswith("/messages") or route.endswith("/messages/count_tokens"):
        return "anthropic"
    if ":generateContent" in route or ":streamGenerateContent" in route or route.startswith("/v1beta/"):
        return "gemini"
    return "openai"


_BEDROCK_ROUTE = re.compile(r"/model/([^/]+)/(converse|converse-stream|invoke)$")
_GEMINI_ROUTE = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
_AZURE_ROUTE = re.compile(r"/openai/deployments/([^/]+)/")


# --------------------------------------------------------------------------
# the request handler
# --------------------------------------------------------------------------

class _Abort(Exception):
    """Raised to stop a stream early (cut_after)."""


class _ProviderHandler(_UpstreamHandler):
    """Reuses the harness handler's body reading, chunk writer and connection counting."""

    server_version = "FakeProvider/1"

    def _handle(self):
        owner = self.server.owner
        try:
            body = self._read_body()
        except (ConnectionError, ValueError):
            self.close_connection = True
            return
        owner._record(self, body)
        entry = owner._next_entry()
        try:
            self._serve(body, entry)
        except _Abort:
            self._drop()
        except OSError:           # the client went away mid-answer
            with owner.lock:
                owner.disconnects += 1
            self.close_connection = True

    # -- plumbing ------------------------------------------------------------
    def _drop(self, reset=False):
        """Close the connection without a (complete) answer."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _wait(self, seconds):
        if seconds:
            self.server.owner.stop_event.wait(seconds)

    def _head(self, status, content_type, length=None, extra=None):
        self.send_response(status)
        extra = dict(extra or {})
        for name in [n for n in extra if n.lower() == "content-type"]:
            content_type = extra.pop(name)  # a scripted Content-Type replaces the default
        self.send_header("Content-Type", content_type)
        self.send_header("X-Request-Id", "req_fake_%d" % self.server.owner._next_id())
        if length is None:
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            self.send_header(name, str(value))
        self.end_headers()

    def _reply(self, status, content_type, body, entry):
        self._head(status, content_type, len(body), entry.get("headers"))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, dialect, status, entry, message=None):
        content_type, body = _error_body(dialect, status, message)
        self._reply(status, content_type, body, entry)

    def _stream(self, events, entry, content_type="text/event-stream; charset=utf-8"):
        """Send events (bytes each) as chunked SSE, one flushed chunk per event (or two,
        split mid-line, with split_events)."""
        owner = self.server.owner
        self._head(200, content_type, None, entry.get("headers"))
        self._wait(entry.get("first_token_delay"))
        split = entry.get("split_events", owner.split_events)
        gap = entry.get("event_delay", owner.event_delay)
        cut = entry.get("cut_after")
        for index, event in enumerate(events):
            if cut is not None and index >= cut:
                raise _Abort()
            if index and gap:
                self._wait(gap)
            if split:
                first, second = _split_event(event, split)
                self._chunk(first)
                time.sleep(owner.split_pause)   # so the two halves arrive as separate reads
                self._chunk(second)
            else:
                self._chunk(event)
        if cut is not None:      # all n events went out: still no terminating chunk
            raise _Abort()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- dispatch --------------------------------------------------------------
    def _serve(self, body, entry):
        owner = self.server.owner
        close = entry.get("close")
        if close:
            self._drop(reset=(close == "reset"))
            return
        self._wait(entry.get("delay"))
        dialect = _dialect(self.path)
        if entry.get("status") is not None:
            status = int(entry["status"])
            scripted = entry.get("body")
            if scripted is None:
                self._error(dialect, status, entry)
            else:
                if isinstance(scripted, (dict, list)):
                    data, ctype = _compact(scripted), "application/json"
                elif isinstance(scripted, str):
                    data, ctype = scripted.encode("utf-8"), "application/json"
                else:
                    data, ctype = bytes(scripted), "application/json"
                self._reply(status, ctype, data, entry)
            return

        split = urlsplit(self.path)
        route, query = split.path, parse_qs(split.query)
        if not self._authorized(dialect, query, entry):
            return
        doc = None
        if self.command == "POST":
            try:
                doc = json.loads(body.decode("utf-8")) if body else None
            except (UnicodeDecodeError, ValueError):
                doc = None
            if not isinstance(doc, dict):
                self._error(dialect, 400, entry, "request body is not a JSON object")
                return

        if dialect in ("openai", "azure"):
            azure = _AZURE_ROUTE.search(route)
            deployment = azure.group(1) if azure else None
            if self.command == "POST" and route.endswith("/chat/completions"):
                return self._openai_chat(doc, entry, deployment)
            if self.command == "POST" and route.endswith("/embeddings"):
                return self._openai_embeddings(doc, entry, deployment)
            if self.command == "POST" and route.endswith("/responses"):
                return self._openai_responses(doc, entry)
            if self.command == "GET" and route.endswith("/models"):
                data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                        for m in owner.models]
                return self._reply(200, "application/json", _indented({"object": "list", "data": data}), entry)
        elif dialect == "bedrock" and self.command == "POST":
            m = _BEDROCK_ROUTE.search(route)
            if m.group(2) == "invoke":
                return self._bedrock_invoke(doc or {}, entry, urllib.parse.unquote(m.group(1)))
            return self._bedrock(doc or {}, entry, m.group(2) == "converse-stream")
        elif dialect == "anthropic" and self.command == "POST" and route.endswith("/count_tokens"):
            words = sum(len(_content_text(m.get("content")).split()) + 3 for m in (doc or {}).get("messages") or [])
            return self._reply(200, "application/json", _compact({"input_tokens": words}), entry)
        elif dialect == "anthropic" and self.command == "POST":
            return self._anthropic(doc, entry)
        elif dialect == "gemini":
            m = _GEMINI_ROUTE.search(route)
            if m and self.command == "POST":
                return self._gemini(doc, entry, m.group(1), m.group(2) == "streamGenerateContent",
                                    query.get("alt", [""])[0] == "sse")
            if self.command == "POST" and route.endswith(":batchEmbedContents") and isinstance(doc, dict):
                # One deterministic 8-float vector per request, as embeddings[i].values.
                vectors = []
                for i, r in enumerate(doc.get("requests") or []):
                    text = "".join(p.get("text", "") for p in (r.get("content") or {}).get("parts") or [])
                    seed = sum(text.encode()) + i
                    vectors.append({"values": [round(((seed * (k + 3)) % 97) / 97.0, 6) for k in range(8)]})
                return self._reply(200, "application/json; charset=UTF-8", _indented({"embeddings": vectors}), entry)
            if self.command == "GET" and route.rstrip("/").endswith("/models"):
                models = [{"name": "models/" + m, "displayName": m,
                           "supportedGenerationMethods": ["generateContent", "countTokens"]}
                          for m in owner.models]
                return self._reply(200, "application/json; charset=UTF-8", _indented({"models": models}), entry)
        self._error(dialect, 404, entry, "no fake route for %s %s" % (self.command, route))

    def _authorized(self, dialect, query, entry):
        owner = self.server.owner
        if not owner.require_auth:
            return True
        headers = self.headers
        bearer = (headers.get("Authorization") or "")
        has_bearer = bearer.startswith("Bearer ") and bearer[7:].strip() != ""
        if dialect == "openai" and not has_bearer:
            self._error(dialect, 401, entry,
                        "You didn't provide an API key. You need to provide your API key in an "
                        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            return False
        if dialect == "azure":
            if not (headers.get("api-key") or has_bearer):
                self._error(dialect, 401, entry,
                            "Access denied due to invalid subscription key or wrong API endpoint.")
                return False
            if "api-version" not in query:
                self._error(dialect, 404, entry, "Resource not found")
                return False
        if dialect == "anthropic":
            if not headers.get("x-api-key"):
                self._error(dialect, 401, entry, "x-api-key header is required")
                return False
            if not headers.get("anthropic-version"):
                self._error(dialect, 400, entry, "anthropic-version: header is required")
                return False
        if dialect == "gemini" and not (headers.get("x-goog-api-key") or query.get("key")):
            self._error(dialect, 403, entry,
                        "Method doesn't allow unregistered callers (callers without established "
                        "identity). Please use API Key or other form of API consumer identity to "
                        "call this API.")
            return False
        return True

    # -- OpenAI chat completions -------------------------------------------------
    def _openai_chat(self, doc, entry, deployment):
        owner = self.server.owner
        model = deployment or doc.get("model") or "unknown"
        messages = []
        for msg in doc.get("messages") or []:
            if isinstance(msg, dict):
                role = msg.get("role") or ""
                messages.append(("user" if role == "user" else role, _content_text(msg.get("content")),
                                 role == "tool"))
        tools = doc.get("tools") or []
        tool_name = None
        if tools and isinstance(tools[0], dict):
            tool_name = (tools[0].get("function") or {}).get("name")
        turn = _decide(model, messages, tool_name, doc.get("tool_choice") != "none", entry)
        n = owner._next_id()
        cid, created = "chatcmpl-fake%d" % n, int(time.time())
        calls = [("call_fake_%d_%d" % (n, i), name, args) for i, (name, args) in enumerate(turn.tool_calls)]
        finish = "tool_calls" if calls else "stop"
        u = turn.usage
        usage = {"prompt_tokens": u["prompt"], "completion_tokens": u["completion"],
                 "total_tokens": u["total"],
                 "prompt_tokens_details": {"cached_tokens": u["cached"]},
                 "completion_tokens_details": {"reasoning_tokens": u["reasoning"]}}

        if not doc.get("stream"):
            message = {"role": "assistant", "content": None if calls else turn.text, "refusal": None}
            if calls:
                message["tool_calls"] = [{"id": cid_, "type": "function",
                                          "function": {"name": name, "arguments": args}}
                                         for cid_, name, args in calls]
            message["annotations"] = []
            obj = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                   "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                   "usage": usage, "system_fingerprint": "fp_fake"}
            return self._reply(200, "application/json", _indented(obj), entry)

        include_usage = bool((doc.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish_reason=None, choices=True, usage_value=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish_reason}] if choices else []}
            if include_usage:
                obj["usage"] = usage_value
            return b"data: " + _compact(obj) + b"\n\n"

        events = [chunk({"role": "assistant", "content": None if calls else "", "refusal": None})]
        for piece in _pieces(turn.text or ""):
            events.append(chunk({"content": piece}))
        for index, (cid_, name, args) in enumerate(calls):
            events.append(chunk({"tool_calls": [{"index": index, "id": cid_, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            for frag in _fragments(args):
                events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]}))
        events.append(chunk({}, finish))
        if include_usage:
            events.append(chunk(None, choices=False, usage_value=usage))
        events.append(b"data: [DONE]\n\n")
        self._stream(events, entry)

    # -- OpenAI embeddings ---------------------------------------------------------
    def _openai_embeddings(self, doc, entry, deployment):
        model = deployment or doc.get("model") or "unknown"
        inputs = doc.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list):
            return self._error(_dialect(self.path), 400, entry, "'input' is required")
        data = []
        words = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            words += _words(text) if isinstance(item, str) else len(item)
            vector = [round(b / 127.5 - 1.0, 6) for b in hashlib.sha256(text.encode("utf-8")).digest()[:8]]
            if doc.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack("<8f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        usage = _usage_from_override({"prompt": words, "completion": 0, "total": words, "cached": 0,
                                      "cache_creation": 0, "reasoning": 0}, entry.get("usage"))
        obj = {"object": "list", "data": data, "model": model,
               "usage": {"prompt_tokens": usage["prompt"], "total_tokens": usage["total"]}}
        self._reply(200, "application/json", _indented(obj), entry)

    # -- OpenAI Responses API --------------------------------------------------------
    def _openai_responses(self, doc, entry):
        owner = self.server.owner
        model = doc.get("model") or "unknown"
        messages = []
        if isinstance(doc.get("instructions"), str):
            messages.append(("system", doc["instructions"], False))
        items = doc.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        for item in items or []:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "function_call_output":
                messages.append(("tool", str(item.get("output", "")), True))
            elif item.get("role"):
                messages.append((item["role"], _content_text(item.get("content")), False))
        tools = doc.get("tools") or []
        tool_name = None
        if tools and isinstance(tools[0], dict):
            tool_name = tools[0].get("name") or (tools[0].get("function") or {}).get("name")
        turn = _decide(model, messages, tool_name, doc.get("tool_choice") != "none", entry)
        n = owner._next_id()
        rid, created = "resp_fake%d" % n, int(time.time())
        u = turn.usage
        usage = {"input_tokens": u["prompt"], "input_tokens_details": {"cached_tokens": u["cached"]},
                 "output_tokens": u["completion"],
                 "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
                 "total_tokens": u["total"]}

        def done_items():
            if turn.tool_calls:
                return [{"id": "fc_fake%d_%d" % (n, i), "type": "function_call", "status": "completed",
                         "arguments": args, "call_id": "call_fake_%d_%d" % (n, i), "name": name}
                        for i, (name, args) in enumerate(turn.tool_calls)]
            return [{"id": "msg_fake%d" % n, "type": "message", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                                  "text": turn.text}]}]

        def response(status, output, usage_value):
            return {"id": rid, "object": "response", "created_at": created, "status": status,
                    "error": None, "incomplete_details": None,
                    "instructions": doc.get("instructions"), "max_output_tokens": doc.get("max_output_tokens"),
                    "model": model, "output": output, "parallel_tool_calls": True,
                    "previous_response_id": doc.get("previous_response_id"),
                    "reasoning": {"effort": None, "summary": None}, "store": doc.get("store", True),
                    "temperature": doc.get("temperature", 1.0), "text": {"format": {"type": "text"}},
                    "tool_choice": doc.get("tool_choice", "auto"), "tools": tools,
                    "top_p": doc.get("top_p", 1.0), "truncation": "disabled",
                    "usage": usage_value, "user": None, "metadata": doc.get("metadata") or {}}

        if not doc.get("stream"):
            return self._reply(200, "application/json",
                               _indented(response("completed", done_items(), usage)), entry)

        seq = itertools.count()

        def event(kind, **fields):
            obj = {"type": kind, "sequence_number": next(seq)}
            obj.update(fields)
            return b"event: " + kind.encode() + b"\ndata: " + _compact(obj) + b"\n\n"

        events = [event("response.created", response=response("in_progress", [], None)),
                  event("response.in_progress", response=response("in_progress", [], None))]
        final = done_items()
        for index, item in enumerate(final):
            if item["type"] == "function_call":
                events.append(event("response.output_item.added", output_index=index,
                                    item=dict(item, status="in_progress", arguments="")))
                for frag in _fragments(item["arguments"]):
                    events.append(event("response.function_call_arguments.delta", item_id=item["id"],
                                        output_index=index, delta=frag))
                events.append(event("response.function_call_arguments.done", item_id=item["id"],
                                    output_index=index, arguments=item["arguments"]))
            else:
                part = item["content"][0]
                events.append(event("response.output_item.added", output_index=index,
                                    item=dict(item, status="in_progress", content=[])))
                events.append(event("response.content_part.added", item_id=item["id"], output_index=index,
                                    content_index=0, part=dict(part, text="")))
                for piece in _pieces(turn.text):
                    events.append(event("response.output_text.delta", item_id=item["id"], output_index=index,
                                        content_index=0, delta=piece, logprobs=[]))
                events.append(event("response.output_text.done", item_id=item["id"], output_index=index,
                                    content_index=0, text=turn.text, logprobs=[]))
                events.append(event("response.content_part.done", item_id=item["id"], output_index=index,
                                    content_index=0, part=part))
            events.append(event("response.output_item.done", output_index=index, item=item))
        events.append(event("response.completed", response=response("completed", final, usage)))
        self._stream(events, entry)

    # -- AWS Bedrock Converse ----------------------------------------------------------
    def _bedrock(self, doc, entry, stream):
        """Converse / ConverseStream. Checks that a SigV4 Authorization and X-Amz-Date came
        (the signature itself is checked by the gateway's unit tests against AWS's vectors)."""
        auth = self.headers.get("authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or not self.headers.get("x-amz-date"):
            body = json.dumps({"message": "Missing Authentication Token"}).encode()
            return self._reply(403, "application/json", body, entry)
        messages = []
        for block in doc.get("system") or []:
            messages.append(("system", block.get("text", ""), False))
        for msg in doc.get("messages") or []:
            blocks = msg.get("content") or []
            text = " ".join(b.get("text", "") for b in blocks if isinstance(b, dict) and "text" in b)
            tool_result = any(isinstance(b, dict) and "toolResult" in b for b in blocks)
            messages.append((msg.get("role") or "", text, tool_result))
        tools = (doc.get("toolConfig") or {}).get("tools") or []
        tool_name = tools[0].get("toolSpec", {}).get("name") if tools else None
        model = self.path.split("/model/", 1)[1].split("/", 1)[0]
        turn = _decide(model, messages, tool_name, True, entry)
        n = self.server.owner._next_id()
        calls = [("tooluse_fake%d_%d" % (n, i), name, args) for i, (name, args) in enumerate(turn.tool_calls)]
        stop = "tool_use" if calls else "end_turn"
        u = turn.usage
        usage = {"inputTokens": u["prompt"], "outputTokens": u["completion"],
                 "totalTokens": u["prompt"] + u["completion"]}
        if not stream:
            content = [{"toolUse": {"toolUseId": tid, "name": name, "input": json.loads(args)}}
                       for tid, name, args in calls] or [{"text": turn.text}]
            obj = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                   "usage": usage, "metrics": {"latencyMs": 12}}
            return self._reply(200, "application/json", _compact(obj), entry)
        frames = [_aws_event("messageStart", {"role": "assistant"})]
        if calls:
            for i, (tid, name, args) in enumerate(calls):
                frames.append(_aws_event("contentBlockStart", {"contentBlockIndex": i,
                                                               "start": {"toolUse": {"toolUseId": tid, "name": name}}}))
                for k in range(0, len(args), 7):
                    frames.append(_aws_event("contentBlockDelta", {"contentBlockIndex": i,
                                                                   "delta": {"toolUse": {"input": args[k:k + 7]}}}))
                frames.append(_aws_event("contentBlockStop", {"contentBlockIndex": i}))
        else:
            words = turn.text.split(" ")
            for i, word in enumerate(words):
                piece = word if i == 0 else " " + word
                frames.append(_aws_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
            frames.append(_aws_event("contentBlockStop", {"contentBlockIndex": 0}))
        frames.append(_aws_event("messageStop", {"stopReason": stop}))
        frames.append(_aws_event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
        self._stream(frames, entry, content_type="application/vnd.amazon.eventstream")

    def _bedrock_invoke(self, doc, entry, model):
        """InvokeModel for embedding models: Amazon Titan ({"inputText"} -> {"embedding",
        "inputTextTokenCount"}) and Cohere ({"texts", "input_type"} -> {"embeddings"})."""
        auth = self.headers.get("authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or not self.headers.get("x-amz-date"):
            return self._reply(403, "application/json", json.dumps({"message": "Missing Authentication Token"}).encode(),
                               entry)

        def vector(text):
            return [round(b / 127.5 - 1.0, 6) for b in hashlib.sha256(text.encode("utf-8")).digest()[:8]]
        if model.startswith("amazon.titan-embed") and isinstance(doc.get("inputText"), str):
            obj = {"embedding": vector(doc["inputText"]), "inputTextTokenCount": _words(doc["inputText"])}
        elif model.startswith("cohere.embed") and isinstance(doc.get("texts"), list) and doc.get("input_type"):
            obj = {"id": "emb-%d" % self.server.owner._next_id(), "response_type": "embeddings_floats",
                   "embeddings": [vector(t) for t in doc["texts"]], "texts": doc["texts"]}
        else:
            return self._reply(400, "application/json", json.dumps({"message": "Malformed input request"}).encode(),
                               entry)
        return self._reply(200, "application/json", _compact(obj), entry)

    # -- Anthropic Messages ------------------------------------------------------------
    def _anthropic(self, doc, entry):
        owner = self.server.owner
        model = doc.get("model") or "unknown"
        messages = []
        if doc.get("system"):
            messages.append(("system", _content_text(doc["system"]), False))
        for msg in doc.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            content = msg.get("content")
            tool_result = isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
            messages.append((msg.get("role") or "", _content_text(content), tool_result))
        tools = doc.get("tools") or []
        tool_name = tools[0].get("name") if tools and isinstance(tools[0], dict) else None
        allowed = (doc.get("tool_choice") or {}).get("type") != "none"
        turn = _decide(model, messages, tool_name, allowed, entry)
        n = owner._next_id()
        mid = "msg_fake%d" % n
        calls = [("toolu_fake%d_%d" % (n, i), name, args) for i, (name, args) in enumerate(turn.tool_calls)]
        stop = "tool_use" if calls else "end_turn"
        u = turn.usage
        usage = {"input_tokens": u["prompt"], "cache_creation_input_tokens": u["cache_creation"],
                 "cache_read_input_tokens": u["cached"], "output_tokens": u["completion"]}

        if not doc.get("stream"):
            if calls:
                content = [{"type": "tool_use", "id": tid, "name": name, "input": json.loads(args)}
                           for tid, name, args in calls]
            else:
                content = [{"type": "text", "text": turn.text}]
            obj = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": content,
                   "stop_reason": stop, "stop_sequence": None, "usage": usage}
            return self._reply(200, "application/json", _compact(obj), entry)

        def event(kind, obj):
            data = b'{"type": "ping"}' if kind == "ping" else _compact(obj)
            return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

        start_usage = dict(usage, output_tokens=1)
        events = [event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
        blocks = []
        if calls:
            for tid, name, args in calls:
                deltas = [{"type": "input_json_delta", "partial_json": ""}]
                deltas += [{"type": "input_json_delta", "partial_json": f} for f in _fragments(args)]
                blocks.append(({"type": "tool_use", "id": tid, "name": name, "input": {}}, deltas))
        else:
            blocks.append(({"type": "text", "text": ""},
                           [{"type": "text_delta", "text": p} for p in _pieces(turn.text)]))
        for index, (block, deltas) in enumerate(blocks):
            events.append(event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": block}))
            if index == 0:
                events.append(event("ping", None))
            for delta in deltas:
                events.append(event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                            "delta": delta}))
            events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(event("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": stop, "stop_sequence": None},
                                              "usage": {"output_tokens": u["completion"]}}))
        events.append(event("message_stop", {"type": "message_stop"}))
        self._stream(events, entry)

    # -- Gemini generateContent ------------------------------------------------------------
    def _gemini(self, doc, entry, model, stream, sse):
        owner = self.server.owner
        messages = []
        system = doc.get("systemInstruction") or doc.get("system_instruction")
        if isinstance(system, dict):
            messages.append(("system", _content_text(system.get("parts")), False))
        for content in doc.get("contents") or []:
            if not isinstance(content, dict):
                continue
            parts = content.get("parts") or []
            response_part = any(isinstance(p, dict) and "functionResponse" in p for p in parts)
            messages.append((content.get("role") or "user", _content_text(parts), response_part))
        tool_name = None
        for tool in doc.get("tools") or []:
            decls = tool.get("functionDeclarations") or tool.get("function_declarations") or []
            if decls:
                tool_name = decls[0].get("name")
                break
        mode = ((doc.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        turn = _decide(model, messages, tool_name, mode != "NONE", entry)
        rid = "fake-gemini-%d" % owner._next_id()
        u = turn.usage

        def usage_meta(candidates):
            meta = {"promptTokenCount": u["prompt"], "candidatesTokenCount": candidates,
                    "totalTokenCount": u["total"] if candidates == u["completion"] else u["prompt"] + candidates,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u["prompt"]}]}
            if u["cached"]:
                meta["cachedContentTokenCount"] = u["cached"]
            if u["reasoning"]:
                meta["thoughtsTokenCount"] = u["reasoning"]
            return meta

        def answer(parts, finish, candidates):
            candidate = {"content": {"parts": parts, "role": "model"}}
            if finish:
                candidate["finishReason"] = "STOP"
            candidate["index"] = 0
            return {"candidates": [candidate], "usageMetadata": usage_meta(candidates),
                    "modelVersion": model, "responseId": rid}

        if turn.tool_calls:
            call_parts = [{"functionCall": {"name": name, "args": json.loads(args)}}
                          for name, args in turn.tool_calls]
            chunks = [answer(call_parts, True, u["completion"])]
        else:
            pieces = _pieces(turn.text) or [""]
            chunks, seen = [], 0
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                seen = u["completion"] if last else min(seen + _words(piece), u["completion"])
                chunks.append(answer([{"text": piece}], last, seen))

        content_type = "application/json; charset=UTF-8"
        if not stream:
            whole = chunks[-1] if turn.tool_calls else answer([{"text": turn.text}], True, u["completion"])
            return self._reply(200, content_type, _indented(whole), entry)
        if sse:
            events = [b"data: " + _google(c) + b"\r\n\r\n" for c in chunks]
            return self._stream(events, entry, "text/event-stream")
        # streamGenerateContent without alt=sse: one JSON array, an element per chunk
        events = []
        for i, c in enumerate(chunks):
            events.append((b"[" if i == 0 else b",\r\n") + _indented(c).rstrip(b"\n"))
        events.append(b"]")
        self._stream(events, entry, content_type)


def _split_event(event, split):
    """Two halves of an event. split=True cuts in the middle of the event, never right at a
    line break; an int N cuts after N bytes (negative: counted from the end)."""
    if split is True:
        cut = max(1, (len(event) - 2) // 2)
        while 0 < cut < len(event) - 1 and (event[cut - 1:cut] in (b"\n", b"\r")
                                            or event[cut:cut + 1] in (b"\n", b"\r")):
            cut += 1
    else:
        cut = int(split)
        if cut < 0:
            cut += len(event)
        cut = min(max(cut, 1), len(event) - 1)
    return event[:cut], event[cut:]


# --------------------------------------------------------------------------
# the server object tests use
# --------------------------------------------------------------------------

class FakeProvider(ThreadedServer):
    """Threaded HTTP/1.1 fake LLM provider on a free loopback port (use as a with-block).

    split_events: write each SSE event as two chunks (True: mid-line; int N: after N bytes,
    negative from the end). event_delay: seconds between stream events. require_auth: check
    the dialect's credential headers. models: ids listed by GET .../models.
    """

    handler = _ProviderHandler

    def __init__(self, name="fake-provider", split_events=False, event_delay=0.0,
                 require_auth=True, models=("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")):
        self.name = name
        self.split_events = split_events
        self.event_delay = event_delay
        self.require_auth = require_auth
        self.models = list(models)
        self.split_pause = 0.005
        self.lock = threading.Condition()     # harness handler uses `with owner.lock`
        self.connections = 0                  # counted by the harness handler's setup()
        self.disconnects = 0                  # answers the client abandoned mid-write
        self.stop_event = threading.Event()
        self._requests = []
        self._script = []
        self._ids = itertools.count(1)
        self.server = None
        self.thread = None
        self.port = None

    # -- lifecycle ---------------------------------------------------------------
    def stopping(self):
        self.stop_event.set()  # wake handlers sleeping in scripted delays

    # -- scripting -----------------------------------------------------------------
    def script(self, times=1, **behaviour):
        """Queue a behaviour for the next request (FIFO, one entry per request, any endpoint);
        times=N queues it N times. Keys:
          status=N, body=dict|str|bytes, headers={...}: answer status N with that body (default:
              the endpoint dialect's error body); headers are added to any scripted answer (a
              Content-Type among them replaces the default one).
          delay=s: wait before the response head.  first_token_delay=s: stream head at once,
              first event after s.  event_delay=s: between stream events.
          cut_after=n: stream n events, then close without the terminating chunk.
          reply="text": the answer text.  usage={...}: override token counts (generic keys
              prompt/completion/total/cached/cache_creation/reasoning or the dialect's names).
          close=True: close the connection without answering ("reset": with a TCP RST).
          split_events=True|N: as the constructor option, for this answer."""
        unknown = set(behaviour) - SCRIPT_KEYS
        if unknown:
            raise TypeError("unknown script keys: %s" % ", ".join(sorted(unknown)))
        with self.lock:
            for _ in range(times):
                self._script.append(dict(behaviour))

    def clear(self):
        """Forget recorded requests and queued script entries."""
        with self.lock:
            self._requests.clear()
            self._script.clear()

    @property
    def pending(self):
        """Script entries not yet consumed."""
        with self.lock:
            return len(self._script)

    # -- recorded requests ------------------------------------------------------------
    @property
    def requests(self):
        """Snapshot list of {method, path, headers, body, json, time} in arrival order."""
        with self.lock:
            return list(self._requests)

    def last(self):
        with self.lock:
            return self._requests[-1] if self._requests else None

    def wait_for_requests(self, n, timeout=5.0):
        """Block until at least n requests have arrived; returns the snapshot list.
        Raises TimeoutError (naming what did arrive) after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d requests after %.1fs: %s" % (
                        len(self._requests), n, timeout,
                        ["%s %s" % (r["method"], r["path"]) for r in self._requests]))
                self.lock.wait(left)
            return list(self._requests)

    # -- used by the handler ----------------------------------------------------------
    def _next_id(self):
        with self.lock:
            return next(self._ids)

    def _next_entry(self):
        with self.lock:
            return self._script.pop(0) if self._script else {}

    def _record(self, handler, body):
        headers = {}
        for name, value in handler.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        try:
            doc = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            doc = None
        record = {"method": handler.command, "path": handler.path, "headers": headers,
                  "body": body, "json": doc, "time": time.monotonic()}
        with self.lock:
            self._requests.append(record)
            self.lock.notify_all()
        return record
