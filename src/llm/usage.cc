#include "llm/usage.h"

#include <boost/json.hpp>

namespace ganglion::llm {

namespace json = boost::json;

namespace {

uint64_t count(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (auto* i = it->value().if_int64()) return *i > 0 ? static_cast<uint64_t>(*i) : 0;
  if (auto* u = it->value().if_uint64()) return *u;
  return 0;
}

const json::object* child(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : it->value().if_object();
}

}  // namespace

Usage usageFromOpenAI(const json::object& u) {
  Usage out;
  out.reported = true;
  out.prompt = count(u, "prompt_tokens");
  out.completion = count(u, "completion_tokens");
  if (auto* d = child(u, "prompt_tokens_details")) out.cached = count(*d, "cached_tokens");
  if (auto* d = child(u, "completion_tokens_details")) out.reasoning = count(*d, "reasoning_tokens");
  return out;
}

Usage usageFromResponses(const json::object& u) {
  Usage out;
  out.reported = true;
  out.prompt = count(u, "input_tokens");
  out.completion = count(u, "output_tokens");
  if (auto* d = child(u, "input_tokens_details")) out.cached = count(*d, "cached_tokens");
  if (auto* d = child(u, "output_tokens_details")) out.reasoning = count(*d, "reasoning_tokens");
  return out;
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
