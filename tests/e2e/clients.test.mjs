// End-to-end: the client libraries applications use on top of the official SDKs, written as
// their own docs show and pointed at the gateway (base URL = gateway + /v1, API key = a gateway
// key), against models served by OpenAI-, Anthropic- and Gemini-kind providers of
// tests/integration/fake_provider.py (start_stack.py's config):
//
//   Vercel AI SDK   ai + @ai-sdk/openai (openai.chat(...) and the default openai(...), which
//                   speaks the Responses API) + @ai-sdk/anthropic (/v1/messages)
//   LangChain.js    @langchain/openai ChatOpenAI + OpenAIEmbeddings, @langchain/anthropic
//                   ChatAnthropic (/v1/messages), tools from @langchain/core
//   LlamaIndex.TS   @llamaindex/openai OpenAI + OpenAIEmbedding, tools from @llamaindex/core
//
// The fake answers deterministically (see its docstring): "echo: X" is answered X; a user turn
// mentioning "weather" with tools offered gets two parallel calls of the first tool,
// {"city":"Paris"} and {"city":"Tokyo"}; anything else "Hello from fake <model>". Tokens:
// prompt = words of every message's text + 3 per message, completion = words of the reply or
// 5 per tool call. So the usage numbers below are exact.
//
// Every gap these tests found (issue 9) is fixed, so none is marked todo. Every client retries
// nothing (maxRetries: 0).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { embed, embedMany, generateObject, generateText, stepCountIs, streamText, tool as aiTool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { HumanMessage } from '@langchain/core/messages';
import { tool as lcTool } from '@langchain/core/tools';
import { OpenAI as LlamaOpenAI, OpenAIEmbedding as LlamaOpenAIEmbedding } from '@llamaindex/openai';
import { tool as llamaTool } from '@llamaindex/core/tools';
import { Stack } from './stack.mjs';

globalThis.AI_SDK_LOG_WARNINGS = false;  // the AI SDK's notes on unknown model ids are noise here

const KEY = 'sk-gw-demo';
const stack = new Stack();
before(async () => { await stack.start(); });
after(async () => { await stack.stop(); });

// The model names of start_stack.py's config, by the kind of provider that serves them.
const TARGETS = [
  { model: 'gpt-4o-mini', kind: 'openai', upstream: 'gpt-4o-mini-2024-07-18' },
  { model: 'claude-haiku', kind: 'anthropic', upstream: 'claude-3-5-haiku-latest' },
  { model: 'gemini-flash', kind: 'gemini', upstream: 'gemini-2.5-flash' },
];
const EMBED_TARGETS = [
  { model: 'embed', kind: 'openai' },
  { model: 'gemini-embed', kind: 'gemini' },
  { model: 'cohere-embed', kind: 'bedrock' },
];

// --- what the fake provider answers and counts ----------------------------------------------
const ECHO = { prompt: 'echo: hello there', text: 'hello there', input: 6, output: 2 };
const STREAM = { prompt: 'echo: one two three four', text: 'one two three four', input: 8, output: 4 };
const WEATHER = 'What is the weather in Paris and Tokyo?';
const WEATHER_INPUT = 11;    // 8 words + 3
const CALLS_OUTPUT = 10;     // 2 calls x 5
const FINAL_OUTPUT = 4;      // "Hello from fake <model>"
const OBJECT = { prompt: 'echo: {"name":"Ada","age":36}', value: { name: 'Ada', age: 36 }, input: 5, output: 1 };
const PERSON = z.object({ name: z.string(), age: z.number() });
const toolResult = (city) => `${city}: 21 C, sunny`;   // 4 words

// The prompt of the call after the tool results, as the fake counts what the provider got:
// user (11) + assistant turn with the calls (3, no text) + the results, which OpenAI carries as
// two tool messages with text (2 x (4 + 3)) and Anthropic and Gemini as one user turn of
// tool_result / functionResponse blocks the fake reads no words from (3).
function afterToolsInput(kind, api = 'chat') {
  if (api === 'responses') return WEATHER_INPUT + 2 * 7;  // function_call items are not messages
  return kind === 'openai' ? WEATHER_INPUT + 3 + 2 * 7 : WEATHER_INPUT + 3 + 3;
}

