#include "llm/usage.h"

#include <boost/json.hpp>

#include "llm/json_fields.h"

namespace ganglion::llm {

namespace json = boost::json;

Usage usageFromOpenAI(const json::object& u) {
  Usage out;
  out.reported = true;
  out.prompt = countAt(u, "prompt_tokens");
  out.completion = countAt(u, "completion_tokens");
  if (auto* d = objectAt(u, "prompt_tokens_details")) out.cached = countAt(*d, "cached_tokens");
  if (auto* d = objectAt(u, "completion_tokens_details")) out.reasoning = countAt(*d, "reasoning_tokens");
  return out;
}

Usage usageFromResponses(const json::object& u) {
  Usage out;
  out.reported = true;
  out.prompt = countAt(u, "input_tokens");
  out.completion = countAt(u, "output_tokens");
  if (auto* d = objectAt(u, "input_tokens_details")) out.cached = countAt(*d, "cached_tokens");
  if (auto* d = objectAt(u, "output_tokens_details")) out.reasoning = countAt(*d, "reasoning_tokens");
  return out;
}

namespace {

size_t generatedBytes(const json::value& v, bool generated) {
  if (auto* s = v.if_string()) return generated ? s->size() : 0;
  size_t n = 0;
  if (auto* o = v.if_object()) {
    for (const auto& [key, item] : *o)
      n += generatedBytes(item, key == "content" || key == "text" || key == "refusal" || key == "arguments" ||
                                    key == "input");
  } else if (auto* a = v.if_array()) {
    for (const auto& item : *a) n += generatedBytes(item, generated);
  } else if (generated && !v.is_null()) {
    n += json::serialize(v).size();  // tool input given as an object
  }
  return n;
}

}  // namespace

uint64_t estimateAnswerTokens(std::string_view answer) {
  boost::system::error_code ec;
  const json::value v = json::parse(answer, ec);
  if (ec) return 0;
  return (generatedBytes(v, false) + 3) / 4;
}

json::object usageToResponses(const Usage& u) {
  return json::object{{"input_tokens", u.prompt},
                      {"input_tokens_details", json::object{{"cached_tokens", u.cached}}},
                      {"output_tokens", u.completion},
                      {"output_tokens_details", json::object{{"reasoning_tokens", u.reasoning}}},
                      {"total_tokens", u.total()}};
}

json::object usageToOpenAI(const Usage& u) {
  json::object out{{"prompt_tokens", u.prompt},
                   {"completion_tokens", u.completion},
                   {"total_tokens", u.total()},
                   {"prompt_tokens_details", json::object{{"cached_tokens", u.cached}}},
                   {"completion_tokens_details", json::object{{"reasoning_tokens", u.reasoning}}}};
  return out;
}

}  // namespace ganglion::llm
