#include "llm/providers/bedrock.h"

#include <fmt/format.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <boost/json.hpp>
#include <map>
#include <set>

#include "base/hash.h"
#include "llm/json_answer_tool.h"
#include "llm/json_fields.h"
#include "llm/openai_shapes.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

constexpr size_t kMaxEventBytes = 16u << 20;

std::string hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

std::string sha256Hex(std::string_view data) {
  Sha256 d = sha256(data);
  return hex(d.data(), d.size());
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

uint32_t be32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

uint32_t crc32(std::string_view data) {
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

std::string_view finishFromBedrock(std::string_view reason) {
  if (reason == "max_tokens" || reason == "model_context_window_exceeded") return "length";
  if (reason == "tool_use") return "tool_calls";
  if (reason == "guardrail_intervened" || reason == "content_filtered") return "content_filter";
  return "stop";  // end_turn, stop_sequence
}

Usage usageFromBedrock(const json::object& u) {
  Usage out;
  out.reported = true;
  out.cached = countAt(u, "cacheReadInputTokens");
  out.cache_write = countAt(u, "cacheWriteInputTokens");
  out.prompt = countAt(u, "inputTokens") + out.cached + out.cache_write;
  out.completion = countAt(u, "outputTokens");
  return out;
}

/// OpenAI message content → Converse content blocks.
json::array contentBlocks(const json::value& content) {
  return textAndImageBlocks(content, [](std::string_view url) -> std::optional<json::object> {
    // Converse takes image bytes only: data: URLs (image/png → format "png").
    std::string_view media_type, data;
    if (!splitDataUrl(url, media_type, data) || media_type.substr(0, 6) != "image/") return std::nullopt;
    return json::object{
        {"image", json::object{{"format", media_type.substr(6)}, {"source", json::object{{"bytes", data}}}}}};
  });
}

class BedrockStream final : public ChatStreamDecoder {
 public:
  explicit BedrockStream(std::string model) { stamp_.model = std::move(model); }
  ApiResult feed(std::string_view bytes, std::vector<json::object>& out, Usage& usage) override {
    messages_.clear();
    if (!frames_.feed(bytes, messages_))
      return badProviderAnswer("a malformed event stream: " + frames_.error());
    for (const auto& m : messages_) {
      if (finished_) break;
      if (m.message_type != "event") {
        boost::system::error_code ec;
        json::value v = json::parse(m.payload, ec);
        std::string message =
            !ec && v.is_object() ? std::string(stringAt(v.as_object(), "message")) : m.payload;
        return ApiError{m.event_type == "throttlingException" ? 429 : 502, m.event_type, message, "",
                        m.event_type};
      }
      boost::system::error_code ec;
      json::value v = json::parse(m.payload, ec);
      if (ec || !v.is_object()) return badProviderAnswer("an event that is not a JSON object");
      onEvent(m.event_type, v.as_object(), out, usage);
    }
    return {};
  }
  bool finished() const override { return finished_; }

 private:
  void onEvent(std::string_view type, const json::object& ev, std::vector<json::object>& out, Usage& usage) {
    if (type == "messageStart") {
      stamp_.id = uniqueId("chatcmpl-bedrock-");
      stamp_.created = nowSeconds();
      out.push_back(chunk(stamp_, json::object{{"role", "assistant"}, {"content", ""}}));
    } else if (type == "contentBlockStart") {
      auto* start = objectAt(ev, "start");
      auto* tool = start ? objectAt(*start, "toolUse") : nullptr;
      if (!tool) return;
      int64_t block = static_cast<int64_t>(countAt(ev, "contentBlockIndex"));
      if (stringAt(*tool, "name") == kJsonAnswerTool) {  // response_format: its input streams as content
        json_blocks_.insert(block);
        return;
      }
      tool_index_[block] = next_tool_;
      json::object call = toolCall(stringAt(*tool, "toolUseId"), stringAt(*tool, "name"), "");
      call["index"] = next_tool_++;
      out.push_back(chunk(stamp_, json::object{{"tool_calls", json::array{std::move(call)}}}));
    } else if (type == "contentBlockDelta") {
      auto* delta = objectAt(ev, "delta");
      if (!delta) return;
      if (auto* text = delta->if_contains("text"); text && text->is_string()) {
        out.push_back(chunk(stamp_, json::object{{"content", text->get_string()}}));
      } else if (auto* tool = objectAt(*delta, "toolUse")) {
        const auto block = static_cast<int64_t>(countAt(ev, "contentBlockIndex"));
        if (json_blocks_.count(block)) {
          if (auto part = stringAt(*tool, "input"); !part.empty())
            out.push_back(chunk(stamp_, json::object{{"content", part}}));
          return;
        }
        auto it = tool_index_.find(block);
        if (it == tool_index_.end()) return;
        json::object call{{"index", it->second},
                          {"function", json::object{{"arguments", stringAt(*tool, "input")}}}};
        out.push_back(chunk(stamp_, json::object{{"tool_calls", json::array{std::move(call)}}}));
      }
    } else if (type == "messageStop") {
      stop_ = std::string(finishAfterTools(finishFromBedrock(stringAt(ev, "stopReason")), next_tool_ > 0));
      out.push_back(chunk(stamp_, json::object(), stop_));
    } else if (type == "metadata") {
      if (auto* u = objectAt(ev, "usage")) usage_ = usageFromBedrock(*u);
      usage = usage_;
      out.push_back(usageChunk(stamp_, usage_));
      finished_ = true;  // metadata comes last
    }
  }

  EventStreamParser frames_;
  std::vector<EventStreamMessage> messages_;
  ChunkStamp stamp_;
  Usage usage_;
  std::map<int64_t, int64_t> tool_index_;
  std::set<int64_t> json_blocks_;  ///< content blocks of the response_format tool
  int64_t next_tool_ = 0;
  std::string stop_;
  bool finished_ = false;
};

}  // namespace

std::string uriEncode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

SigV4Output signV4(const SigV4Input& in) {
  SigV4Output out;
  auto headers = in.headers;
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }
  out.canonical_request =
      fmt::format("{}\n{}\n{}\n{}\n{}\n{}", in.method, in.canonical_uri, in.canonical_query,
                  canonical_headers, signed_headers, sha256Hex(in.payload));
  std::string date = in.amz_date.substr(0, 8);
  std::string scope = fmt::format("{}/{}/{}/aws4_request", date, in.region, in.service);
  out.string_to_sign =
      fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", in.amz_date, scope, sha256Hex(out.canonical_request));
  std::string key = hmac("AWS4" + in.secret_key, date);
  key = hmac(key, in.region);
  key = hmac(key, in.service);
  key = hmac(key, "aws4_request");
  std::string sig = hmac(key, out.string_to_sign);
  out.signature = hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  out.authorization = fmt::format("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
                                  in.access_key, scope, signed_headers, out.signature);
  return out;
}

