/**
 * soraq's TypeScript client: typed calls generated from soraq's OpenAPI (openapi-typescript)
 * through openapi-fetch, plus the pieces a Next.js app needs around them: createJob (with
 * `Prefer: wait`), waitForJob (the event stream, falling back to held GETs), streamJob, and
 * verifyWebhook (Web Crypto, for route handlers on Node or the edge).
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";
export type Job = components["schemas"]["JobOut"];
export type JobCreate = components["schemas"]["JobCreate"];
export type Batch = components["schemas"]["BatchOut"];
export type BatchCreate = components["schemas"]["BatchCreate"];
export type SoraqClient = Client<paths>;

export const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "canceled"]);
const MAX_WAIT = 60; // seconds the server holds a request (Prefer: wait)

/** An error answer from soraq, with its stable code (`validation_error`, `budget_exceeded`, …). */
export class SoraqError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: { field: string; message: string }[] = [],
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "SoraqError";
  }
}

export interface SoraqOptions {
  baseUrl: string;
  apiKey: string;
  fetch?: typeof fetch;
}

/** A typed openapi-fetch client for soraq: `client.GET("/jobs/{job_id}", …)` and so on. */
export function createSoraq({ baseUrl, apiKey, fetch: fetchImpl }: SoraqOptions): SoraqClient {
  return createClient<paths>({
    baseUrl: baseUrl.replace(/\/$/, ""),
    headers: { authorization: `Bearer ${apiKey}` },
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
}

function fail(response: Response, error: unknown): never {
  const body = (error ?? {}) as { error?: { code?: string; message?: string; fields?: [] } };
  throw new SoraqError(
    response.status,
    body.error?.code ?? "http_error",
    body.error?.message ?? response.statusText,
    body.error?.fields ?? [],
  );
}

function preferWait(seconds?: number): Record<string, string> {
  return seconds ? { prefer: `wait=${Math.max(0, Math.min(MAX_WAIT, Math.floor(seconds)))}` } : {};
}

/** Create a job; with `wait` (≤ 60 s) the answer holds until the job ends or the time runs
 * out — check `TERMINAL.has(job.status)`. */
export async function createJob(
  client: SoraqClient,
  body: JobCreate,
  options: { wait?: number; idempotencyKey?: string } = {},
): Promise<Job> {
  const headers: Record<string, string> = { ...preferWait(options.wait) };
  if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
  const { data, error, response } = await client.POST("/jobs", { body, headers });
  if (data === undefined) fail(response, error);
  return data;
}

export async function getJob(client: SoraqClient, id: string, wait?: number): Promise<Job> {
  const { data, error, response } = await client.GET("/jobs/{job_id}", {
    params: { path: { job_id: id } },
    headers: preferWait(wait),
  });
  if (data === undefined) fail(response, error);
  return data;
}

/** Erase a finished job's data (prompt, inputs, metadata, files); the answer is its tombstone,
 * `deleted: true`. A job that has not ended is refused (409 `job_not_finished`): cancel it
 * first. */
export async function deleteJob(client: SoraqClient, id: string): Promise<Job> {
  const { data, error, response } = await client.DELETE("/jobs/{job_id}", {
    params: { path: { job_id: id } },
  });
  if (data === undefined) fail(response, error);
  return data;
}

export async function createBatch(
  client: SoraqClient,
  body: BatchCreate,
  options: { idempotencyKey?: string } = {},
): Promise<Batch> {
  const headers: Record<string, string> = {};
  if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
  const { data, error, response } = await client.POST("/batches", { body, headers });
  if (data === undefined) fail(response, error);
  return data;
}

export interface JobEvent {
  id: string;
  /** `status`, `progress` or `completed` (whose `data.job` is the finished job). */
  type: string;
  data: { job_id: string; status?: string; progress?: number; job?: Job; [key: string]: unknown };
}

/** Reads `text/event-stream` bytes into events (id, event, multi-line data, comments). */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<JobEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let id = "";
  let type = "message";
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
      if (line === "") {
        if (data.length) yield { id, type, data: JSON.parse(data.join("\n")) };
        type = "message";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = value;
        else if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    }
  }
}

/** The job's events, its history first, until `completed`; a dropped connection resumes
 * from the last event seen (Last-Event-ID). */
export async function* streamJob(
  options: SoraqOptions,
  id: string,
  signal?: AbortSignal,
): AsyncGenerator<JobEvent> {
  const fetchImpl = options.fetch ?? fetch;
  let lastEventId = "";
  for (let attempt = 0; attempt < 100; attempt++) {
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.apiKey}`,
      accept: "text/event-stream",
    };
    if (lastEventId) headers["last-event-id"] = lastEventId;
    let response: Response;
    try {
      response = await fetchImpl(
        `${options.baseUrl.replace(/\/$/, "")}/jobs/${encodeURIComponent(id)}/events`,
        { headers, signal },
      );
    } catch (error) {
      if (signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (!response.ok || !response.body) {
      fail(response, await response.json().catch(() => undefined));
    }
    try {
      for await (const event of readEvents(response.body)) {
        lastEventId = event.id || lastEventId;
        yield event;
        if (event.type === "completed") return;
      }
      return;
    } catch (error) {
      if (signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** The job once it has ended: its event stream, else (a proxy that breaks streaming) GETs
 * held with `Prefer: wait`. Rejects after `timeoutMs`. */
export async function waitForJob(
  options: SoraqOptions,
  id: string,
  { timeoutMs = 900_000 }: { timeoutMs?: number } = {},
): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const event of streamJob(options, id, abort.signal)) {
      if (event.type === "completed" && event.data.job) return event.data.job;
    }
  } catch (error) {
    if (error instanceof SoraqError && error.status !== 406 && error.status !== 501) throw error;
  } finally {
    clearTimeout(timer);
  }
  const client = createSoraq(options);
  while (Date.now() < deadline) {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    const job = await getJob(client, id, Math.max(1, Math.min(MAX_WAIT, left)));
    if (TERMINAL.has(job.status)) return job;
  }
  throw new Error(`job ${id} did not end within ${timeoutMs} ms`);
}

function base64ToBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** Checks a soraq webhook (Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" with the
 * client's `whsec_` secret, within five minutes) and returns its parsed JSON; throws if it
 * is forged, altered or stale. Pass the raw body text, before any JSON parsing. */
export async function verifyWebhook(
  body: string,
  headers: Headers | Record<string, string>,
  secret: string,
  now: number = Date.now() / 1000,
): Promise<{ type: string; timestamp: string; data: Record<string, unknown> }> {
  const get = (name: string): string | null =>
    headers instanceof Headers
      ? headers.get(name)
      : (Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1] ?? null);
  const id = get("webhook-id");
  const timestamp = get("webhook-timestamp");
  const signatures = get("webhook-signature");
  if (!id || !timestamp || !signatures) throw new Error("missing webhook headers");
  const sentAt = Number(timestamp);
  if (!Number.isInteger(sentAt) || Math.abs(now - sentAt) > 300) {
    throw new Error("webhook timestamp is too old or in the future");
  }
  const key = await crypto.subtle.importKey(
    "raw",
    base64ToBytes(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  const expected = bytesToBase64(await crypto.subtle.sign("HMAC", key, signed));
  for (const candidate of signatures.split(" ")) {
    const [version, signature] = candidate.split(",", 2);
    if (version === "v1" && signature !== undefined && timingSafeEqual(signature, expected)) {
      return JSON.parse(body);
    }
  }
  throw new Error("no webhook signature matches");
}
