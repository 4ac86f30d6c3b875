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