bool EventStreamParser::feed(std::string_view bytes, std::vector<EventStreamMessage>& out) {
  if (!error_.empty()) return false;
  buf_.append(bytes);
  size_t pos = 0;
  auto fail = [&](std::string why) {
    error_ = std::move(why);
    return false;
  };
  while (buf_.size() - pos >= 12) {
    const char* p = buf_.data() + pos;
    uint32_t total = be32(p), headers_len = be32(p + 4);
    if (crc32(std::string_view(p, 8)) != be32(p + 8)) return fail("prelude CRC mismatch");
    if (total < 16 || total > kMaxEventBytes || headers_len > total - 16) return fail("bad message length");
    if (buf_.size() - pos < total) break;
    if (crc32(std::string_view(p, total - 4)) != be32(p + total - 4)) return fail("message CRC mismatch");
    EventStreamMessage m;
    std::string exception_type;
    size_t h = 12, end = 12 + headers_len;
    while (h < end) {
      uint8_t name_len = static_cast<uint8_t>(p[h]);
      if (h + 1 + name_len + 1 > end) return fail("bad header");
      std::string_view name(p + h + 1, name_len);
      h += 1 + name_len;
      uint8_t type = static_cast<uint8_t>(p[h++]);
      size_t value_len;
      switch (type) {
        case 0:
        case 1:
          value_len = 0;
          break;  // bool true / false
        case 2:
          value_len = 1;
          break;  // byte
        case 3:
          value_len = 2;
          break;  // short
        case 4:
          value_len = 4;
          break;  // int
        case 5:
        case 8:
          value_len = 8;
          break;  // long, timestamp
        case 9:
          value_len = 16;
          break;  // uuid
        case 6:
        case 7:  // bytes, string: 2-byte length
          if (h + 2 > end) return fail("bad header");
          value_len = (static_cast<size_t>(static_cast<uint8_t>(p[h])) << 8) | static_cast<uint8_t>(p[h + 1]);
          h += 2;
          break;
        default:
          return fail("unknown header type");
      }
      if (h + value_len > end) return fail("bad header");
      std::string_view value(p + h, value_len);
      h += value_len;
      if (type != 7) continue;
      if (name == ":event-type")
        m.event_type = value;
      else if (name == ":message-type")
        m.message_type = value;
      else if (name == ":exception-type" || name == ":error-code")
        exception_type = value;
    }
    if (m.message_type != "event" && !exception_type.empty()) m.event_type = exception_type;
    m.payload.assign(p + end, total - 4 - end);
    out.push_back(std::move(m));
    pos += total;
  }
  buf_.erase(0, pos);
  if (buf_.size() > kMaxEventBytes) return fail("message over the size limit");
  return true;
}