const finalText = (target) => `Hello from fake ${target.upstream}`;

/** The path a request for `target` reaches the fake on. */
function upstreamPath(target, { stream = false, api = 'chat' } = {}) {
  if (target.kind === 'anthropic') return '/v1/messages';
  if (target.kind === 'gemini') {
    return `/v1beta/models/${target.upstream}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`;
  }
  return api === 'responses' ? '/v1/responses' : '/v1/chat/completions';
}

/** Dotted paths of the objects in `doc` that are a JSON schema with all of `keys` as properties. */
function schemaPaths(doc, keys, path = '') {
  if (!doc || typeof doc !== 'object') return [];
  const found = [];
  if (doc.properties && typeof doc.properties === 'object' && keys.every((k) => k in doc.properties)) found.push(path);
  for (const [k, v] of Object.entries(doc)) {
    if (k !== 'properties') found.push(...schemaPaths(v, keys, path ? `${path}.${k}` : k));
  }
  return found;
}

/** Asserts that the structured-output schema reached the provider in its own dialect. */
function assertSchemaSent(sent, keys = ['name', 'age']) {
  const paths = schemaPaths(sent.json, keys);
  assert.ok(paths.length > 0, `no schema with ${keys} reached the provider: ${JSON.stringify(sent.json)}`);
}

/** The tool results of a tool loop reached the provider in its dialect, tied to the calls. */
function assertToolResultsSent(target, sent, callIds) {
  if (target.kind === 'openai') {
    const results = sent.json.messages.filter((m) => m.role === 'tool');
    assert.deepEqual(results.map((m) => m.tool_call_id), callIds);
    assert.deepEqual(results.map((m) => m.content), [toolResult('Paris'), toolResult('Tokyo')]);
  } else if (target.kind === 'anthropic') {
    const blocks = sent.json.messages.at(-1).content;
    assert.deepEqual(blocks.map((b) => b.type), ['tool_result', 'tool_result']);
    assert.deepEqual(blocks.map((b) => b.tool_use_id), callIds);
  } else {
    const parts = sent.json.contents.at(-1).parts;
    assert.deepEqual(parts.map((p) => p.functionResponse?.name), ['get_weather', 'get_weather']);
    assert.match(JSON.stringify(parts), /Paris: 21 C, sunny.*Tokyo: 21 C, sunny/);
  }
}

/** The two calls the fake makes: get_weather for Paris, then Tokyo, each with its own id. */
function assertWeatherCalls(calls) {
  assert.equal(calls.length, 2, `calls: ${JSON.stringify(calls)}`);
  assert.deepEqual(calls.map((c) => c.name), ['get_weather', 'get_weather']);
  assert.deepEqual(calls.map((c) => c.args), [{ city: 'Paris' }, { city: 'Tokyo' }]);
  for (const c of calls) assert.ok(typeof c.id === 'string' && c.id.length > 0, `call without id: ${JSON.stringify(c)}`);
  assert.notEqual(calls[0].id, calls[1].id);
}

// The fake's embedding vectors (8 floats each), to check what each client decoded.
function sha256Vector(text) {
  return [...createHash('sha256').update(text, 'utf8').digest().subarray(0, 8)].map((b) => b / 127.5 - 1);
}
function geminiVector(text, index) {
  const seed = [...Buffer.from(text, 'utf8')].reduce((a, b) => a + b, 0) + index;
  return Array.from({ length: 8 }, (_, k) => ((seed * (k + 3)) % 97) / 97);
}
/** What the fake answers for `texts` sent in one request to a target of this kind. */
function expectedVectors(kind, texts) {
  return texts.map((t, i) => (kind === 'gemini' ? geminiVector(t, i) : sha256Vector(t)));
}
function assertVectors(got, want) {
  assert.equal(got.length, want.length, `${got.length} vectors, expected ${want.length}`);
  got.forEach((vector, i) => {
    const v = Array.from(vector);
    assert.equal(v.length, 8, `vector ${i} has ${v.length} dimensions: ${JSON.stringify(v)}`);
    v.forEach((x, k) => assert.ok(Math.abs(x - want[i][k]) < 1e-5,
      `vector ${i}[${k}] = ${x}, expected ${want[i][k]} (got ${JSON.stringify(v)})`));
  });
}

