// Runs against the soraq named by SORAQ_URL and SORAQ_API_KEY when they are set (the
// variables soraq's CLI reads), else against a sandbox stack this test starts itself
// (`python -m devstack.serve` from the repository; SORAQ_PYTHON names the interpreter).
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

import {
  createBatch,
  createJob,
  createSoraq,
  type JobEvent,
  SoraqError,
  type SoraqOptions,
  streamJob,
  TERMINAL,
  verifyWebhook,
  waitForJob,
} from "../src/index.js";

const repository = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
let options: SoraqOptions;
let webhookSecret: string | undefined;
let child: ChildProcess | undefined;

before(async () => {
  if (process.env.SORAQ_URL && process.env.SORAQ_API_KEY) {
    options = { baseUrl: process.env.SORAQ_URL, apiKey: process.env.SORAQ_API_KEY };
    webhookSecret = process.env.SORAQ_WEBHOOK_SECRET;
    return;
  }
  const python = process.env.SORAQ_PYTHON ?? resolve(repository, ".venv/bin/python");
  child = spawn(python, ["-m", "devstack.serve"], {
    cwd: repository,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const started = JSON.parse(line);
    options = { baseUrl: started.url, apiKey: started.api_key };
    webhookSecret = started.webhook_secret;
    break;
  }
});

after(() => {
  child?.stdin?.end();
});

const unique = (prompt: string): string => `${prompt} ${Math.random().toString(16).slice(2, 10)}`;

test("a fast job comes back finished from one request with Prefer: wait", async () => {
  const job = await createJob(createSoraq(options), { prompt: unique("A kite") }, { wait: 10 });
  assert.equal(job.status, "succeeded");
  assert.ok(job.result?.video_urls[0]);
});

test("a slow job streams every event in order, then waitForJob has it", async () => {
  const client = createSoraq(options);
  const job = await createJob(client, { prompt: unique("A slow kite [kie:slow=3]") });
  assert.ok(!TERMINAL.has(job.status));
  const events: JobEvent[] = [];
  for await (const event of streamJob(options, job.id)) events.push(event);
  const ids = events.map((e) => Number(e.id));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(events[0]?.data.status, "queued");
  assert.equal(events.at(-1)?.type, "completed");
  assert.equal(events.at(-1)?.data.job?.status, "succeeded");
  const done = await waitForJob(options, job.id, { timeoutMs: 10_000 });
  assert.equal(done.id, job.id);
  assert.equal(done.status, "succeeded");
});

test("a batch is accepted whole, and a bad item is named by its index", async () => {
  const client = createSoraq(options);
  const batch = await createBatch(client, {
    jobs: [0, 1, 2].map((i) => ({ prompt: unique(`Scene ${i}`) })),
  });
  assert.equal(batch.job_count, 3);
  await assert.rejects(
    createBatch(client, { jobs: [{ prompt: "fine" }, { prompt: "" }] }),
    (error: unknown) =>
      error instanceof SoraqError &&
      error.status === 422 &&
      error.fields[0]?.field === "jobs[1].prompt",
  );
});

test("verifyWebhook accepts the reference library's signature and refuses a changed body", async () => {
  // Signed by the Standard Webhooks Python library with this secret, id and timestamp.
  const secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
  const body = '{"type":"job.succeeded","data":{"id":"job_1"}}';
  const headers = {
    "Webhook-Id": "msg_test",
    "Webhook-Timestamp": "1764460800",
    "Webhook-Signature": "v1,ClhCAQiT62kRETOHzA7fR4HCAKVxsyROyI0NXk+9Q/E=",
  };
  const event = await verifyWebhook(body, headers, secret, 1764460800);
  assert.equal(event.type, "job.succeeded");
  await assert.rejects(verifyWebhook(body.replace("job_1", "job_2"), headers, secret, 1764460800));
  await assert.rejects(verifyWebhook(body, headers, secret, 1764460800 + 3600));
});

const knowsSecret = !process.env.SORAQ_URL || Boolean(process.env.SORAQ_WEBHOOK_SECRET);

test("a real webhook from soraq verifies", { skip: !knowsSecret && "set SORAQ_WEBHOOK_SECRET" }, async () => {
  assert.ok(webhookSecret);
  const received: { body: string; headers: Headers }[] = [];
  const server: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(request.headers)) if (typeof v === "string") headers.set(k, v);
      received.push({ body, headers });
      response.end("ok");
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  try {
    const port = (server.address() as AddressInfo).port;
    const job = await createJob(
      createSoraq(options),
      { prompt: unique("Signed"), webhook_url: `http://127.0.0.1:${port}/hook` },
      { wait: 20 },
    );
    const deadline = Date.now() + 20_000;
    while (!received.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const [delivery] = received;
    assert.ok(delivery, "no webhook arrived");
    const event = await verifyWebhook(delivery.body, delivery.headers, webhookSecret);
    assert.equal(event.type, "job.succeeded");
    assert.equal(event.data.id, job.id);
  } finally {
    server.close();
  }
});
