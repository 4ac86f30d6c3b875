// Reproduces the OpenAI cookbook's API-verified chat counts with the reference tokenizer:
// 6-message example: gpt-4/gpt-3.5 (cl100k) 129, gpt-4o/-mini (o200k) 124;
// weather tool example: cl100k 105, o200k 101.
import { makeEncoder } from '/tmp/tok/ref.mjs';
const msgs = [
  { role: 'system', content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.' },
  { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
  { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
  { role: 'system', name: 'example_user', content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage." },
  { role: 'system', name: 'example_assistant', content: "Let's talk later when we're less busy about how to do better." },
  { role: 'user', content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
];
const tools = [{ type: 'function', function: { name: 'get_current_weather', description: 'Get the current weather in a given location',
  parameters: { type: 'object', properties: {
    location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
    unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] } }, required: ['location'] } } }];
const toolMsgs = [{ role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
  { role: 'user', content: "What's the weather like in San Francisco?" }];

function messagesTokens(enc, messages) {  // cookbook: 3 per message, +1 per name, +3 reply priming
  let n = 0;
  for (const m of messages) { n += 3; for (const [k, v] of Object.entries(m)) { n += enc(v).length; if (k === 'name') n += 1; } }
  return n + 3;
}
function toolsTokens(enc, tools, funcInit) {  // cookbook's num_tokens_for_tools constants
  const propInit = 3, propKey = 3, enumInit = -3, enumItem = 3, funcEnd = 12;
  let n = 0;
  for (const t of tools) {
    const f = t.function; n += funcInit;
    n += enc(`${f.name}:${(f.description ?? '').replace(/\.$/, '')}`).length;
    const props = f.parameters?.properties ?? {};
    if (Object.keys(props).length) {
      n += propInit;
      for (const [k, p] of Object.entries(props)) {
        n += propKey;
        if (p.enum) { n += enumInit; for (const e of p.enum) n += enumItem + enc(String(e)).length; }
        n += enc(`${k}:${p.type}:${(p.description ?? '').replace(/\.$/, '')}`).length;
      }
    }
  }
  return tools.length ? n + funcEnd : 0;
}
for (const [enc, funcInit, want, wantTools] of [['cl100k_base', 10, 129, 105], ['o200k_base', 7, 124, 101]]) {
  const e = makeEncoder(enc, 'portable');
  const a = messagesTokens(e, msgs), b = messagesTokens(e, toolMsgs) + toolsTokens(e, tools, funcInit);
  console.log(`${enc}: messages ${a} (API said ${want}) ${a === want ? 'OK' : 'MISMATCH'}; tools example ${b} (API said ${wantTools}) ${b === wantTools ? 'OK' : 'MISMATCH'}`);
}
