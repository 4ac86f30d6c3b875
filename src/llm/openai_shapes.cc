#include "llm/openai_shapes.h"

#include <ctime>

namespace ganglion::llm {

namespace json = boost::json;

int64_t nowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

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
  return json::object{{"id", stamp.id},        {"object", "chat.completion.chunk"}, {"created", stamp.created},
                      {"model", stamp.model},  {"choices", json::array()},          {"usage", usageToOpenAI(usage)}};
}

json::object completion(const ChunkStamp& stamp, json::object message, std::string_view finish, const Usage& usage) {
  json::object choice{{"index", 0}, {"message", std::move(message)}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish.empty() ? json::value(nullptr) : json::value(finish);
  return json::object{{"id", stamp.id},       {"object", "chat.completion"},         {"created", stamp.created},
                      {"model", stamp.model}, {"choices", json::array{std::move(choice)}}, {"usage", usageToOpenAI(usage)}};
}

json::object toolCall(std::string_view id, std::string_view name, std::string_view arguments) {
  return json::object{{"id", id},
                      {"type", "function"},
                      {"function", json::object{{"name", name}, {"arguments", arguments}}}};
}

}  // namespace ganglion::llm