BedrockCodec::BedrockCodec(const llm::ProviderConfig& p)
    : host_(p.host),
      base_path_(p.base_path),
      region_(p.region),
      access_key_(p.access_key_id),
      secret_key_(p.secret_access_key),
      session_token_(p.session_token) {}

void BedrockCodec::sign(std::string_view model, std::string_view action, ProviderRequest& out) const {
  // The request path carries the model id encoded once; SigV4 encodes each segment again.
  std::string encoded_model = uriEncode(model, false);
  out.path = fmt::format("{}/model/{}/{}", base_path_, encoded_model, action);
  auto now = std::chrono::system_clock::to_time_t(now_());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char amz_date[17];
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  SigV4Input sig;
  sig.method = "POST";
  sig.canonical_uri = uriEncode(out.path, true);
  sig.headers = {{"content-type", "application/json"}, {"host", host_}, {"x-amz-date", amz_date}};
  if (!session_token_.empty()) sig.headers.emplace_back("x-amz-security-token", session_token_);
  sig.payload = out.body;
  sig.amz_date = amz_date;
  sig.region = region_;
  sig.service = "bedrock";
  sig.access_key = access_key_;
  sig.secret_key = secret_key_;
  auto signed_request = signV4(sig);
  out.headers.emplace_back("X-Amz-Date", amz_date);
  if (!session_token_.empty()) out.headers.emplace_back("X-Amz-Security-Token", session_token_);
  out.headers.emplace_back("Authorization", signed_request.authorization);
}

