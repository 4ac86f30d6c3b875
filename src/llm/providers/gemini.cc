#include "llm/providers/gemini.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <map>

#include "http/sse.h"
#include "llm/json_fields.h"
#include "llm/openai_shapes.h"
#include "llm/providers/sse_json.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

/// A MIME type guessed from a URL's extension (fileData needs one).
std::string_view mimeFromUrl(std::string_view url) {
  auto ends = [&](std::string_view ext) {
    return url.size() >= ext.size() && url.substr(url.size() - ext.size()) == ext;
  };
  if (ends(".png")) return "image/png";
  if (ends(".webp")) return "image/webp";
  if (ends(".gif")) return "image/gif";
  if (ends(".pdf")) return "application/pdf";
  return "image/jpeg";
}

json::array partsOf(const json::value& content) {
  return textAndImageBlocks(content, [](std::string_view url) -> std::optional<json::object> {
    std::string_view media_type, data;
    if (splitDataUrl(url, media_type, data))
      return json::object{{"inlineData", json::object{{"mimeType", media_type}, {"data", data}}}};
    return json::object{{"fileData", json::object{{"mimeType", mimeFromUrl(url)}, {"fileUri", url}}}};
  });
}

json::value parseObjectOr(std::string_view text, json::value fallback) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return fallback;
  return v;
}

/// What one GenerateContentResponse carries, in OpenAI terms.
struct Candidate {
  AssistantAnswer
      answer;  ///< its tool calls carry an "index" (for stream chunks); ids made up: Gemini has none
  std::string finish;
};

/// The first candidate of a GenerateContentResponse, or null.
const json::object* firstCandidate(const json::object& response) {
  auto* cands = response.if_contains("candidates");
  if (!cands || !cands->is_array() || cands->as_array().empty()) return nullptr;
  return cands->as_array()[0].if_object();
}

Candidate readCandidate(const json::object* cand, int64_t& next_call) {
  Candidate c;
  if (!cand) return c;
  if (auto* content = objectAt(*cand, "content"))
    if (auto* parts = content->if_contains("parts"); parts && parts->is_array())
      for (const auto& p : parts->as_array()) {
        auto* po = p.if_object();
        if (!po) continue;
        if (auto* thought = po->if_contains("thought"); thought && thought->is_bool() && thought->get_bool())
          continue;
        if (auto* t = po->if_contains("text"); t && t->is_string()) {
          c.answer.addText(t->get_string());
        } else if (auto* fc = objectAt(*po, "functionCall")) {
          // Gemini's calls often carry no id: a made-up one must differ from every other turn's,
          // since the client returns results by id.
          std::string id = stringAt(*fc, "id").empty() ? uniqueId("call_") : std::string(stringAt(*fc, "id"));
          auto* args = fc->if_contains("args");
          json::object call =
              toolCall(id, stringAt(*fc, "name"), args ? json::serialize(*args) : std::string("{}"));
          call["index"] = next_call++;
          c.answer.tool_calls.push_back(std::move(call));
        }
      }
  c.finish = std::string(stringAt(*cand, "finishReason"));
  return c;
}

class GeminiStream final : public ChatStreamDecoder {
 public:
  ApiResult feed(std::string_view bytes, std::vector<json::object>& out, Usage& usage) override {
    return feedJsonEvents(
        sse_, bytes, [&] { return finished_; },
        [&](const json::object& ev, ApiResult& err) {
          if (auto* e = objectAt(ev, "error")) {
            err = ApiError{502, std::string(stringAt(*e, "status")), std::string(stringAt(*e, "message")), "",
                           std::string(stringAt(*e, "status"))};
            return;
          }
          if (!started_) {
            stamp_.id = idOr("chatcmpl-", stringAt(ev, "responseId"));
            stamp_.model = std::string(stringAt(ev, "modelVersion"));
            stamp_.created = nowSeconds();
            out.push_back(chunk(stamp_, json::object{{"role", "assistant"}, {"content", ""}}));
            started_ = true;
          }
          if (auto* u = objectAt(ev, "usageMetadata")) {
            usage_ = usageFromGemini(*u);  // running totals
            usage.prompt = usage_.prompt;  // known from the first event: the relay can report it early
          }
          Candidate c = readCandidate(firstCandidate(ev), next_call_);
          if (!c.answer.text.empty()) out.push_back(chunk(stamp_, json::object{{"content", c.answer.text}}));
          if (!c.answer.tool_calls.empty()) {
            called_ = true;
            // One call per chunk, as OpenAI streams them: some clients (LlamaIndex.TS) read only
            // the first entry of a chunk's tool_calls.
            for (auto& call : c.answer.tool_calls)
              out.push_back(chunk(stamp_, json::object{{"tool_calls", json::array{std::move(call)}}}));
          }
          if (!c.finish.empty()) {
            out.push_back(chunk(stamp_, json::object(), finishFromGemini(c.finish, called_)));
            usage_.reported = true;
            usage = usage_;
            out.push_back(usageChunk(stamp_, usage_));
            finished_ = true;
          }
        });
  }
  bool finished() const override { return finished_; }

