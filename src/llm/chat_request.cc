#include "llm/chat_request.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <initializer_list>
#include <memory>

#include "base/bounded_json.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

std::string_view kindOf(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a decimal";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

/// Collects the first problem found, in OpenAI's words.
class Checker {
 public:
  explicit Checker(ApiResult& err) : err_(err) {}
  bool failed() const { return !err_.ok(); }

  bool missing(const std::string& param) {
    return fail(param, fmt::format("Missing required parameter: '{}'.", param), "missing_required_parameter");
  }
  bool wrongType(const std::string& param, std::string_view expected, const json::value& got) {
    return fail(
        param,
        fmt::format("Invalid type for '{}': expected {}, but got {} instead.", param, expected, kindOf(got)),
        "invalid_type");
  }
  bool tooLong(const std::string& param, size_t max, size_t got) {
    return fail(
        param,
        fmt::format(
            "Invalid '{}': array too long. Expected an array with maximum length {}, but got an array "
            "with length {} instead.",
            param, max, got),
        "array_above_max_length");
  }
  bool badValue(const std::string& param, std::string_view value, std::string_view supported) {
    return fail(param, fmt::format("Invalid value: '{}'. Supported values are: {}.", value, supported),
                "invalid_value");
  }
  bool fail(const std::string& param, std::string message, std::string_view code) {
    if (err_.ok())
      err_ = ApiError{400, "invalid_request_error", std::move(message), param, std::string(code)};
    return false;
  }

  /// A string field; absent is fine unless `required`.
  const json::string* str(const json::object& o, std::string_view key, const std::string& param,
                          bool required = false) {
    auto it = o.find(key);
    if (it == o.end()) {
      if (required) missing(param);
      return nullptr;
    }
    if (auto* s = it->value().if_string()) return s;
    wrongType(param, "a string", it->value());
    return nullptr;
  }
  std::optional<bool> boolean(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return std::nullopt;
    if (auto* b = it->value().if_bool()) return *b;
    wrongType(std::string(key), "a boolean", it->value());
    return std::nullopt;
  }
  /// A number within [lo, hi]; `integer` also rejects decimals.
  std::optional<double> number(const json::object& o, std::string_view key, const std::string& param,
                               double lo, double hi, bool integer) {
    auto it = o.find(key);
    if (it == o.end() || it->value().is_null()) return std::nullopt;
    const json::value& v = it->value();
    double d;
    if (v.is_int64())
      d = static_cast<double>(v.get_int64());
    else if (v.is_uint64())
      d = static_cast<double>(v.get_uint64());
    else if (v.is_double() && !integer)
      d = v.get_double();
    else {
      wrongType(param, integer ? "an integer" : "a number", v);
      return std::nullopt;
    }
    if (d < lo) {
      fail(param,
           fmt::format("Invalid '{}': {} below minimum value. Expected a value >= {}, but got {} instead.",
                       param, integer ? "integer" : "decimal", lo, d),
           integer ? "integer_below_min_value" : "decimal_below_min_value");
      return std::nullopt;
    }
    if (d > hi) {
      fail(param,
           fmt::format("Invalid '{}': {} above maximum value. Expected a value <= {}, but got {} instead.",
                       param, integer ? "integer" : "decimal", hi, d),
           integer ? "integer_above_max_value" : "decimal_above_max_value");
      return std::nullopt;
    }
    return d;
  }

 private:
  ApiResult& err_;
};

bool oneOf(std::string_view v, std::initializer_list<std::string_view> allowed) {
  for (auto a : allowed)
    if (v == a) return true;
  return false;
}

/// Tokens of a prompt, estimated (for usage the provider did not report) and bounded (for
/// reservations).
struct PromptSize {
  std::string unbounded;  ///< the first input the provider expands on its side
  size_t text_bytes = 0;  ///< text, framing and tool definitions
  uint64_t estimate = 0;  ///< non-text parts (images) as estimated tokens
  uint64_t bound = 0;     ///< non-text parts as the most they may cost

  uint64_t estimateTokens() const { return llm::estimateTokens(text_bytes) + estimate; }
  uint64_t boundTokens() const { return llm::boundTokens(text_bytes) + bound; }
};

/// Checks one content part of a message and adds its size to `size`.
void checkPart(Checker& c, const json::value& part, const std::string& param, std::string_view role,
               PromptSize& size) {
  auto* o = part.if_object();
  if (!o) return (void)c.wrongType(param, "an object", part);
  auto* type = c.str(*o, "type", param + ".type", true);
  if (!type) return;
  if (*type == "text" || (*type == "refusal" && role == "assistant")) {
    auto* text = c.str(*o, *type == "text" ? "text" : "refusal", param + "." + std::string(*type), true);
    if (text) size.text_bytes += text->size();
    return;
  }
  if (role != "user") {
    c.badValue(param + ".type", *type, "'text'" + std::string(role == "assistant" ? " and 'refusal'" : ""));
    return;
  }
  if (*type == "image_url") {
    auto it = o->find("image_url");
    if (it == o->end()) return (void)c.missing(param + ".image_url");
    auto* img = it->value().if_object();
    if (!img) return (void)c.wrongType(param + ".image_url", "an object", it->value());
    c.str(*img, "url", param + ".image_url.url", true);
    bool low = false;
    if (auto* detail = c.str(*img, "detail", param + ".image_url.detail")) {
      if (!oneOf(*detail, {"auto", "low", "high"}))
        c.badValue(param + ".image_url.detail", *detail, "'auto', 'low', and 'high'");
      low = *detail == "low";
    }
    size.estimate += 85;  // an image costs at least the low-detail tile
    size.bound += low ? kLowDetailImageTokenBound : kImageTokenBound;
    return;
  }
  if (*type == "input_audio" || *type == "file") {
    // Inline audio or a document: no more tokens than the bytes that carry it. A file by id is
    // read by the provider: nothing here bounds it.
    auto* file = o->if_contains("file");
    if (file && file->is_object() && file->as_object().contains("file_id") && size.unbounded.empty())
      size.unbounded = param + ".file.file_id";
    const size_t bytes = json::serialize(part).size();
    size.bound += boundTokens(bytes);
    size.estimate += estimateTokens(bytes);  // no better guess of what the provider makes of it
    return;
  }
  c.badValue(param + ".type", *type, "'text', 'image_url', 'input_audio', and 'file'");
}

void checkToolCalls(Checker& c, const json::value& v, const std::string& param) {
  auto* calls = v.if_array();
  if (!calls) return (void)c.wrongType(param, "an array", v);
  for (size_t i = 0; i < calls->size() && !c.failed(); ++i) {
    std::string p = fmt::format("{}[{}]", param, i);
    auto* call = (*calls)[i].if_object();
    if (!call) return (void)c.wrongType(p, "an object", (*calls)[i]);
    c.str(*call, "id", p + ".id", true);
    if (auto* type = c.str(*call, "type", p + ".type", true); type && *type != "function")
      c.badValue(p + ".type", *type, "'function'");
    auto fn = call->find("function");
    if (fn == call->end()) return (void)c.missing(p + ".function");
    auto* f = fn->value().if_object();
    if (!f) return (void)c.wrongType(p + ".function", "an object", fn->value());
    c.str(*f, "name", p + ".function.name", true);
    c.str(*f, "arguments", p + ".function.arguments", true);
  }
}

/// Checks the messages array and adds the size of what it carries to `size`.
void checkMessages(Checker& c, const json::object& body, PromptSize& size) {
  auto it = body.find("messages");
  if (it == body.end()) return (void)c.missing("messages");
  auto* msgs = it->value().if_array();
  if (!msgs) return (void)c.wrongType("messages", "an array", it->value());
  if (msgs->size() > kMaxMessages) return (void)c.tooLong("messages", kMaxMessages, msgs->size());
  if (msgs->empty())
    return (void)c.fail("messages",
                        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
                        "an empty array instead.",
                        "empty_array");
  size_t& text = size.text_bytes;
  for (size_t i = 0; i < msgs->size() && !c.failed(); ++i) {
    std::string p = fmt::format("messages[{}]", i);
    auto* m = (*msgs)[i].if_object();
    if (!m) return (void)c.wrongType(p, "an object", (*msgs)[i]);
    auto* role = c.str(*m, "role", p + ".role", true);
    if (!role) return;
    if (!oneOf(*role, {"system", "developer", "user", "assistant", "tool", "function"}))
      return (void)c.badValue(p + ".role", *role,
                              "'system', 'assistant', 'user', 'function', 'tool', and 'developer'");
    text += 16;  // per-message framing tokens, roughly
    auto content = m->find("content");
    bool has_tool_calls = m->contains("tool_calls") && !m->at("tool_calls").is_null();
    if (content == m->end() || content->value().is_null()) {
      if (*role != "assistant" || (!has_tool_calls && !m->contains("function_call") && !m->contains("audio")))
        return (void)c.missing(p + ".content");
    } else if (auto* s = content->value().if_string()) {
      text += s->size();
    } else if (auto* parts = content->value().if_array()) {
      if (parts->size() > kMaxPartsPerMessage)
        return (void)c.tooLong(p + ".content", kMaxPartsPerMessage, parts->size());
      for (size_t j = 0; j < parts->size() && !c.failed(); ++j)
        checkPart(c, (*parts)[j], fmt::format("{}.content[{}]", p, j), *role, size);
    } else {
      return (void)c.wrongType(p + ".content", "one of a string or array of objects", content->value());
    }
    if (*role == "tool") c.str(*m, "tool_call_id", p + ".tool_call_id", true);
    if (has_tool_calls) {
      if (*role != "assistant")
        return (void)c.fail(p + ".tool_calls", "Only assistant messages may carry 'tool_calls'.",
                            "invalid_value");
      checkToolCalls(c, m->at("tool_calls"), p + ".tool_calls");
      text += json::serialize(m->at("tool_calls")).size();
    }
    c.str(*m, "name", p + ".name");
    // Every other field reaches the model as text too (name, tool_call_id, refusal, a legacy
    // function_call, fields the gateway does not know): bounded by its bytes, as the count
    // (llm/tokenizer/prompt_count.cc) counts it.
    for (const auto& [key, value] : *m) {
      if (key == "role" || key == "content" || key == "tool_calls" || value.is_null()) continue;
      text += value.is_string() ? value.get_string().size() : json::serialize(value).size();
    }
    if (auto* audio = m->if_contains("audio"); audio && audio->is_object() && size.unbounded.empty())
      size.unbounded = p + ".audio";  // an earlier answer's audio, kept by the provider
  }
}

void checkTools(Checker& c, const json::object& body) {
  if (auto it = body.find("tools"); it != body.end() && !it->value().is_null()) {
    auto* tools = it->value().if_array();
    if (!tools) return (void)c.wrongType("tools", "an array", it->value());
    for (size_t i = 0; i < tools->size() && !c.failed(); ++i) {
      std::string p = fmt::format("tools[{}]", i);
      auto* t = (*tools)[i].if_object();
      if (!t) return (void)c.wrongType(p, "an object", (*tools)[i]);
      if (auto* type = c.str(*t, "type", p + ".type", true); type && *type != "function")
        return (void)c.badValue(p + ".type", *type, "'function'");
      auto fn = t->find("function");
      if (fn == t->end()) return (void)c.missing(p + ".function");
      auto* f = fn->value().if_object();
      if (!f) return (void)c.wrongType(p + ".function", "an object", fn->value());
      c.str(*f, "name", p + ".function.name", true);
      if (auto params = f->find("parameters"); params != f->end() && !params->value().is_object())
        return (void)c.wrongType(p + ".function.parameters", "an object", params->value());
    }
  }
  if (auto it = body.find("tool_choice"); it != body.end() && !it->value().is_null()) {
    if (auto* s = it->value().if_string()) {
      if (!oneOf(*s, {"none", "auto", "required"}))
        c.badValue("tool_choice", *s, "'none', 'auto', and 'required'");
    } else if (auto* o = it->value().if_object()) {
      auto fn = o->find("function");
      if (fn == o->end() || !fn->value().is_object()) return (void)c.missing("tool_choice.function");
      c.str(fn->value().get_object(), "name", "tool_choice.function.name", true);
    } else {
      c.wrongType("tool_choice", "a string or an object", it->value());
    }
  }
}

void checkResponseFormat(Checker& c, const json::object& body) {
  auto it = body.find("response_format");
  if (it == body.end() || it->value().is_null()) return;
  auto* o = it->value().if_object();
  if (!o) return (void)c.wrongType("response_format", "an object", it->value());
  auto* type = c.str(*o, "type", "response_format.type", true);
  if (!type) return;
  if (!oneOf(*type, {"text", "json_object", "json_schema"}))
    return (void)c.badValue("response_format.type", *type, "'text', 'json_object', and 'json_schema'");
  if (*type == "json_schema") {
    auto js = o->find("json_schema");
    if (js == o->end()) return (void)c.missing("response_format.json_schema");
    auto* schema = js->value().if_object();
    if (!schema) return (void)c.wrongType("response_format.json_schema", "an object", js->value());
    c.str(*schema, "name", "response_format.json_schema.name", true);
    if (auto s = schema->find("schema"); s != schema->end() && !s->value().is_object())
      c.wrongType("response_format.json_schema.schema", "an object", s->value());
  }
}

}  // namespace

