#include "llm/openai_shapes.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cstring>
#include <ctime>
#include <random>

#include "llm/json_answer_tool.h"
#include "llm/usage.h"

namespace ganglion::llm {

namespace json = boost::json;

int64_t nowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

std::string uniqueId(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

std::string idOr(std::string_view prefix, std::string_view id) {
  return id.empty() ? uniqueId(prefix) : fmt::format("{}{}", prefix, id);
}

bool finishEmbeddingsAnswer(std::string& answer, bool base64, std::string_view model, const Usage& usage) {
  boost::system::error_code ec;
  json::value v = json::parse(answer, ec);
  if (ec || !v.is_object()) return false;
  auto& o = v.as_object();
  if (auto* data = o.if_contains("data"); !data || !data->is_array()) return false;
  if (!o.contains("object")) o["object"] = "list";
  if (auto* m = o.if_contains("model"); !m || !m->is_string() || m->get_string().empty()) o["model"] = model;
  if (auto* u = o.if_contains("usage"); !u || !u->is_object())
    o["usage"] = json::object{{"prompt_tokens", usage.prompt}, {"total_tokens", usage.prompt}};
  auto* data = o.if_contains("data");  // looked up again: the insertions above may move it
  std::string bytes, encoded;
  for (auto& item : data->as_array()) {
    if (!base64) break;
    auto* embedding = item.is_object() ? item.as_object().if_contains("embedding") : nullptr;
    if (!embedding || !embedding->is_array()) continue;
    bytes.clear();
    for (const auto& x : embedding->as_array()) {
      const float f = x.is_double()   ? static_cast<float>(x.get_double())
                      : x.is_int64()  ? static_cast<float>(x.get_int64())
                      : x.is_uint64() ? static_cast<float>(x.get_uint64())
                                      : 0.0f;
      uint32_t u;
      std::memcpy(&u, &f, sizeof u);
      for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((u >> (8 * i)) & 0xff));  // little-endian
    }
    encoded.resize(4 * ((bytes.size() + 2) / 3) + 1);
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    *embedding = json::string(encoded.data(), static_cast<size_t>(n));
  }
  answer = json::serialize(v);
  return true;
}

json::object chunk(const ChunkStamp& stamp, json::object delta, std::string_view finish) {
  json::object choice{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish.empty() ? json::value(nullptr) : json::value(finish);
  return json::object{{"id", stamp.id},
                      {"object", "chat.completion.chunk"},
                      {"created", stamp.created},
                      {"model", stamp.model},
                      {"choices", json::array{std::move(choice)}}};
}

json::object usageChunk(const ChunkStamp& stamp, const Usage& usage) {
  return json::object{{"id", stamp.id},           {"object", "chat.completion.chunk"},
                      {"created", stamp.created}, {"model", stamp.model},
                      {"choices", json::array()}, {"usage", usageToOpenAI(usage)}};
}

json::object completionChoice(int64_t index, json::object message, std::string_view finish) {
  json::object choice{{"index", index}, {"message", std::move(message)}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish.empty() ? json::value(nullptr) : json::value(finish);
  return choice;
}

json::object completion(const ChunkStamp& stamp, json::array choices, const Usage& usage) {
  return json::object{
      {"id", stamp.id},       {"object", "chat.completion"},   {"created", stamp.created},
      {"model", stamp.model}, {"choices", std::move(choices)}, {"usage", usageToOpenAI(usage)}};
}

json::object completion(const ChunkStamp& stamp, json::object message, std::string_view finish,
                        const Usage& usage) {
  return completion(stamp, json::array{completionChoice(0, std::move(message), finish)}, usage);
}

void AssistantAnswer::addToolUse(std::string_view id, std::string_view name, const json::value* input) {
  std::string arguments = input ? json::serialize(*input) : std::string("{}");
  if (name == kJsonAnswerTool)
    addText(arguments);  // response_format: the answer itself
  else
    tool_calls.push_back(toolCall(id, name, arguments));
}

json::object AssistantAnswer::message() {
  json::object m{{"role", "assistant"}};
  m["content"] = has_text ? json::value(text) : json::value(nullptr);
  if (!tool_calls.empty()) m["tool_calls"] = std::move(tool_calls);
  m["refusal"] = nullptr;
  return m;
}

std::string_view finishAfterTools(std::string_view finish, bool called) {
  return finish == "tool_calls" && !called ? std::string_view("stop") : finish;
}

json::object toolCall(std::string_view id, std::string_view name, std::string_view arguments) {
  return json::object{
      {"id", id}, {"type", "function"}, {"function", json::object{{"name", name}, {"arguments", arguments}}}};
}

}  // namespace ganglion::llm
