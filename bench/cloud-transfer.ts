/**
 * Figure 1 of the cloud benchmark: a large payload up and down through the API (multipart plan,
 * presigned part PUTs, complete; presigned GET, ranged or whole), against the AWS SDK talking to the
 * same S3 server directly (`@aws-sdk/lib-storage` `Upload`, `GetObject`). Rounds interleave the two
 * paths, alternating which goes first; every download is checked against the hash of what was
 * uploaded.
 * @module
 */
import { Agent, request } from 'node:http';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { xxh128Hex } from 'cacheness/stores';
import { median } from './stats.js';

export interface TransferOptions {
  /** Base URL of the API (served over loopback). */
  base: string;
  /** An API key with read and write scopes. */
  apiKey: string;
  s3: S3Client;
  bucket: string;
  /** The payload: random bytes; its first 4 bytes change every round. */
  payload: Buffer;
  rounds: number;
  /** Multipart part size of both paths, and the size of each ranged GET. */
  partBytes: number;
  /** Parts (or ranges) in flight at once, on both paths. */
  concurrency: number;
}

/** Seconds of each timed round. */
export interface Series {
  seconds: number[];
}

export interface TransferResults {
  bytes: number;
  partCount: number;
  apiUpload: Series;
  /** The same API upload with the part PUTs sent by node:http instead of fetch (the client's HTTP stack, not the API). */
  apiUploadHttp: Series;
  /** Of the API upload: the create request (plan, CreateMultipartUpload, part URLs), the part PUTs, the complete request. */
  apiUploadPhases: { create: number[]; parts: number[]; complete: number[] };
  sdkUpload: Series;
  apiRangedGet: Series;
  apiSingleGet: Series;
  /** GetObject with transformToByteArray (the SDK's documented way to read a whole body). */
  sdkGet: Series;
  /** GetObject with its body streamed into a preallocated buffer (how the API path reads). */
  sdkGetStreamed: Series;
  /** Seconds of one XXH3-128 pass over the payload (the blobId the API asks for). */
  hashSeconds: number;
}

const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Runs `fn` on `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}, expected ${status}: ${(await res.text()).slice(0, 500)}`);
}

/** Reads a response body into `dest` at `offset`; returns the byte count. */
async function readInto(res: Response, dest: Buffer, offset: number, limit: number): Promise<number> {
  if (!res.body) return 0;
  let at = offset;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (at + chunk.length > offset + limit) throw new Error(`The response carried more than the ${limit} bytes asked for.`);
    dest.set(chunk, at);
    at += chunk.length;
  }
  return at - offset;
}

interface PartUrl {
  partNumber: number;
  url: string;
}

/** Part PUT transports: Node's fetch (undici), as the issue specifies, or node:http with a keep-alive agent. */
type Transport = 'fetch' | 'http';