ApiResult parseJsonObject(std::string_view text, json::object& out) {
  // The whole parsed body in a few large blocks, released together when the request ends
  // (one malloc per node fragments the worker's heap, which then stays resident).
  BoundedJson parsed = parseBoundedJson(text, JsonBounds{kMaxJsonContainers, kMaxJsonValues, kMaxJsonDepth},
                                        json::make_shared_resource<json::monotonic_resource>());
  switch (parsed.fault) {
    case JsonFault::kNone:
      break;
    case JsonFault::kTooManyContainers:
      return ApiError{
          400, "invalid_request_error",
          fmt::format("The request body holds more than {} JSON objects and arrays; split the request.",
                      kMaxJsonContainers),
          "", "request_too_complex"};
    case JsonFault::kTooManyValues:
      return ApiError{
          400, "invalid_request_error",
          fmt::format("The request body holds more than {} JSON values; split the request.", kMaxJsonValues),
          "", "request_too_complex"};
    case JsonFault::kTooDeep:
      return ApiError{400, "invalid_request_error",
                      fmt::format("The JSON body of your request nests deeper than {} levels (at byte {}).",
                                  kMaxJsonDepth, parsed.at),
                      "", "invalid_json"};
    case JsonFault::kSyntax:
    case JsonFault::kDuplicateKey:  // not asked for here: the last of two keys counts, as at OpenAI
      return ApiError{400, "invalid_request_error",
                      fmt::format("We could not parse the JSON body of your request: {} at byte {}.",
                                  parsed.reason, parsed.at),
                      "", "invalid_json"};
  }
  json::value& v = parsed.value;
  if (!v.is_object())
    return ApiError{400, "invalid_request_error",
                    fmt::format("The request body must be a JSON object, not {}.", kindOf(v)), "",
                    "invalid_json"};
  // Moved, not copied, only when both sides share one storage: `out` takes the parse's.
  std::destroy_at(&out);
  std::construct_at(&out, std::move(v.get_object()));
  return {};
}