const gatewayV1 = () => `${stack.gateway}/v1`;

// --- Vercel AI SDK ---------------------------------------------------------------------------
describe('Vercel AI SDK', () => {
  const openaiProvider = () => createOpenAI({ baseURL: gatewayV1(), apiKey: KEY });
  const anthropicProvider = () => createAnthropic({ baseURL: gatewayV1(), apiKey: KEY });
  const weatherTool = () => aiTool({
    description: 'Current weather in a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => toolResult(city),
  });

  // Three ways to reach each model: OpenAI chat completions, OpenAI Responses (the AI SDK's
  // default for openai(model)), and Anthropic messages.
  const FLAVOURS = [
    { name: '@ai-sdk/openai openai.chat(model)', api: 'chat', model: (m) => openaiProvider().chat(m) },
    { name: '@ai-sdk/openai openai(model) [Responses API]', api: 'responses', model: (m) => openaiProvider()(m) },
    { name: '@ai-sdk/anthropic anthropic(model)', api: 'messages', model: (m) => anthropicProvider()(m) },
  ];

  for (const flavour of FLAVOURS) {
    for (const target of TARGETS) {
      // The Responses API is passed through to OpenAI-kind targets only.
            const api = flavour.api === 'responses' ? 'responses' : 'chat';
      // What reaches the provider: the Responses API only for OpenAI-kind targets; the gateway
      // translates it into the provider's chat dialect for the others.
      const wire = api === 'responses' && target.kind !== 'openai' ? 'chat' : api;
      const settings = { maxRetries: 0, ...(flavour.api === 'messages' ? { maxOutputTokens: 200 } : {}) };

      describe(`${flavour.name}, ${target.model} (${target.kind} provider)`, () => {
        test('generateText: text, finish reason and usage', async () => {
          await stack.clear();
          const r = await generateText({ model: flavour.model(target.model), prompt: ECHO.prompt, ...settings });
          assert.equal(r.text, ECHO.text);
          assert.equal(r.finishReason, 'stop');
          assert.equal(r.usage.inputTokens, ECHO.input);
          assert.equal(r.usage.outputTokens, ECHO.output);
          assert.equal(r.usage.totalTokens, ECHO.input + ECHO.output);
          const sent = await stack.last();
          assert.equal(sent.path, upstreamPath(target, { api }));
        });

        test('streamText: text deltas in order, usage at the end', async () => {
          await stack.clear();
          const errors = [];
          const r = streamText({
            model: flavour.model(target.model), prompt: STREAM.prompt, ...settings,
            onError: ({ error }) => errors.push(error),
          });
          const deltas = [];
          for await (const delta of r.textStream) deltas.push(delta);
          assert.deepEqual(errors, []);
          assert.ok(deltas.length >= 4, `only ${deltas.length} deltas: ${JSON.stringify(deltas)}`);
          assert.equal(deltas.join(''), STREAM.text);
          assert.equal(await r.finishReason, 'stop');
          const usage = await r.usage;
          assert.equal(usage.inputTokens, STREAM.input);
          assert.equal(usage.outputTokens, STREAM.output);
          const sent = await stack.last();
          assert.equal(sent.path, upstreamPath(target, { stream: true, api }));
        });

        test('generateText with a tool: call -> tool result -> final answer', async () => {
          await stack.clear();
          const r = await generateText({
            model: flavour.model(target.model), prompt: WEATHER, tools: { get_weather: weatherTool() },
            stopWhen: stepCountIs(3), ...settings,
          });
          assert.equal(r.steps.length, 2);
          const [first, second] = r.steps;
          assert.equal(first.finishReason, 'tool-calls');
          assertWeatherCalls(first.toolCalls.map((c) => ({ name: c.toolName, args: c.input, id: c.toolCallId })));
          assert.deepEqual(first.toolResults.map((t) => t.output), [toolResult('Paris'), toolResult('Tokyo')]);
          assert.equal(first.usage.inputTokens, WEATHER_INPUT);
          assert.equal(first.usage.outputTokens, CALLS_OUTPUT);
          assert.equal(second.finishReason, 'stop');
          assert.equal(r.text, finalText(target));
          assert.equal(second.usage.inputTokens, afterToolsInput(target.kind, wire));
          assert.equal(r.totalUsage.outputTokens, CALLS_OUTPUT + FINAL_OUTPUT);
          assert.equal(r.totalUsage.inputTokens, WEATHER_INPUT + afterToolsInput(target.kind, wire));
          const sent = await stack.last();
          if (wire === 'chat') assertToolResultsSent(target, sent, first.toolCalls.map((c) => c.toolCallId));
          else assert.deepEqual(sent.json.input.filter((i) => i.type === 'function_call_output').map((i) => i.call_id),
            first.toolCalls.map((c) => c.toolCallId));
        });

        test('streamText with a tool: streamed call -> tool result -> streamed answer', async () => {
          await stack.clear();
          const errors = [];
          const r = streamText({
            model: flavour.model(target.model), prompt: WEATHER, tools: { get_weather: weatherTool() },
            stopWhen: stepCountIs(3), ...settings, onError: ({ error }) => errors.push(error),
          });
          let text = '';
          for await (const delta of r.textStream) text += delta;
          assert.deepEqual(errors, []);
          assert.equal(text, finalText(target));
          const steps = await r.steps;
          assert.equal(steps.length, 2);
          assertWeatherCalls(steps[0].toolCalls.map((c) => ({ name: c.toolName, args: c.input, id: c.toolCallId })));
          const total = await r.totalUsage;
          assert.equal(total.inputTokens, WEATHER_INPUT + afterToolsInput(target.kind, wire));
          assert.equal(total.outputTokens, CALLS_OUTPUT + FINAL_OUTPUT);
        });

        test('generateObject: the schema reaches the provider, the object comes back parsed', async () => {
          await stack.clear();
          const r = await generateObject({ model: flavour.model(target.model), schema: PERSON, prompt: OBJECT.prompt, ...settings });
          assert.deepEqual(r.object, OBJECT.value);
          assert.equal(r.usage.inputTokens, OBJECT.input);
          assert.equal(r.usage.outputTokens, OBJECT.output);
          assertSchemaSent(await stack.last());
        });

        if (flavour.api === 'messages' && target.kind !== 'anthropic') {
          // Anthropic's native structured outputs (output_config.format), which the AI SDK uses
          // for models it knows support them, here forced for a model served elsewhere.
          test('generateObject with structuredOutputMode "outputFormat"', async () => {
            await stack.clear();
            const r = await generateObject({
              model: flavour.model(target.model), schema: PERSON, prompt: OBJECT.prompt, ...settings,
              providerOptions: { anthropic: { structuredOutputMode: 'outputFormat' } },
            });
            assert.deepEqual(r.object, OBJECT.value);
            assertSchemaSent(await stack.last());
          });
        }
      });
    }
  }

  describe('embeddings (openai.embedding(model); the AI SDK asks for floats)', () => {
    for (const target of EMBED_TARGETS) {
      test(`embedMany and embed, ${target.model} (${target.kind} provider)`, async () => {
        const model = openaiProvider().embedding(target.model);
        await stack.clear();
        const texts = ['one', 'two words', 'three'];
        const many = await embedMany({ model, values: texts, maxRetries: 0 });
        assertVectors(many.embeddings, expectedVectors(target.kind, texts));
        const sent = await stack.last();
        if (target.kind === 'openai') {
          assert.equal(sent.json.encoding_format, 'float');
          assert.equal(many.usage.tokens, 4);  // words of the inputs
        }
        const one = await embed({ model, value: 'solo', maxRetries: 0 });
        assertVectors([one.embedding], expectedVectors(target.kind, ['solo']));
      });
    }
    for (const target of EMBED_TARGETS.filter((t) => t.kind !== 'openai')) {
      test(`embedMany reports usage, ${target.model} (${target.kind} provider)`, async () => {
        const r = await embedMany({ model: openaiProvider().embedding(target.model), values: ['one', 'two words'], maxRetries: 0 });
        assert.ok(Number.isInteger(r.usage.tokens) && r.usage.tokens > 0, `usage: ${JSON.stringify(r.usage)}`);
      });
    }
  });
});

