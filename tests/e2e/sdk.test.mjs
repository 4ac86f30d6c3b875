// End-to-end: the official `openai` and `@anthropic-ai/sdk` Node clients against the real
// gateway binary, with tests/integration/fake_provider.py as the only upstream.
// start_stack.py starts both and takes scripting commands on stdin (see its docstring);
// stack.mjs drives it.
// Every client has maxRetries: 0, so what a test sees is what the gateway answered.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { Stack } from './stack.mjs';

const DEMO_KEY = 'sk-gw-demo';
const BUDGETED_KEY = 'sk-gw-budgeted';

const stack = new Stack();
let openai;
let anthropic;

before(async () => {
  await stack.start();
  openai = new OpenAI({ apiKey: DEMO_KEY, baseURL: `http://127.0.0.1:${stack.gatewayPort}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: DEMO_KEY, baseURL: `http://127.0.0.1:${stack.gatewayPort}`, maxRetries: 0 });
});

after(async () => {
  await stack.stop();
});

const WEATHER_TOOL_OPENAI = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

const WEATHER_TOOL_ANTHROPIC = {
  name: 'get_weather',
  description: 'Current weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function openaiClient(apiKey) {
  return new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${stack.gatewayPort}/v1`, maxRetries: 0 });
}

function anthropicClient(apiKey) {
  return new Anthropic({ apiKey, baseURL: `http://127.0.0.1:${stack.gatewayPort}`, maxRetries: 0 });
}

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to fail');
}

// --- OpenAI client ---------------------------------------------------------------------------
describe('openai client', () => {
  test('chat completion', async () => {
    const res = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'echo: hello from the sdk' }],
    });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, 'hello from the sdk');
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.usage.completion_tokens, 4);
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
    const sent = await stack.last();
    assert.equal(sent.path, '/v1/chat/completions');
    assert.equal(sent.json.model, 'gpt-4o-mini-2024-07-18');
  });

  test('chat stream with include_usage', async () => {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'echo: one two three four five' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length > 3, `only ${chunks.length} chunks`);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'one two three four five');
    const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
    assert.deepEqual(finish, ['stop']);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 5);
    assert.ok(last.usage.prompt_tokens > 0);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage ?? null, null);
  });

  test('tools: tool_calls out, tool results back in', async () => {
    const messages = [{ role: 'user', content: 'What is the weather in Paris and Tokyo?' }];
    const first = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages, tools: [WEATHER_TOOL_OPENAI] });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    const calls = choice.message.tool_calls;
    assert.equal(calls.length, 2);
    for (const call of calls) {
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      assert.ok(call.id);
    }
    assert.deepEqual(calls.map((c) => JSON.parse(c.function.arguments).city).sort(), ['Paris', 'Tokyo']);

    messages.push(choice.message);
    for (const call of calls) {
      const city = JSON.parse(call.function.arguments).city;
      messages.push({ role: 'tool', tool_call_id: call.id, content: `${city}: 21 C, sunny` });
    }
    const second = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages, tools: [WEATHER_TOOL_OPENAI] });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.content, 'Hello from fake gpt-4o-mini-2024-07-18');
    const sent = await stack.last();
    const toolMsgs = sent.json.messages.filter((m) => m.role === 'tool');
    assert.deepEqual(toolMsgs.map((m) => m.tool_call_id), calls.map((c) => c.id));
    assert.equal(sent.json.messages[1].tool_calls.length, 2);
  });

  test('tools streamed (chat.completions.stream helper)', async () => {
    const stream = openai.chat.completions.stream({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'weather please' }],
      tools: [WEATHER_TOOL_OPENAI],
    });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
    const calls = final.choices[0].message.tool_calls;
    assert.deepEqual(calls.map((c) => JSON.parse(c.function.arguments).city).sort(), ['Paris', 'Tokyo']);
  });

  test('embeddings (the SDK asks for base64 and decodes it)', async () => {
    const res = await openai.embeddings.create({ model: 'embed', input: ['one', 'two words', 'three'] });
    assert.equal(res.object, 'list');
    assert.deepEqual(res.data.map((d) => d.index), [0, 1, 2]);
    for (const d of res.data) {
      assert.ok(Array.isArray(d.embedding), 'embedding decoded to an array');
      assert.equal(d.embedding.length, 8);
      assert.ok(d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    }
    assert.ok(res.usage.prompt_tokens > 0);
    const sent = await stack.last();
    assert.equal(sent.path, '/v1/embeddings');
    assert.equal(sent.json.model, 'text-embedding-3-small');
  });

  test('models.list', async () => {
    const ids = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    for (const id of ['gpt-4o-mini', 'claude-haiku', 'resilient', 'embed', 'budgeted', 'gemini-flash',
      'gemini-embed', 'cohere-embed']) {
      assert.ok(ids.includes(id), `${id} missing from ${JSON.stringify(ids)}`);
    }
  });

  test('bad key: AuthenticationError 401', async () => {
    const err = await rejection(openaiClient('sk-wrong-key').chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    }));
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'invalid_api_key');
  });

  test('unknown model: NotFoundError 404', async () => {
    const err = await rejection(openai.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'hi' }],
    }));
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.param, 'model');
  });

  test('bad field: BadRequestError 400 naming the param', async () => {
    const err = await rejection(openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 3,
    }));
    assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.param, 'temperature');
    assert.ok(err.message.length > 0);
  });

  test('fallback: primary 503, resilient answers from claude', async () => {
    await stack.clear();
    await stack.script({ status: 503 });
    const { data, response } = await openai.chat.completions.create({
      model: 'resilient',
      messages: [{ role: 'user', content: 'echo: via the fallback' }],
    }).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-ganglion-provider'), 'claude');
    assert.equal(response.headers.get('x-ganglion-model'), 'claude-3-5-haiku-latest');
    assert.equal(response.headers.get('x-ganglion-attempts'), '2');
    assert.equal(data.choices[0].message.content, 'via the fallback');
  });

  test('budget holds under 20 concurrent calls', async () => {
    await stack.clear();
    await stack.script({ delay: 0.5, times: 20 });
    const client = openaiClient(BUDGETED_KEY);
    // Each call reserves (prompt estimate + 1000 max tokens) x $1/M, about $0.001, so a $0.005
    // budget has room for four at a time, however many race for it.
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => client.chat.completions.create({
      model: 'budgeted',
      messages: [{ role: 'user', content: 'echo: hi' }],
      max_tokens: 1000,
    })));
    await stack.clear();  // the unused delays must not slow later tests
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(ok.length >= 1 && ok.length <= 4, `${ok.length} calls succeeded`);
    assert.equal(ok.length + refused.length, 20);
    for (const { reason } of refused) {
      assert.ok(reason instanceof OpenAI.RateLimitError, `got ${reason?.constructor?.name}: ${reason}`);
      assert.equal(reason.status, 429);
      assert.equal(reason.code, 'budget_exceeded');
      assert.ok(Number(reason.headers.get('retry-after')) > 0);
    }
    for (const { value } of ok) assert.equal(value.choices[0].message.content, 'hi');
    // Settled at their real (tiny) cost, the finished calls leave the budget open again.
    const again = await client.chat.completions.create({
      model: 'budgeted',
      messages: [{ role: 'user', content: 'echo: again' }],
      max_tokens: 1000,
    });
    assert.equal(again.choices[0].message.content, 'again');
  });
});