 private:
  http::SseParser sse_;
  ChunkStamp stamp_;
  Usage usage_;
  int64_t next_call_ = 0;
  bool started_ = false, called_ = false, finished_ = false;
};

}  // namespace

std::string_view finishFromGemini(std::string_view reason, bool tools) {
  if (reason == "MAX_TOKENS") return "length";
  if (reason == "SAFETY" || reason == "RECITATION" || reason == "BLOCKLIST" ||
      reason == "PROHIBITED_CONTENT" || reason == "SPII" || reason == "IMAGE_SAFETY")
    return "content_filter";
  return tools ? "tool_calls" : "stop";
}

Usage usageFromGemini(const json::object& u) {
  Usage out;
  out.reported = true;
  out.prompt = countAt(u, "promptTokenCount") + countAt(u, "toolUsePromptTokenCount");
  out.reasoning = countAt(u, "thoughtsTokenCount");
  out.completion = countAt(u, "candidatesTokenCount") + out.reasoning;
  out.cached = countAt(u, "cachedContentTokenCount");
  return out;
}

GeminiCodec::GeminiCodec(const llm::ProviderConfig& p) : base_path_(p.base_path), api_key_(p.api_key) {}

ApiResult GeminiCodec::chatRequest(const ChatRequest& req, std::string_view model,
                                   ProviderRequest& out) const {
  if (req.stream)  // a stream carries one candidate's events
    if (auto refused = oneChoiceOnly(req, "Gemini, when streaming,"); !refused.ok()) return refused;
  out.path = req.stream ? fmt::format("{}/v1beta/models/{}:streamGenerateContent?alt=sse", base_path_, model)
                        : fmt::format("{}/v1beta/models/{}:generateContent", base_path_, model);
  out.headers.emplace_back("x-goog-api-key", api_key_);
  const json::object& in = req.body;
  json::object body;
  json::array system, contents;
  std::map<std::string, std::string, std::less<>> call_names;  // tool call id → function name
  for (const auto& mv : in.at("messages").as_array()) {
    const auto& m = mv.as_object();
    auto role = stringAt(m, "role");
    const json::value* content = m.if_contains("content");
    if (role == "system" || role == "developer") {
      std::string text = content ? contentText(*content) : "";
      if (!text.empty()) system.push_back(json::object{{"text", text}});
    } else if (role == "user") {
      if (content) appendTurn(contents, "user", partsOf(*content), "parts");
    } else if (role == "assistant") {
      json::array parts = content ? partsOf(*content) : json::array();
      if (auto* calls = m.if_contains("tool_calls"); calls && calls->is_array())
        for (const auto& c : calls->as_array()) {
          const auto& co = c.as_object();
          const auto& fn = co.at("function").as_object();
          call_names[std::string(stringAt(co, "id"))] = std::string(stringAt(fn, "name"));
          parts.push_back(json::object{
              {"functionCall",
               json::object{{"name", stringAt(fn, "name")},
                            {"args", parseObjectOr(stringAt(fn, "arguments"), json::object())}}}});
        }
      appendTurn(contents, "model", std::move(parts), "parts");
    } else if (role == "tool" || role == "function") {
      std::string name(role == "function" ? stringAt(m, "name") : std::string_view());
      if (auto it = call_names.find(stringAt(m, "tool_call_id")); it != call_names.end()) name = it->second;
      std::string text = content ? contentText(*content) : "";
      // Gemini wants an object: a JSON object result goes as is, anything else wrapped.
      json::value response = parseObjectOr(text, json::object{{"content", text}});
      appendTurn(contents, "user",
                 json::array{json::object{
                     {"functionResponse", json::object{{"name", name}, {"response", response}}}}},
                 "parts");
    }
  }
  if (!system.empty()) body["systemInstruction"] = json::object{{"parts", std::move(system)}};
  body["contents"] = std::move(contents);
  json::object gen;
  if (auto* t = in.if_contains("temperature"); t && t->is_number()) gen["temperature"] = *t;
  if (auto* p = in.if_contains("top_p"); p && p->is_number()) gen["topP"] = *p;
  if (req.max_output) gen["maxOutputTokens"] = req.max_output;
  if (auto* n = in.if_contains("n"); n && n->is_int64()) gen["candidateCount"] = *n;
  if (auto* s = in.if_contains("seed"); s && s->is_int64()) gen["seed"] = *s;
  if (auto* pp = in.if_contains("presence_penalty"); pp && pp->is_number()) gen["presencePenalty"] = *pp;
  if (auto* fp = in.if_contains("frequency_penalty"); fp && fp->is_number()) gen["frequencyPenalty"] = *fp;
  if (auto* stop = in.if_contains("stop")) {
    if (stop->is_string())
      gen["stopSequences"] = json::array{*stop};
    else if (stop->is_array())
      gen["stopSequences"] = *stop;
  }
  if (auto* rf = in.if_contains("response_format"); rf && rf->is_object()) {
    auto type = stringAt(rf->as_object(), "type");
    if (type == "json_object" || type == "json_schema") gen["responseMimeType"] = "application/json";
    if (type == "json_schema")
      if (auto* js = objectAt(rf->as_object(), "json_schema"))
        if (auto* schema = js->if_contains("schema")) gen["responseJsonSchema"] = *schema;
  }
  if (!gen.empty()) body["generationConfig"] = std::move(gen);
  if (auto* tools = in.if_contains("tools"); tools && tools->is_array() && !tools->as_array().empty()) {
    json::array decls;
    for (const auto& t : tools->as_array()) {
      const auto& fn = t.as_object().at("function").as_object();
      json::object decl{{"name", stringAt(fn, "name")}};
      if (auto d = stringAt(fn, "description"); !d.empty()) decl["description"] = d;
      if (auto* params = fn.if_contains("parameters"); params && params->is_object())
        decl["parametersJsonSchema"] = *params;
      decls.push_back(std::move(decl));
    }
    body["tools"] = json::array{json::object{{"functionDeclarations", std::move(decls)}}};
    if (auto* tc = in.if_contains("tool_choice")) {
      json::object config;
      if (tc->is_string()) {
        auto s = tc->get_string();
        config["mode"] = s == "required" ? "ANY" : s == "none" ? "NONE" : "AUTO";
      } else if (tc->is_object()) {
        config["mode"] = "ANY";
        config["allowedFunctionNames"] =
            json::array{stringAt(tc->as_object().at("function").as_object(), "name")};
      }
      body["toolConfig"] = json::object{{"functionCallingConfig", std::move(config)}};
    }
  }
  out.body = json::serialize(body);
  return {};
}

