// The OpenAI Node SDK and the Vercel AI SDK at their defaults (only baseURL and apiKey set) against a running
// gateway: `node clients.mjs http://127.0.0.1:PORT/v1`. Prints one JSON object, a key per call: what it gave
// back, or {"error": ...}. Exits 1 when any call failed (each failure also on stderr), 2 on bad usage.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, isStepCount, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const baseURL = process.argv[2];
if (!baseURL) {
  console.error("usage: node clients.mjs <gateway base URL, e.g. http://127.0.0.1:8000/v1>");
  process.exit(2);
}
const MODEL = "qwen3:4b";
const apiKey = "unused";
const client = new OpenAI({ baseURL, apiKey });
const openai = createOpenAI({ baseURL, apiKey });

const calls = {
  async chat() {
    const done = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hello" }],
    });
    return { text: done.choices[0].message.content, finish_reason: done.choices[0].finish_reason };
  },

  async chat_stream() {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "hello stream" }],
      stream: true,
    });
    let text = "";
    const finish = [];
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      text += choice?.delta?.content ?? "";
      if (choice?.finish_reason) finish.push(choice.finish_reason);
    }
    return { text, finish_reasons: finish };
  },

  async responses() {
    const response = await client.responses.create({ model: MODEL, input: "hello responses" });
    return { text: response.output_text, status: response.status, id: response.id };
  },

  async responses_stream() {
    const stream = await client.responses.create({ model: MODEL, input: "hello streamed responses", stream: true });
    const types = [];
    let deltas = "";
    let completed = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") deltas += event.delta;
      if (event.type === "response.completed") completed = event.response;
    }
    const final = (completed?.output ?? [])
      .filter((item) => item.type === "message")
      .flatMap((item) => item.content)
      .filter((part) => part.type === "output_text")
      .map((part) => part.text)
      .join("");
    return { text: deltas, final_text: final, status: completed?.status ?? null, types };
  },

  async completion() {
    const done = await client.completions.create({ model: MODEL, prompt: "def fib(n):" });
    return { text: done.choices[0].text, finish_reason: done.choices[0].finish_reason };
  },

  async ai_generate() {
    const result = await generateText({ model: openai(MODEL), prompt: "hello ai sdk" });
    return { text: result.text, finish_reason: result.finishReason, id: result.response.id };
  },

  async ai_stream() {
    const result = streamText({ model: openai(MODEL), prompt: "hello streamed ai sdk" });
    const parts = [];
    for await (const part of result.textStream) parts.push(part);
    const { id } = await result.response;
    return { text: parts.join(""), parts: parts.length, finish_reason: await result.finishReason, id };
  },

  async ai_tool() {
    const asked = [];
    const result = await generateText({
      model: openai(MODEL),
      prompt: "#tool what is the weather in Paris?",
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: z.object({ city: z.string(), unit: z.string() }),
          execute: async ({ city, unit }) => {
            asked.push({ city, unit });
            return `18 C in ${city}`;
          },
        }),
      },
      stopWhen: isStepCount(2),
    });
    return {
      text: result.text,
      tool_inputs: asked,
      finish_reason: result.finishReason,
      ids: result.steps.map((step) => step.response.id),
    };
  },
};

const results = {};
let failed = false;
for (const [name, call] of Object.entries(calls)) {
  try {
    results[name] = await call();
  } catch (error) {
    failed = true;
    const detail = { error: String(error?.stack ?? error) };
    if (error?.status !== undefined) detail.status = error.status; // openai SDK's APIError
    if (error?.statusCode !== undefined) detail.status = error.statusCode; // AI SDK's APICallError
    if (error?.responseBody !== undefined) detail.body = error.responseBody;
    if (error?.requestBodyValues !== undefined) detail.request = error.requestBodyValues;
    results[name] = detail;
    console.error(`${name} failed: ${detail.error}`);
  }
}
console.log(JSON.stringify(results, null, 2));
process.exit(failed ? 1 : 0);
