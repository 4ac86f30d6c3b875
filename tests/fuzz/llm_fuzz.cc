// libFuzzer target for the LLM ingress and the OpenAI, Anthropic, Gemini and Bedrock codecs (AWS event-stream
// framing included). Any bytes must:
//  - parse as a chat request, or give a 400 naming a reason; a parsed request must encode
//    into a provider request whose body is a JSON object with the provider's model;
//  - decode as an OpenAI SSE stream to the same chunks, usage and end state whether fed whole
//    or split at a point chosen by the input (split independence).
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/strings.h"
#include "filters/prompt_guard/prompt_texts.h"
#include "fuzz_check.h"
#include "llm/anthropic_ingress.h"
#include "llm/chat_request.h"
#include "llm/providers/anthropic.h"
#include "llm/providers/bedrock.h"
#include "llm/providers/gemini.h"
#include "llm/providers/openai.h"
#include "llm/responses_ingress.h"

namespace {

using namespace ganglion;

struct Decoded {
  std::vector<std::string> chunks;
  uint64_t prompt = 0, completion = 0;
  bool finished = false, failed = false;
  bool operator==(const Decoded&) const = default;
};

Decoded decode(const llm::ProviderCodec& codec, std::string_view bytes, size_t split) {
  Decoded d;
  auto dec = codec.chatStream();
  std::vector<boost::json::object> chunks;
  llm::Usage usage;
  for (auto part : {bytes.substr(0, split), bytes.substr(split)}) {
    if (d.failed) break;
    if (!dec->feed(part, chunks, usage).ok()) d.failed = true;
  }
  for (auto& c : chunks) d.chunks.push_back(boost::json::serialize(c));
  d.prompt = usage.prompt;
  d.completion = usage.completion;
  d.finished = dec->finished();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  llm::ProviderConfig provider;
  provider.kind = "openai";
  provider.base_path = "/v1";
  provider.api_key = "k";
  llm::OpenAiCodec codec(provider);

  llm::ChatRequest req;
  auto err = llm::parseChatRequest(text, req);
  if (!err.ok()) {
    CHECK(err.error().status == 400);
    CHECK(!err.error().message.empty());
    CHECK(!llm::openaiErrorBody(err.error()).empty());
  } else {
    llm::ProviderRequest out;
    CHECK(codec.chatRequest(req, "served-model", out).ok());  // OpenAI-compatible: sent as is
    boost::system::error_code ec;
    auto body = boost::json::parse(out.body, ec);
    CHECK(!ec && body.is_object());
    CHECK(body.as_object().at("model") == "served-model");
    // prompt_guard sees every message text the LLM API accepted, with the message's role.
    std::vector<filters::PromptText> texts;
    const boost::json::value body_value(req.body);  // the texts point into it
    if (!filters::collectPromptTexts(body_value, texts)) {
      auto seen = [&](filters::PromptRole role, std::string_view t) {
        for (const auto& x : texts)
          if ((x.role & role) && x.text == t) return true;
        return false;
      };
      // The role is checked where it is unambiguous: no `type` on the message (a tool
      // output's) and a part that is not a tool result.
      if (const auto* msgs = req.body.if_contains("messages"); msgs && msgs->is_array()) {
        for (const auto& m : msgs->get_array()) {
          const auto& o = m.as_object();
          const auto& role_v = o.at("role");
          auto role =
              filters::promptRoleNamed(role_v.is_string() ? std::string_view(role_v.get_string()) : "");
          const bool typed = o.contains("type");
          const auto* c = o.if_contains("content");
          if (c && c->is_string()) CHECK(typed || seen(role, c->get_string()));
          if (c && c->is_array())
            for (const auto& part : c->get_array())
              if (const auto* po = part.if_object()) {
                const auto* pt = po->if_contains("type");
                const bool tool = pt && pt->is_string() &&
                                  (pt->get_string() == "tool_result" ||
                                   pt->get_string() == "function_call_output" || pt->get_string() == "tool");
                if (const auto* t = po->if_contains("text"); t && t->is_string() && !typed && !tool)
                  CHECK(seen(role, t->get_string()));
              }
        }
      }
      // Every string of the messages reaches the deny patterns, whatever its field (but the
      // role and type names).
      size_t strings = 0;
      std::function<void(const boost::json::value&)> count = [&](const boost::json::value& v) {
        if (v.is_string()) ++strings;
        if (v.is_array())
          for (const auto& x : v.get_array()) count(x);
        if (v.is_object())
          for (const auto& kv : v.get_object())
            if (!iequals(kv.key(), "role") && !iequals(kv.key(), "type")) count(kv.value());
      };
      size_t others = 0;
      for (const auto& kv : req.body) {
        if (kv.key() == "messages") {
          count(kv.value());
        } else {
          std::vector<filters::PromptText> other;
          const boost::json::value alone(boost::json::object{{kv.key(), kv.value()}});
          if (!filters::collectPromptTexts(alone, other)) others += other.size();
        }
      }
      CHECK(texts.size() == strings + others);
    }
  }

  // ... and as an Anthropic Messages request; a parsed one was checked as a chat request too.
  llm::MessagesRequest messages;
  if (auto merr = llm::parseMessagesRequest(text, messages); !merr.ok()) {
    CHECK(merr.error().status == 400 && !merr.error().message.empty());
  } else {
    CHECK(!messages.model.empty());
  }

  // The same bytes as a provider stream: a failure may come at a different chunk count when
  // split, but everything decoded before it must agree, and successes must agree entirely.
  size_t split = size ? data[0] % (size + 1) : 0;
  Decoded whole = decode(codec, text, size);
  Decoded parts = decode(codec, text, split);
  if (!whole.failed && !parts.failed) CHECK(whole == parts);
  {  // OpenAI chunks re-encoded as Anthropic events: always well-formed events
    auto dec = codec.chatStream();
    std::vector<boost::json::object> chunks;
    llm::Usage usage;
    (void)dec->feed(text, chunks, usage);  // any bytes: chunks until an error
    llm::MessagesStreamEncoder enc;
    std::string events;
    for (const auto& c : chunks) enc.chunk(c, events);
    enc.finish(usage, events);
    CHECK(events.size() >= 2 && events.substr(events.size() - 2) == "\n\n");
  }

  // ... and as an Anthropic stream (chunks carry `created` from the clock: compare without it).
  provider.kind = "anthropic";
  llm::AnthropicCodec anthropic(provider);
  provider.kind = "gemini";
  llm::GeminiCodec gemini(provider);
  provider.kind = "bedrock";
  provider.host = "bedrock-runtime.us-east-1.amazonaws.com";
  provider.region = "us-east-1";
  provider.access_key_id = "AKID";
  provider.secret_access_key = "secret";
  llm::BedrockCodec bedrock(provider);
  for (const llm::ProviderCodec* translated :
       {static_cast<const llm::ProviderCodec*>(&anthropic), static_cast<const llm::ProviderCodec*>(&gemini),
        static_cast<const llm::ProviderCodec*>(&bedrock)}) {
    if (err.ok()) {
      llm::ProviderRequest out;
      // A provider may refuse what it cannot honour (n > 1, response_format with tools): a
      // 400 naming the field; anything it accepts becomes a JSON body.
      if (auto refused = translated->chatRequest(req, "model-x", out); !refused.ok()) {
        CHECK(refused.error().status == 400 && !refused.error().message.empty() &&
              !refused.error().param.empty());
      } else {
        boost::system::error_code ec;
        CHECK(boost::json::parse(out.body, ec).is_object() && !ec);
      }
    }
    Decoded a_whole = decode(*translated, text, size);
    Decoded a_parts = decode(*translated, text, split);
    if (!a_whole.failed && !a_parts.failed) {
      CHECK(a_whole.chunks.size() == a_parts.chunks.size());
      CHECK(a_whole.completion == a_parts.completion && a_whole.finished == a_parts.finished);
    }
    std::string answer;
    llm::Usage usage;
    (void)translated->chatResponse(text, answer, usage);  // any bytes: an error or a JSON completion
    if (!answer.empty()) {
      CHECK(boost::json::parse(answer).is_object());
      std::string message;
      CHECK(llm::messageFromCompletion(answer, message).ok());
      CHECK(boost::json::parse(message).is_object());
      std::string response;
      CHECK(llm::responseFromCompletion(answer, boost::json::object(), response).ok());
      CHECK(boost::json::parse(response).is_object());
    }
  }

  // The same bytes as a Responses request: translated into a chat request, or a 400.
  boost::system::error_code rec;
  auto responses_body = boost::json::parse(text, rec);
  if (!rec && responses_body.is_object()) {
    llm::ChatRequest translated;
    if (auto rerr = llm::chatFromResponsesRequest(responses_body.as_object(), translated); !rerr.ok()) {
      CHECK(rerr.error().status == 400 && !rerr.error().message.empty());
    }
    // And as chat chunks fed to the Responses stream encoder: every event a JSON object.
    llm::ResponsesStreamEncoder encoder(responses_body.as_object());
    std::string events;
    encoder.chunk(responses_body.as_object(), events);
    encoder.finish(llm::Usage{}, events);
    // Only lines that start with "data: " (a model named "mdata: x" puts the words inside one).
    for (size_t line = 0; line < events.size();) {
      size_t end = events.find('\n', line);
      if (end == std::string::npos) end = events.size();
      std::string_view text_line = std::string_view(events).substr(line, end - line);
      if (text_line.starts_with("data: ")) CHECK(boost::json::parse(text_line.substr(6)).is_object());
      line = end + 1;
    }
  }
  return 0;
}