ApiResult GeminiCodec::chatResponse(std::string_view text, std::string& out, Usage& usage) const {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return badProviderAnswer("an answer that is not a JSON object");
  const auto& r = v.get_object();
  if (auto* u = objectAt(r, "usageMetadata")) usage = usageFromGemini(*u);
  ChunkStamp stamp{idOr("chatcmpl-", stringAt(r, "responseId")), std::string(stringAt(r, "modelVersion")),
                   nowSeconds()};
  const bool blocked = [&] {  // the prompt itself was blocked: no candidates
    auto* feedback = objectAt(r, "promptFeedback");
    return feedback && !stringAt(*feedback, "blockReason").empty();
  }();
  // One choice per candidate (candidateCount = n); tool call ids count across them.
  std::vector<const json::object*> candidates;
  if (auto* cands = r.if_contains("candidates"); cands && cands->is_array())
    for (const auto& cv : cands->as_array())
      if (auto* co = cv.if_object()) candidates.push_back(co);
  if (candidates.empty()) {
    // No candidate is an answer only when the prompt was blocked; otherwise the provider sent
    // something other than a GenerateContentResponse.
    if (!blocked) return badProviderAnswer("an answer without candidates");
    candidates.push_back(nullptr);
  }
  int64_t next_call = 0;
  json::array choices;
  for (size_t i = 0; i < candidates.size(); ++i) {
    Candidate c = readCandidate(candidates[i], next_call);
    const bool called = !c.answer.tool_calls.empty();
    for (auto& call : c.answer.tool_calls) call.as_object().erase("index");
    std::string_view finish =
        c.finish.empty() ? std::string_view("stop") : finishFromGemini(c.finish, called);
    if (blocked) finish = "content_filter";
    int64_t index = static_cast<int64_t>(i);
    if (candidates[i])
      if (auto* ix = candidates[i]->if_contains("index"); ix && ix->is_int64()) index = ix->as_int64();
    choices.push_back(completionChoice(index, c.answer.message(), finish));
  }
  json::object answer = completion(stamp, std::move(choices), usage);
  out = json::serialize(answer);
  return {};
}