/** PUTs `body` to a presigned URL; returns the ETag. */
async function putPart(url: string, body: Uint8Array, transport: Transport, agent: Agent): Promise<string> {
  if (transport === 'fetch') {
    const res = await fetch(url, { method: 'PUT', body });
    await expectStatus(res, 200, 'PUT part');
    await res.arrayBuffer();
    const etag = res.headers.get('etag');
    if (!etag) throw new Error('A part came back without an ETag.');
    return etag;
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', agent, headers: { 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const etag = res.headers.etag;
        if (res.statusCode !== 200) reject(new Error(`PUT part: HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 500)}`));
        else if (!etag) reject(new Error('A part came back without an ETag.'));
        else resolve(etag);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function createTransferClient(o: TransferOptions) {
  const agent = new Agent({ keepAlive: true });
  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${o.base}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${o.apiKey}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });

  /** The client side of an API upload; returns the phase timings in seconds. */
  async function apiUpload(
    key: string,
    data: Buffer,
    blobId: string,
    transport: Transport = 'fetch',
  ): Promise<{ create: number; parts: number; complete: number; partCount: number }> {
    const t0 = process.hrtime.bigint();
    const res = await api(`/v1/entries/${encodeURIComponent(key)}`, {
      method: 'PUT',
      body: { handler: 'bytes@1', type: 'Buffer', codec: 'none', size: data.length, storedSize: data.length, contentHash: blobId, blobId },
    });
    await expectStatus(res, 202, `PUT /v1/entries/${key}`);
    const { upload } = (await res.json()) as { upload: { id: string; method: string; partSize: number; partCount: number; parts: PartUrl[] } };
    if (upload.method !== 'MULTIPART') throw new Error(`Expected a multipart plan for ${data.length} bytes, got ${upload.method}.`);
    const create = since(t0);

    const t1 = process.hrtime.bigint();
    const urls = new Map(upload.parts.map((p) => [p.partNumber, p.url]));
    const urlOf = async (n: number): Promise<string> => {
      let url = urls.get(n);
      if (!url) {
        // Part URLs come 100 at a time with the plan: ask for the next batch.
        const numbers = Array.from({ length: Math.min(1000, upload.partCount - n + 1) }, (_, i) => n + i);
        const more = await api(`/v1/uploads/${upload.id}/parts`, { method: 'POST', body: { partNumbers: numbers } });
        await expectStatus(more, 200, 'POST parts');
        for (const p of ((await more.json()) as { parts: PartUrl[] }).parts) urls.set(p.partNumber, p.url);
        url = urls.get(n) as string;
      }
      return url;
    };
    const etags: { partNumber: number; etag: string }[] = [];
    const numbers = Array.from({ length: upload.partCount }, (_, i) => i + 1);
    await pool(numbers, o.concurrency, async (n) => {
      const body = data.subarray((n - 1) * upload.partSize, Math.min(n * upload.partSize, data.length));
      etags.push({ partNumber: n, etag: await putPart(await urlOf(n), body, transport, agent) });
    });
    const parts = since(t1);

    const t2 = process.hrtime.bigint();
    const done = await api(`/v1/uploads/${upload.id}/complete`, { method: 'POST', body: { parts: etags } });
    await expectStatus(done, 201, 'POST complete');
    await done.arrayBuffer();
    return { create, parts, complete: since(t2), partCount: upload.partCount };
  }

  /** Reads an entry's presigned URL from the API. */
  async function apiEntryUrl(key: string): Promise<{ url: string; size: number }> {
    const res = await api(`/v1/entries/${encodeURIComponent(key)}`);
    await expectStatus(res, 200, `GET /v1/entries/${key}`);
    const { url, entry } = (await res.json()) as { url?: string; entry: { storedSize: number } };
    if (!url) throw new Error(`GET /v1/entries/${key} returned no URL.`);
    return { url, size: entry.storedSize };
  }

  /** Downloads through the API into `dest`: `ranges` true for parallel ranged GETs of `partBytes`, false for one GET. */
  async function apiDownload(key: string, dest: Buffer, ranges: boolean): Promise<void> {
    const { url, size } = await apiEntryUrl(key);
    if (size > dest.length) throw new Error(`Entry ${key} has ${size} bytes; the buffer ${dest.length}.`);
    if (!ranges) {
      const res = await fetch(url);
      await expectStatus(res, 200, 'GET object');
      const got = await readInto(res, dest, 0, size);
      if (got !== size) throw new Error(`GET object: ${got} bytes, expected ${size}.`);
      return;
    }
    const starts = Array.from({ length: Math.ceil(size / o.partBytes) }, (_, i) => i * o.partBytes);
    await pool(starts, o.concurrency, async (start) => {
      const end = Math.min(start + o.partBytes, size) - 1;
      const res = await fetch(url, { headers: { range: `bytes=${start}-${end}` } });
      await expectStatus(res, 206, `GET bytes=${start}-${end}`);
      const got = await readInto(res, dest, start, end - start + 1);
      if (got !== end - start + 1) throw new Error(`GET bytes=${start}-${end}: ${got} bytes.`);
    });
  }

  async function sdkUpload(key: string, data: Buffer): Promise<void> {
    await new Upload({ client: o.s3, params: { Bucket: o.bucket, Key: key, Body: data }, partSize: o.partBytes, queueSize: o.concurrency }).done();
  }

  async function sdkGet(key: string): Promise<Uint8Array> {
    const out = await o.s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
    if (!out.Body) throw new Error(`GetObject ${key}: no body.`);
    return out.Body.transformToByteArray();
  }

  async function sdkGetInto(key: string, dest: Buffer): Promise<number> {
    const out = await o.s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
    if (!out.Body) throw new Error(`GetObject ${key}: no body.`);
    let at = 0;
    for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
      if (at + chunk.length > dest.length) throw new Error(`GetObject ${key}: more bytes than the buffer holds.`);
      dest.set(chunk, at);
      at += chunk.length;
    }
    return at;
  }

  /** The object key behind a presigned URL (path style: `/bucket/key`). */
  const objectKeyOf = (url: string) => decodeURIComponent(new URL(url).pathname).split('/').slice(2).join('/');

  return { apiUpload, apiDownload, apiEntryUrl, sdkUpload, sdkGet, sdkGetInto, objectKeyOf, close: () => agent.destroy() };
}

function check(label: string, got: Uint8Array, length: number, want: string): void {
  const view = got.length === length ? got : got.subarray(0, length);
  const hash = xxh128Hex(view);
  if (got.length < length || hash !== want) throw new Error(`${label}: the bytes read back differ from those written (XXH3-128 ${hash}, expected ${want}).`);
}

