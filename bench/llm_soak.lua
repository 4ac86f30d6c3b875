-- wrk script for bench/llm_soak.sh: a constant mix of LLM calls through the gateway:
-- whole answers, streams, and every tenth call an error (unknown model: a 404 path).
local bodies = {
  '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}',
  '{"model":"gpt-4o-mini-stream","stream":true,"messages":[{"role":"user","content":"Stream a hello."}],"max_tokens":32}',
  '{"model":"gpt-4o-mini-stream","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream with usage."}]}',
}
local n = 0
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-key-123"

function request()
  n = n + 1
  local body
  if n % 10 == 0 then
    body = '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}'
  else
    body = bodies[(n % #bodies) + 1]
  end
  return wrk.format(nil, nil, nil, body)
end