// --- LangChain.js ----------------------------------------------------------------------------
describe('LangChain.js', () => {
  const weatherTool = () => lcTool(async ({ city }) => toolResult(city), {
    name: 'get_weather',
    description: 'Current weather in a city',
    schema: z.object({ city: z.string() }),
  });
  const CHAT_MODELS = [
    {
      name: '@langchain/openai ChatOpenAI',
      dialect: 'openai',
      make: (model) => new ChatOpenAI({ model, apiKey: KEY, configuration: { baseURL: gatewayV1() }, maxRetries: 0 }),
    },
    {
      name: '@langchain/anthropic ChatAnthropic',
      dialect: 'anthropic',
      // The Anthropic client appends /v1/messages itself.
      make: (model) => new ChatAnthropic({ model, apiKey: KEY, anthropicApiUrl: stack.gateway, maxRetries: 0 }),
    },
  ];

  for (const client of CHAT_MODELS) {
    for (const target of TARGETS) {
      const translatedMessages = client.dialect === 'anthropic' && target.kind !== 'anthropic';
      describe(`${client.name}, ${target.model} (${target.kind} provider)`, () => {
        test('invoke: content and usage_metadata', async () => {
          await stack.clear();
          const msg = await client.make(target.model).invoke(ECHO.prompt);
          assert.equal(msg.content, ECHO.text);
          assert.equal(msg.usage_metadata.input_tokens, ECHO.input);
          assert.equal(msg.usage_metadata.output_tokens, ECHO.output);
          assert.equal(msg.usage_metadata.total_tokens, ECHO.input + ECHO.output);
          assert.equal((await stack.last()).path, upstreamPath(target));
        });

        // ChatAnthropic takes a stream's input tokens from message_start alone. Translated from an
        // OpenAI-kind stream, whose usage comes only at its end, that can only be the gateway's
        // estimate; from Gemini, whose every chunk has promptTokenCount, it can be exact.
        const estimatedInput = translatedMessages && target.kind === 'openai';
        test('stream: chunks concatenate to the text, with usage',
          {}, async () => {
          await stack.clear();
          const chunks = [];
          for await (const chunk of await client.make(target.model).stream(STREAM.prompt)) chunks.push(chunk);
          const texts = chunks.map((c) => c.content).filter((t) => t !== '');
          assert.ok(texts.length >= 4, `only ${texts.length} text chunks`);
          assert.equal(texts.join(''), STREAM.text);
          const whole = chunks.reduce((a, c) => a.concat(c));
          assert.equal(whole.content, STREAM.text);
          if (estimatedInput) assert.ok(whole.usage_metadata.input_tokens > 0, `input_tokens ${whole.usage_metadata.input_tokens}`);
          else assert.equal(whole.usage_metadata.input_tokens, STREAM.input);
          // ChatAnthropic adds message_start's output_tokens to message_delta's (cumulative)
          // count, so the count is read from the last chunk that carries usage.
          const withUsage = chunks.filter((c) => c.usage_metadata);
          assert.equal(withUsage.at(-1).usage_metadata.output_tokens, STREAM.output);
          assert.equal((await stack.last()).path, upstreamPath(target, { stream: true }));
        });

        test('bindTools: tool_calls -> ToolMessages -> final answer', async () => {
          await stack.clear();
          const weather = weatherTool();
          const llm = client.make(target.model).bindTools([weather]);
          const messages = [new HumanMessage(WEATHER)];
          const ai = await llm.invoke(messages);
          assertWeatherCalls(ai.tool_calls);
          assert.equal(ai.usage_metadata.input_tokens, WEATHER_INPUT);
          assert.equal(ai.usage_metadata.output_tokens, CALLS_OUTPUT);
          messages.push(ai);
          for (const call of ai.tool_calls) messages.push(await weather.invoke(call));  // a ToolMessage
          const answer = await llm.invoke(messages);
          assert.equal(answer.content, finalText(target));
          assert.deepEqual(answer.tool_calls, []);
          assert.equal(answer.usage_metadata.input_tokens, afterToolsInput(target.kind));
          assert.equal(answer.usage_metadata.output_tokens, FINAL_OUTPUT);
          assertToolResultsSent(target, await stack.last(), ai.tool_calls.map((c) => c.id));
        });

        test('bindTools, streamed: tool call chunks assemble into the calls', async () => {
          const llm = client.make(target.model).bindTools([weatherTool()]);
          const chunks = [];
          for await (const chunk of await llm.stream(WEATHER)) chunks.push(chunk);
          const whole = chunks.reduce((a, c) => a.concat(c));
          assertWeatherCalls(whole.tool_calls);
          assert.ok(chunks.flatMap((c) => c.tool_call_chunks ?? []).length >= 2, 'the calls arrive as tool call chunks');
          assert.equal(chunks.filter((c) => c.usage_metadata).at(-1).usage_metadata.output_tokens, CALLS_OUTPUT);
        });

        if (client.dialect === 'openai') {
          test('withStructuredOutput (response_format json_schema)', async () => {
            await stack.clear();
            const r = await client.make(target.model).withStructuredOutput(PERSON, { includeRaw: true }).invoke(OBJECT.prompt);
            assert.deepEqual(r.parsed, OBJECT.value);
            assert.equal(r.raw.usage_metadata.input_tokens, OBJECT.input);
            assert.equal(r.raw.usage_metadata.output_tokens, OBJECT.output);
            assertSchemaSent(await stack.last());
          });
        } else {
          // ChatAnthropic's default method forces a tool named after the schema; the fake calls
          // the offered tool when the question mentions the weather.
          test('withStructuredOutput (default: a forced tool)', async () => {
            await stack.clear();
            const City = z.object({ city: z.string() }).describe('A city with weather');
            const r = await client.make(target.model).withStructuredOutput(City, { includeRaw: true })
              .invoke('Which city has the best weather?');
            assert.deepEqual(r.parsed, { city: 'Paris' });
            assert.equal(r.raw.usage_metadata.output_tokens, CALLS_OUTPUT);
            assertSchemaSent(await stack.last(), ['city']);
          });

          test('withStructuredOutput method "jsonSchema" (output_config.format)', async () => {
            await stack.clear();
            const r = await client.make(target.model).withStructuredOutput(PERSON, { method: 'jsonSchema' }).invoke(OBJECT.prompt);
            assert.deepEqual(r, OBJECT.value);
            assertSchemaSent(await stack.last());
          });
        }
      });
    }
  }

  describe('@langchain/openai OpenAIEmbeddings (the openai client asks for base64)', () => {
    for (const target of EMBED_TARGETS) {
      test(`embedDocuments and embedQuery, ${target.model} (${target.kind} provider)`, async () => {
        const embeddings = new OpenAIEmbeddings({ model: target.model, apiKey: KEY, configuration: { baseURL: gatewayV1() }, maxRetries: 0 });
        await stack.clear();
        const texts = ['one', 'two words', 'three'];
        assertVectors(await embeddings.embedDocuments(texts), expectedVectors(target.kind, texts));
        const sent = await stack.requests();
        assert.equal(sent.length, 1, 'one batch');
        if (target.kind === 'openai') assert.equal(sent[0].json.encoding_format, 'base64');  // passed on as asked
        assertVectors([await embeddings.embedQuery('solo')], expectedVectors(target.kind, ['solo']));
      });
    }
  });
});