ApiResult BedrockCodec::chatRequest(const ChatRequest& req, std::string_view model,
                                    ProviderRequest& out) const {
  if (auto refused = oneChoiceOnly(req, "Amazon Bedrock"); !refused.ok()) return refused;
  const json::object& in = req.body;
  json::object body;
  json::array system, messages;
  for (const auto& mv : in.at("messages").as_array()) {
    const auto& m = mv.as_object();
    auto role = stringAt(m, "role");
    const json::value* content = m.if_contains("content");
    if (role == "system" || role == "developer") {
      std::string text = content ? contentText(*content) : "";
      if (!text.empty()) system.push_back(json::object{{"text", text}});
    } else if (role == "user") {
      if (content) appendTurn(messages, "user", contentBlocks(*content));
    } else if (role == "assistant") {
      json::array blocks = content ? contentBlocks(*content) : json::array();
      if (auto* calls = m.if_contains("tool_calls"); calls && calls->is_array())
        for (const auto& c : calls->as_array()) {
          const auto& co = c.as_object();
          const auto& fn = co.at("function").as_object();
          boost::system::error_code ec;
          json::value input = json::parse(stringAt(fn, "arguments"), ec);
          if (ec || !input.is_object()) input = json::object();
          blocks.push_back(json::object{{"toolUse", json::object{{"toolUseId", stringAt(co, "id")},
                                                                 {"name", stringAt(fn, "name")},
                                                                 {"input", std::move(input)}}}});
        }
      appendTurn(messages, "assistant", std::move(blocks));
    } else if (role == "tool") {
      json::object result{
          {"toolUseId", stringAt(m, "tool_call_id")},
          {"content", json::array{json::object{{"text", content ? contentText(*content) : ""}}}}};
      appendTurn(messages, "user", json::array{json::object{{"toolResult", std::move(result)}}});
    }
  }
  body["messages"] = std::move(messages);
  if (!system.empty()) body["system"] = std::move(system);
  json::object config;
  if (req.max_output) config["maxTokens"] = req.max_output;
  if (auto* t = in.if_contains("temperature"); t && t->is_number()) config["temperature"] = *t;
  if (auto* p = in.if_contains("top_p"); p && p->is_number()) config["topP"] = *p;
  if (auto* stop = in.if_contains("stop")) {
    if (stop->is_string())
      config["stopSequences"] = json::array{*stop};
    else if (stop->is_array())
      config["stopSequences"] = *stop;
  }
  if (!config.empty()) body["inferenceConfig"] = std::move(config);
  if (auto* tools = in.if_contains("tools"); tools && tools->is_array() && !tools->as_array().empty()) {
    json::array specs;
    for (const auto& t : tools->as_array()) {
      const auto& fn = t.as_object().at("function").as_object();
      json::object spec{{"name", stringAt(fn, "name")}};
      if (auto d = stringAt(fn, "description"); !d.empty()) spec["description"] = d;
      auto* params = fn.if_contains("parameters");
      spec["inputSchema"] = json::object{
          {"json", params && params->is_object() ? *params : json::value(json::object{{"type", "object"}})}};
      specs.push_back(json::object{{"toolSpec", std::move(spec)}});
    }
    json::object tool_config{{"tools", std::move(specs)}};
    if (auto* tc = in.if_contains("tool_choice")) {
      if (tc->is_string() && tc->get_string() == "required")
        tool_config["toolChoice"] = json::object{{"any", json::object()}};
      else if (tc->is_object())
        tool_config["toolChoice"] = json::object{
            {"tool", json::object{{"name", stringAt(tc->as_object().at("function").as_object(), "name")}}}};
      else if (!(tc->is_string() && tc->get_string() == "none"))
        tool_config["toolChoice"] = json::object{{"auto", json::object()}};
    }
    // tool_choice "none": Converse has no such choice; the tools stay declared but unused is
    // not guaranteed, so they are left out instead.
    if (!(in.contains("tool_choice") && in.at("tool_choice") == "none"))
      body["toolConfig"] = std::move(tool_config);
  }
  std::optional<JsonAnswerTool> json_tool;
  if (auto refused = jsonAnswerTool(in, "Amazon Bedrock", json_tool); !refused.ok()) return refused;
  if (json_tool) {
    json::object spec{{"name", kJsonAnswerTool},
                      {"description", json_tool->description},
                      {"inputSchema", json::object{{"json", json_tool->schema}}}};
    body["toolConfig"] =
        json::object{{"tools", json::array{json::object{{"toolSpec", std::move(spec)}}}},
                     {"toolChoice", json::object{{"tool", json::object{{"name", kJsonAnswerTool}}}}}};
  }
  out.body = json::serialize(body);

  sign(model, req.stream ? "converse-stream" : "converse", out);
  if (req.stream) out.headers.emplace_back("Accept", "application/vnd.amazon.eventstream");
  return {};
}

ApiResult BedrockCodec::chatResponse(std::string_view text, std::string& out, Usage& usage) const {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return badProviderAnswer("an answer that is not a JSON object");
  const auto& r = v.as_object();
  const json::object* output_message =
      objectAt(r, "output") ? objectAt(*objectAt(r, "output"), "message") : nullptr;
  if (!output_message || !output_message->contains("content") || !output_message->at("content").is_array())
    return badProviderAnswer("an answer without output.message.content");
  AssistantAnswer answer;
  if (auto* output = objectAt(r, "output"))
    if (auto* msg = objectAt(*output, "message"))
      if (auto* blocks = msg->if_contains("content"); blocks && blocks->is_array())
        for (const auto& b : blocks->as_array()) {
          auto* bo = b.if_object();
          if (!bo) continue;
          if (auto* t = bo->if_contains("text"); t && t->is_string())
            answer.addText(t->get_string());
          else if (auto* tool = objectAt(*bo, "toolUse"))
            answer.addToolUse(stringAt(*tool, "toolUseId"), stringAt(*tool, "name"),
                              tool->if_contains("input"));
        }
  if (auto* u = objectAt(r, "usage")) usage = usageFromBedrock(*u);
  ChunkStamp stamp{uniqueId("chatcmpl-bedrock-"), "", nowSeconds()};
  const bool called = !answer.tool_calls.empty();
  json::object message = answer.message();
  auto finish = finishAfterTools(finishFromBedrock(stringAt(r, "stopReason")), called);
  out = json::serialize(completion(stamp, std::move(message), finish, usage));
  return {};
}