ApiResult parseChatRequest(std::string_view text, ChatRequest& out) {
  out = ChatRequest{};
  if (auto err = parseJsonObject(text, out.body); !err.ok()) return err;
  ApiResult err;
  Checker c(err);
  const auto& b = out.body;
  if (auto* model = c.str(b, "model", "model", true)) out.model = *model;
  if (c.failed()) return err;
  PromptSize size;
  checkMessages(c, b, size);
  if (c.failed()) return err;
  out.stream = c.boolean(b, "stream").value_or(false);
  if (auto it = b.find("stream_options"); it != b.end() && !it->value().is_null()) {
    auto* so = it->value().if_object();
    if (!so) return c.wrongType("stream_options", "an object", it->value()), err;
    if (!out.stream)
      return c.fail("stream_options",
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    "invalid_value"),
             err;
    if (auto u = c.boolean(*so, "include_usage")) out.include_usage = *u;
  }
  c.number(b, "temperature", "temperature", 0, 2, false);
  c.number(b, "top_p", "top_p", 0, 1, false);
  c.number(b, "presence_penalty", "presence_penalty", -2, 2, false);
  c.number(b, "frequency_penalty", "frequency_penalty", -2, 2, false);
  if (auto n = c.number(b, "n", "n", 1, 128, true)) out.choices = static_cast<uint32_t>(*n);
  c.number(b, "seed", "seed", -9.3e18, 9.3e18, true);
  c.number(b, "top_logprobs", "top_logprobs", 0, 20, true);
  c.boolean(b, "logprobs");
  c.boolean(b, "parallel_tool_calls");
  c.str(b, "user", "user");
  for (std::string_view key : {"max_completion_tokens", "max_tokens"})
    if (auto v = c.number(b, key, std::string(key), 1, 1e9, true); v && !out.max_output)
      out.max_output = static_cast<uint64_t>(*v);
  if (auto it = b.find("stop"); it != b.end() && !it->value().is_null()) {
    if (auto* arr = it->value().if_array()) {
      if (arr->size() > 4)
        c.fail("stop", "Invalid 'stop': array too long. Expected an array with maximum length 4.",
               "array_above_max_length");
      for (size_t i = 0; i < arr->size() && !c.failed(); ++i)
        if (!(*arr)[i].is_string()) c.wrongType(fmt::format("stop[{}]", i), "a string", (*arr)[i]);
    } else if (!it->value().is_string()) {
      c.wrongType("stop", "a string or an array of strings", it->value());
    }
  }
  if (auto it = b.find("logit_bias"); it != b.end() && !it->value().is_null() && !it->value().is_object())
    c.wrongType("logit_bias", "an object", it->value());
  checkTools(c, b);
  checkResponseFormat(c, b);
  if (c.failed()) return err;
  // Tool definitions and a JSON schema reach the model as prompt text too.
  for (std::string_view key : {"tools", "response_format"})
    if (auto it = b.find(key); it != b.end() && !it->value().is_null())
      size.text_bytes += json::serialize(it->value()).size();
  out.prompt_estimate = size.estimateTokens();
  out.media_estimate = size.estimate;
  out.prompt_bound = size.boundTokens();
  out.unbounded = std::move(size.unbounded);
  return {};
}