// --- Anthropic client (/v1/messages) -------------------------------------------------------------
// claude-haiku is served by an anthropic provider (the request passes through); gpt-4o-mini by an
// openai one (the gateway translates both ways).
for (const [model, native] of [['claude-haiku', true], ['gpt-4o-mini', false]]) {
  describe(`anthropic client, ${model} (${native ? 'native pass-through' : 'translated'})`, () => {
    test('messages.create', async () => {
      const msg = await anthropic.messages.create({
        model,
        max_tokens: 200,
        messages: [{ role: 'user', content: 'echo: bonjour tout le monde' }],
      });
      assert.equal(msg.type, 'message');
      assert.equal(msg.role, 'assistant');
      assert.equal(msg.content.length, 1);
      assert.equal(msg.content[0].type, 'text');
      assert.equal(msg.content[0].text, 'bonjour tout le monde');
      assert.equal(msg.stop_reason, 'end_turn');
      assert.equal(msg.usage.output_tokens, 4);
      assert.ok(msg.usage.input_tokens > 0);
      const sent = await stack.last();
      assert.equal(sent.path, native ? '/v1/messages' : '/v1/chat/completions');
      assert.equal(sent.json.model, native ? 'claude-3-5-haiku-latest' : 'gpt-4o-mini-2024-07-18');
    });

    test('messages.stream text', async () => {
      const stream = anthropic.messages.stream({
        model,
        max_tokens: 200,
        system: 'You are terse.',
        messages: [{ role: 'user', content: 'echo: streamed words arrive in order' }],
      });
      const deltas = [];
      stream.on('text', (delta) => deltas.push(delta));
      const final = await stream.finalMessage();
      assert.ok(deltas.length > 1, `only ${deltas.length} text deltas`);
      assert.equal(deltas.join(''), 'streamed words arrive in order');
      assert.equal(final.content[0].type, 'text');
      assert.equal(final.content[0].text, 'streamed words arrive in order');
      assert.equal(final.stop_reason, 'end_turn');
      assert.equal(final.usage.output_tokens, 5);
      const sent = await stack.last();
      assert.equal(sent.json.stream, true);
    });

    test('messages.stream tool_use with input_json_delta, then tool_result back', async () => {
      const messages = [{ role: 'user', content: 'What is the weather like?' }];
      const stream = anthropic.messages.stream({ model, max_tokens: 200, tools: [WEATHER_TOOL_ANTHROPIC], messages });
      const jsonDeltas = [];
      stream.on('streamEvent', (event) => {
        if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') {
          jsonDeltas.push(event.delta.partial_json);
        }
      });
      const final = await stream.finalMessage();
      assert.equal(final.stop_reason, 'tool_use');
      const uses = final.content.filter((b) => b.type === 'tool_use');
      assert.equal(uses.length, 2);
      for (const use of uses) {
        assert.equal(use.name, 'get_weather');
        assert.ok(use.id);
      }
      assert.deepEqual(uses.map((u) => u.input.city).sort(), ['Paris', 'Tokyo']);
      assert.ok(jsonDeltas.length >= 2, `only ${jsonDeltas.length} input_json_delta events`);

      messages.push({ role: 'assistant', content: final.content });
      messages.push({
        role: 'user',
        content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: `${u.input.city}: 21 C` })),
      });
      const answer = await anthropic.messages.create({ model, max_tokens: 200, tools: [WEATHER_TOOL_ANTHROPIC], messages });
      assert.equal(answer.stop_reason, 'end_turn');
      assert.equal(answer.content[0].type, 'text');
      assert.match(answer.content[0].text, /^Hello from fake /);
      const sent = await stack.last();
      if (native) {
        const results = sent.json.messages.at(-1).content;
        assert.deepEqual(results.map((r) => r.tool_use_id), uses.map((u) => u.id));
      } else {
        const tools = sent.json.messages.filter((m) => m.role === 'tool');
        assert.deepEqual(tools.map((m) => m.tool_call_id), uses.map((u) => u.id));
      }
    });
  });
}

describe('anthropic client errors', () => {
  test('bad key: AuthenticationError 401', async () => {
    const err = await rejection(anthropicClient('sk-wrong-key').messages.create({
      model: 'claude-haiku',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    }));
    assert.ok(err instanceof Anthropic.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 401);
    assert.equal(err.error?.type, 'error');
    assert.equal(err.error?.error?.type, 'authentication_error');
  });

  test('unknown model: NotFoundError 404', async () => {
    const err = await rejection(anthropic.messages.create({
      model: 'no-such-model',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'hi' }],
    }));
    assert.ok(err instanceof Anthropic.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 404);
    assert.equal(err.error?.error?.type, 'not_found_error');
  });
});