std::unique_ptr<ChatStreamDecoder> GeminiCodec::chatStream() const {
  return std::make_unique<GeminiStream>();
}

ApiResult GeminiCodec::embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                                         ProviderRequest& out) const {
  out.path = fmt::format("{}/v1beta/models/{}:batchEmbedContents", base_path_, model);
  out.headers.emplace_back("x-goog-api-key", api_key_);
  const json::value& input = req.body.at("input");
  json::array requests;
  std::string full_model = fmt::format("models/{}", model);
  auto add = [&](std::string_view text) {
    json::object r{{"model", full_model},
                   {"content", json::object{{"parts", json::array{json::object{{"text", text}}}}}}};
    if (auto* dims = req.body.if_contains("dimensions"); dims && dims->is_int64())
      r["outputDimensionality"] = *dims;
    requests.push_back(std::move(r));
  };
  if (input.is_string()) {
    add(input.get_string());
  } else {
    for (const auto& item : input.as_array()) {
      if (!item.is_string())
        return ApiError{400, "invalid_request_error", "Gemini embeds text only: 'input' must be strings",
                        "input", "invalid_value"};
      add(item.get_string());
    }
  }
  out.body = json::serialize(json::object{{"requests", std::move(requests)}});
  return {};
}

ApiResult GeminiCodec::embeddingsResponse(std::string_view text, std::string& out, Usage&) const {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object() || !v.as_object().contains("embeddings") ||
      !v.as_object().at("embeddings").is_array())
    return badProviderAnswer("an embeddings answer without 'embeddings'");
  json::array data;
  int64_t index = 0;
  for (const auto& e : v.as_object().at("embeddings").as_array()) {
    const json::value* values = e.is_object() ? e.as_object().if_contains("values") : nullptr;
    data.push_back(json::object{{"object", "embedding"},
                                {"index", index++},
                                {"embedding", values ? *values : json::value(json::array())}});
  }
  // Gemini reports no token counts here: the router estimates them (marked as estimated).
  out = json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
  return {};
}

ApiError GeminiCodec::error(int status, std::string_view body) const {
  ApiError e = statusError(status);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  const json::object* err = nullptr;
  if (!ec && v.is_object()) err = objectAt(v.get_object(), "error");
  // The streaming endpoint answers errors as a one-element array.
  if (!ec && v.is_array() && !v.as_array().empty() && v.as_array()[0].is_object())
    err = objectAt(v.as_array()[0].as_object(), "error");
  if (err) {
    e.message = std::string(stringAt(*err, "message"));
    e.code = std::string(stringAt(*err, "status"));
  }
  if (e.message.empty()) e.message = providerStatusMessage(status, body);
  return e;
}

}  // namespace ganglion::llm