export async function runTransfer(o: TransferOptions): Promise<TransferResults> {
  const c = createTransferClient(o);
  const data = o.payload;
  const dest = Buffer.allocUnsafe(data.length);
  const res: TransferResults = {
    bytes: data.length,
    partCount: 0,
    apiUpload: { seconds: [] },
    apiUploadHttp: { seconds: [] },
    apiUploadPhases: { create: [], parts: [], complete: [] },
    sdkUpload: { seconds: [] },
    apiRangedGet: { seconds: [] },
    apiSingleGet: { seconds: [] },
    sdkGet: { seconds: [] },
    sdkGetStreamed: { seconds: [] },
    hashSeconds: 0,
  };
  const runId = Date.now().toString(36);

  // Untimed warm-up of both paths (connections, JIT), on a payload of three parts.
  {
    const small = Buffer.from(data.subarray(0, Math.min(data.length, 2 * o.partBytes + 12_345)));
    small.writeUInt32LE(0xffff_ffff, 0);
    const id = xxh128Hex(small);
    await c.apiUpload(`bench/${runId}/warm-up`, small, id);
    const smallHttp = Buffer.from(small);
    smallHttp.writeUInt32LE(0xffff_fffe, 0);
    await c.apiUpload(`bench/${runId}/warm-up-http`, smallHttp, xxh128Hex(smallHttp), 'http');
    await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: c.objectKeyOf((await c.apiEntryUrl(`bench/${runId}/warm-up-http`)).url) }));
    await c.apiDownload(`bench/${runId}/warm-up`, dest, true);
    check('warm-up API download', dest, small.length, id);
    await c.sdkUpload(`bench/${runId}/warm-up-direct`, small);
    check('warm-up direct download', await c.sdkGet(`bench/${runId}/warm-up-direct`), small.length, id);
    await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: c.objectKeyOf((await c.apiEntryUrl(`bench/${runId}/warm-up`)).url) }));
    await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: `bench/${runId}/warm-up-direct` }));
  }

  for (let r = 0; r < o.rounds; r++) {
    // New bytes every round: the API deduplicates content a namespace already holds.
    data.writeUInt32LE(r, 0);
    const t = process.hrtime.bigint();
    const blobId = xxh128Hex(data);
    res.hashSeconds = since(t);
    const apiKey = `bench/${runId}/round-${r}`;
    const httpKey = `bench/${runId}/round-${r}-http`;
    const directKey = `bench/${runId}/direct-${r}`;

    const upApi = async () => {
      const t0 = process.hrtime.bigint();
      const phases = await c.apiUpload(apiKey, data, blobId);
      res.apiUpload.seconds.push(since(t0));
      res.apiUploadPhases.create.push(phases.create);
      res.apiUploadPhases.parts.push(phases.parts);
      res.apiUploadPhases.complete.push(phases.complete);
      res.partCount = phases.partCount;
    };
    const upApiHttp = async () => {
      // Other bytes again (else the namespace already holds them and the upload is skipped), hashed untimed.
      data.writeUInt32LE(r + 1_000_000, 0);
      const id = xxh128Hex(data);
      const t0 = process.hrtime.bigint();
      await c.apiUpload(httpKey, data, id, 'http');
      res.apiUploadHttp.seconds.push(since(t0));
      const { url } = await c.apiEntryUrl(httpKey);
      await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: c.objectKeyOf(url) }));
      data.writeUInt32LE(r, 0);
    };
    const upSdk = async () => {
      const t0 = process.hrtime.bigint();
      await c.sdkUpload(directKey, data);
      res.sdkUpload.seconds.push(since(t0));
    };
    const downRanged = async () => {
      dest.fill(0, 0, 16);
      const t0 = process.hrtime.bigint();
      await c.apiDownload(apiKey, dest, true);
      res.apiRangedGet.seconds.push(since(t0));
      check('API ranged download', dest, data.length, blobId);
    };
    const downSingle = async () => {
      dest.fill(0, 0, 16);
      const t0 = process.hrtime.bigint();
      await c.apiDownload(apiKey, dest, false);
      res.apiSingleGet.seconds.push(since(t0));
      check('API single download', dest, data.length, blobId);
    };
    const downSdk = async () => {
      const t0 = process.hrtime.bigint();
      const got = await c.sdkGet(directKey);
      res.sdkGet.seconds.push(since(t0));
      if (got.length !== data.length) throw new Error(`Direct GetObject: ${got.length} bytes, expected ${data.length}.`);
      check('direct download', got, data.length, blobId);
    };
    const downSdkStreamed = async () => {
      dest.fill(0, 0, 16);
      const t0 = process.hrtime.bigint();
      const got = await c.sdkGetInto(directKey, dest);
      res.sdkGetStreamed.seconds.push(since(t0));
      if (got !== data.length) throw new Error(`Direct GetObject, streamed: ${got} bytes, expected ${data.length}.`);
      check('direct download, streamed', dest, data.length, blobId);
    };
    const ups = r % 2 === 0 ? [upApi, upApiHttp, upSdk] : [upSdk, upApiHttp, upApi];
    for (const f of ups) await f();
    const downs = r % 2 === 0 ? [downRanged, downSingle, downSdk, downSdkStreamed] : [downSdkStreamed, downSdk, downSingle, downRanged];
    for (const f of downs) await f();

    // Free the stand-in's disk before the next round (untimed).
    const { url } = await c.apiEntryUrl(apiKey);
    await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: c.objectKeyOf(url) }));
    await o.s3.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: directKey }));
  }
  c.close();
  return res;
}

/** Median MB/s (1 MB = 10^6 bytes) of a series. */
export function mbps(bytes: number, s: Series): number {
  return bytes / 1e6 / median(s.seconds);
}
