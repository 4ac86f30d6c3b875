// Upper bounds on the prompt tokens of requests the gateway passes through without building
// them itself (Anthropic Messages to Anthropic targets, the Responses API), and the inputs no
// bound can cover because the provider adds them on its side (a stored conversation, a file
// by id, a web search). Pure functions over the parsed body; any thread.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <string>

namespace ganglion::llm {

struct PromptBound {
  uint64_t tokens = 0;  ///< what the request itself can cost
  std::string
      unbounded;  ///< set: the first input the provider expands (for the error), e.g. "previous_response_id"
};

/// An Anthropic Messages body: text and tool data by their bytes, images at kImageTokenBound;
/// documents not given as text, server tools (web search, code execution), MCP servers and
/// containers are unbounded.
PromptBound boundMessagesPrompt(const boost::json::object& body);

/// A Responses API body: its bytes, plus kImageTokenBound per input image; a stored response
/// or conversation, a prompt template, files and built-in tools are unbounded.
PromptBound boundResponsesPrompt(const boost::json::object& body, uint64_t body_bytes);

}  // namespace ganglion::llm