std::unique_ptr<ChatStreamDecoder> BedrockCodec::chatStream() const {
  return std::make_unique<BedrockStream>("");
}

ApiResult BedrockCodec::embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                                          ProviderRequest& out) const {
  // InvokeModel bodies are the model family's own: Amazon Titan (one text a call) and Cohere
  // (a batch of texts) are translated.
  const json::value& input = req.body.at("input");
  std::vector<std::string_view> texts;
  if (input.is_string())
    texts.push_back(input.get_string());
  else
    for (const auto& item : input.as_array()) {
      if (!item.is_string())
        return ApiError{400, "invalid_request_error",
                        "Bedrock embeddings take text only: 'input' must be strings", "input",
                        "invalid_value"};
      texts.push_back(item.get_string());
    }
  json::object body;
  if (model.rfind("amazon.titan-embed", 0) == 0) {
    if (texts.size() != 1)
      return ApiError{
          400, "invalid_request_error",
          fmt::format("Amazon Titan embeds one text per call, this request has {}: send one string "
                      "(or use a Cohere embedding model for batches)",
                      texts.size()),
          "input", "invalid_value"};
    body["inputText"] = texts[0];
    if (auto* dims = req.body.if_contains("dimensions"); dims && dims->is_int64()) body["dimensions"] = *dims;
  } else if (model.rfind("cohere.embed", 0) == 0) {
    json::array list;
    for (auto t : texts) list.push_back(json::string(t));
    body["texts"] = std::move(list);
    body["input_type"] = "search_document";
  } else {
    return ApiError{
        400, "invalid_request_error",
        fmt::format("Bedrock embeddings are translated for Amazon Titan (amazon.titan-embed-*) and Cohere "
                    "(cohere.embed-*) models, not '{}'",
                    model),
        "model", "embeddings_unsupported"};
  }
  out.body = json::serialize(body);
  sign(model, "invoke", out);
  return {};
}

ApiResult BedrockCodec::embeddingsResponse(std::string_view text, std::string& out, Usage& usage) const {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return badProviderAnswer("an embeddings answer that is not a JSON object");
  const auto& r = v.as_object();
  json::array data;
  auto add = [&](const json::value& vector) {
    data.push_back(json::object{
        {"object", "embedding"}, {"index", static_cast<int64_t>(data.size())}, {"embedding", vector}});
  };
  if (auto* one = r.if_contains("embedding"); one && one->is_array()) {  // Titan
    add(*one);
    if (r.contains("inputTextTokenCount")) {
      usage.prompt = countAt(r, "inputTextTokenCount");
      usage.reported = true;
    }
  } else if (auto* many = r.if_contains("embeddings")) {  // Cohere: a list, or {"float": [...]}
    const json::value* list = many;
    if (many->is_object()) list = many->as_object().if_contains("float");
    if (!list || !list->is_array())
      return badProviderAnswer("a Cohere embeddings answer without float vectors");
    for (const auto& e : list->as_array()) add(e);
  } else {
    return badProviderAnswer("an embeddings answer without 'embedding' or 'embeddings'");
  }
  json::object answer{{"object", "list"}, {"data", std::move(data)}};
  if (usage.reported)
    answer["usage"] = json::object{{"prompt_tokens", usage.prompt}, {"total_tokens", usage.prompt}};
  out = json::serialize(answer);
  return {};
}

ApiError BedrockCodec::error(int status, std::string_view body) const {
  ApiError e = statusError(status);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    e.message = std::string(stringAt(v.as_object(), "message"));
    if (e.message.empty()) e.message = std::string(stringAt(v.as_object(), "Message"));
  }
  if (e.message.empty()) e.message = providerStatusMessage(status, body);
  return e;
}

}  // namespace ganglion::llm