ApiResult parseEmbeddingsRequest(std::string_view text, EmbeddingsRequest& out) {
  out = EmbeddingsRequest{};
  if (auto err = parseJsonObject(text, out.body); !err.ok()) return err;
  ApiResult err;
  Checker c(err);
  if (auto* model = c.str(out.body, "model", "model", true)) out.model = *model;
  if (c.failed()) return err;
  auto it = out.body.find("input");
  if (it == out.body.end()) return c.missing("input"), err;
  const json::value& in = it->value();
  if (auto* s = in.if_string()) {
    out.prompt_estimate = estimateTokens(s->size());
    out.prompt_bound = boundTokens(s->size());
  } else if (auto* arr = in.if_array()) {
    if (arr->empty())
      return c.fail("input",
                    "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty "
                    "array instead.",
                    "empty_array"),
             err;
    if (arr->size() > 2048)
      return c.fail("input", "Invalid 'input': array too long. Expected an array with maximum length 2048.",
                    "array_above_max_length"),
             err;
    for (size_t i = 0; i < arr->size(); ++i) {
      const auto& item = (*arr)[i];
      uint64_t tokens;
      if (auto* s = item.if_string()) {
        out.prompt_estimate += estimateTokens(s->size());
        out.prompt_bound += boundTokens(s->size());
        continue;
      }
      if (item.is_int64() || item.is_uint64())
        tokens = 1;
      else if (auto* toks = item.if_array())
        tokens = toks->size();
      else
        return c.wrongType(fmt::format("input[{}]", i), "a string, a token or an array of tokens", item), err;
      out.prompt_estimate += tokens;  // token ids: counted exactly
      out.prompt_bound += tokens;
    }
  } else {
    return c.wrongType("input", "a string or an array", in), err;
  }
  if (auto* fmt_ = c.str(out.body, "encoding_format", "encoding_format"))
    if (!oneOf(*fmt_, {"float", "base64"})) c.badValue("encoding_format", *fmt_, "'float' and 'base64'");
  c.number(out.body, "dimensions", "dimensions", 1, 1e6, true);
  c.str(out.body, "user", "user");
  return err;
}

ApiResult oneChoiceOnly(const ChatRequest& req, std::string_view provider) {
  auto* n = req.body.if_contains("n");
  if (!n || !n->is_int64() || n->as_int64() <= 1) return {};
  return ApiError{400, "invalid_request_error",
                  fmt::format("'n' must be 1 for this model: {} returns one choice per call.", provider), "n",
                  "unsupported_value"};
}

}  // namespace ganglion::llm
