-- wrk script for bench/llm_vs_portkey.sh: POSTs one small chat request, non-streaming.
-- Extra request headers come as script arguments, "Name: value" each:
--   wrk ... -s llm_post.lua URL -- "Authorization: Bearer sk-..." "x-portkey-provider: openai"
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0}'

function init(args)
  for _, h in ipairs(args) do
    local name, value = h:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
end