// --- LlamaIndex.TS ---------------------------------------------------------------------------
describe('LlamaIndex.TS @llamaindex/openai', () => {
  const llm = (model) => new LlamaOpenAI({ model, apiKey: KEY, baseURL: gatewayV1(), maxRetries: 0 });
  const weatherTool = () => llamaTool({
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: z.object({ city: z.string() }),
    execute: ({ city }) => toolResult(city),
  });

  for (const target of TARGETS) {
    describe(`OpenAI, ${target.model} (${target.kind} provider)`, () => {
      test('chat and complete: content and usage', async () => {
        await stack.clear();
        const r = await llm(target.model).chat({ messages: [{ role: 'user', content: ECHO.prompt }] });
        assert.equal(r.message.role, 'assistant');
        assert.equal(r.message.content, ECHO.text);
        assert.equal(r.raw.usage.prompt_tokens, ECHO.input);
        assert.equal(r.raw.usage.completion_tokens, ECHO.output);
        assert.equal((await stack.last()).path, upstreamPath(target));
        const c = await llm(target.model).complete({ prompt: 'echo: completed words' });
        assert.equal(c.text, 'completed words');
      });

      test('chat stream: deltas in order, usage chunk when asked for', async () => {
        await stack.clear();
        const stream = await llm(target.model).chat({
          messages: [{ role: 'user', content: STREAM.prompt }],
          stream: true,
          additionalChatOptions: { stream_options: { include_usage: true } },
        });
        const deltas = [];
        let usage;
        for await (const chunk of stream) {
          if (chunk.delta) deltas.push(chunk.delta);
          if (chunk.raw?.usage) usage = chunk.raw.usage;
        }
        assert.ok(deltas.length >= 4, `only ${deltas.length} deltas`);
        assert.equal(deltas.join(''), STREAM.text);
        assert.equal(usage?.prompt_tokens, STREAM.input);
        assert.equal(usage?.completion_tokens, STREAM.output);
        assert.equal((await stack.last()).path, upstreamPath(target, { stream: true }));
      });

      test('exec tool loop: call -> tool result -> final answer', async () => {
        await stack.clear();
        const model = llm(target.model);
        const tools = [weatherTool()];
        const messages = [{ role: 'user', content: WEATHER }];
        const first = await model.exec({ messages, tools });
        assertWeatherCalls(first.toolCalls.map((c) => ({ name: c.name, args: c.input, id: c.id })));
        assert.deepEqual(first.newMessages.slice(1).map((m) => m.options.toolResult.result),
          [toolResult('Paris'), toolResult('Tokyo')]);
        messages.push(...first.newMessages);
        const second = await model.exec({ messages, tools });
        assert.deepEqual(second.toolCalls, []);
        assert.equal(second.newMessages.length, 1);
        assert.equal(second.newMessages[0].content, finalText(target));
        assertToolResultsSent(target, await stack.last(), first.toolCalls.map((c) => c.id));
      });

      // Gemini sends each function call whole; how the gateway splits them into chunks matters.
            test('exec streamed tool loop: streamed calls -> tool results -> streamed answer', async () => {
        await stack.clear();
        const model = llm(target.model);
        const tools = [weatherTool()];
        const messages = [{ role: 'user', content: WEATHER }];
        const first = await model.exec({ messages, tools, stream: true });
        for await (const _ of first.stream) { /* drained: the calls were read already */ }
        assertWeatherCalls(first.toolCalls.map((c) => ({ name: c.name, args: c.input, id: c.id })));
        messages.push(...first.newMessages());
        const second = await model.exec({ messages, tools, stream: true });
        let text = '';
        for await (const chunk of second.stream) text += chunk.delta;
        assert.deepEqual(second.toolCalls, []);
        assert.equal(text, finalText(target));
        assertToolResultsSent(target, await stack.last(), first.toolCalls.map((c) => c.id));
      });

      test('chat with responseFormat (a zod schema -> json_schema)', async () => {
        await stack.clear();
        const r = await llm(target.model).chat({ messages: [{ role: 'user', content: OBJECT.prompt }], responseFormat: PERSON });
        assert.deepEqual(PERSON.parse(JSON.parse(r.message.content)), OBJECT.value);
        assert.equal(r.raw.usage.completion_tokens, OBJECT.output);
        assertSchemaSent(await stack.last());
      });
    });
  }

  describe('OpenAIEmbedding (the openai client asks for base64)', () => {
    for (const target of EMBED_TARGETS) {
      test(`getTextEmbeddings, ${target.model} (${target.kind} provider)`, async () => {
        const embedding = new LlamaOpenAIEmbedding({ model: target.model, apiKey: KEY, baseURL: gatewayV1(), maxRetries: 0 });
        await stack.clear();
        const texts = ['one', 'two words', 'three'];
        assertVectors(await embedding.getTextEmbeddings(texts), expectedVectors(target.kind, texts));
        const sent = await stack.requests();
        assert.equal(sent.length, 1, 'one batch');
        if (target.kind === 'openai') assert.equal(sent[0].json.encoding_format, 'base64');  // passed on as asked
        assertVectors([await embedding.getTextEmbedding('solo')], expectedVectors(target.kind, ['solo']));
      });
    }
  });
});
