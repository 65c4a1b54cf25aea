/**
 * HTTP attempts with bounded time, and the retry loop around them: shared by the API client (JSON
 * calls) and the transfers (presigned part uploads and ranged downloads straight to S3).
 * @module
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { type CachenessError, checkAborted } from '../errors.js';

/** Time limits of one attempt, and the connections it reuses. */
export interface Transport {
  /** Time to open a connection, in ms. */
  connectTimeoutMs: number;
  /** Once connected, the longest time with no byte sent or received, in ms. */
  responseTimeoutMs: number;
  http: HttpAgent;
  https: HttpsAgent;
}

/** Keep-alive agents for http and https. */
export function keepAliveAgents(): Pick<Transport, 'http' | 'https'> {
  return { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
}

/** An answer: its status, headers and body (in `into`, when given and the answer was a 2xx; empty when streamed). */
export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  /** The answer held more than `into` could take (a server ignoring a Range, say); `body` is what fit. */
  overflow?: true;
}
/** A failed attempt: the network error, and whether the request may have reached the server. */
export interface NetworkFailure {
  error: NodeJS.ErrnoException;
  sent: boolean;
  /** The body's own source failed (reading the bytes to send), not the network: not worth a retry. */
  source?: true;
  /** The answer's sink failed (see `stream` of {@link attempt}), not the network. */
  sink?: true;
}

/** Errors of the network layer: the request may not have reached the server, or no answer came. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

/**
 * One request, never longer than the transport's limits or `deadline` (ms since the epoch). A 2xx
 * body goes into `into` when given (its first bytes; a longer answer is a failure), else into new memory;
 * or, when `stream` gives a sink for the answer, to that sink piece by piece as it arrives.
 */
export function attempt(
  t: Transport,
  url: URL,
  o: {
    method: string;
    headers: Record<string, string | number>;
    /** The body: bytes, or pieces written as the connection takes them (for bodies too large to hold). */
    body?: Uint8Array | (() => AsyncIterable<Uint8Array>);
    deadline: number;
    into?: Uint8Array;
    /**
     * Called once the status and headers are in: a sink for the body, or undefined to take it as usual.
     * The answer is paused while the sink handles a piece (so memory holds one piece per request), and
     * settles once the sink has handled the last; a sink failure ends it (`sink: true`).
     */
    stream?: (status: number, headers: IncomingHttpHeaders) => ((piece: Buffer) => Promise<void>) | undefined;
    /** Stops the attempt (a network failure; {@link retrying} then throws `EABORTED`). */
    signal?: AbortSignal | undefined;
  },
): Promise<Answer | NetworkFailure> {
  return new Promise((resolve) => {
    let sent = false;
    let answered = false;
    let settled = false;
    /** The piece a stream's sink is handling, if any: the attempt never ends before it does. */
    let sinking: Promise<void> | undefined;
    const finish = (r: Answer | NetworkFailure) => {
      if (settled) return;
      if (sinking) {
        // A cut-off, timeout or abort while the sink writes: end once it is done, so no retry can overlap it.
        void sinking.then(() => finish(r));
        return;
      }
      settled = true;
      clearTimeout(timer);
      clearInterval(watch);
      o.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onAbort = () => fail('ABORT_ERR', 'the operation was aborted');
    const https = url.protocol === 'https:';
    const req = (https ? (httpsRequest as typeof httpRequest) : httpRequest)(url, { method: o.method, agent: https ? t.https : t.http, headers: o.headers });
    const fail = (code: string, message: string) => req.destroy(Object.assign(new Error(message), { code }));
    if (o.deadline <= Date.now()) {
      queueMicrotask(() => fail('ETIMEDOUT', 'the deadline passed before the request could start'));
    }
    if (o.signal?.aborted) queueMicrotask(onAbort);
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    // Connecting has its own limit; after that the attempt fails only when no byte moves either way for
    // responseTimeoutMs (a large upload or download may take long, but never stalls that long), or at the deadline.
    const timer = setTimeout(() => fail('ETIMEDOUT', `no connection within ${t.connectTimeoutMs} ms`), Math.max(0, Math.min(t.connectTimeoutMs, o.deadline - Date.now())));
    let watch: NodeJS.Timeout | undefined;
    const connected = (socket: Socket) => {
      sent = true;
      clearTimeout(timer);
      let moved = socket.bytesRead + socket.bytesWritten;
      let lastMove = Date.now();
      watch = setInterval(
        () => {
          const now = Date.now();
          const bytes = socket.bytesRead + socket.bytesWritten;
          if (bytes !== moved || sinking) {
            // The answer is paused while the sink writes: a slow disk is not a stalled network.
            moved = bytes;
            lastMove = now;
          }
          if (now >= o.deadline) fail('ETIMEDOUT', 'the deadline passed');
          else if (now - lastMove >= t.responseTimeoutMs) fail('ETIMEDOUT', `no progress for ${t.responseTimeoutMs} ms`);
        },
        Math.max(10, Math.min(1_000, t.responseTimeoutMs / 4)),
      );
    };
    req.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => connected(socket));
      else connected(socket); // a kept-alive connection
    });
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const ok = (res.statusCode ?? 0) < 300;
      const into = ok ? o.into : undefined;
      const sink = o.stream?.(res.statusCode ?? 0, res.headers);
      const chunks: Buffer[] = [];
      let n = 0;
      let ended = false;
      res.on('data', (c: Buffer) => {
        if (settled) return;
        if (sink) {
          res.pause(); // until the sink is done with this piece
          sinking = sink(c).then(
            () => {
              sinking = undefined;
              n += c.length;
              if (!settled && !ended) res.resume();
            },
            (error: NodeJS.ErrnoException) => {
              sinking = undefined;
              finish({ error, sent: true, sink: true });
              res.destroy();
              req.destroy();
            },
          );
          return;
        }
        if (into) {
          if (n + c.length > into.length) {
            // More than asked for: the server is wrong, not the network. Stop reading, without an error event.
            finish({ status: res.statusCode ?? 0, headers: res.headers, body: into.subarray(0, n), overflow: true });
            res.destroy();
            req.destroy();
            return;
          }
          into.set(c, n);
        } else chunks.push(c);
        n += c.length;
      });
      res.on('end', () => {
        ended = true;
        const body = sink ? new Uint8Array(0) : into ? into.subarray(0, n) : Buffer.concat(chunks, n);
        finish({ status: res.statusCode ?? 0, headers: res.headers, body }); // after the sink's last piece
      });
      res.on('error', (error) => finish({ error, sent: true }));
      res.on('close', () => {
        if (!ended) finish({ error: Object.assign(new Error('the answer was cut off'), { code: 'ECONNRESET' }), sent: true });
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive connection the server had already closed: the request never reached it.
      const stale = req.reusedSocket && !answered && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
      finish({ error: NETWORK_CODES.has(error.code ?? '') ? error : Object.assign(error, { code: error.code ?? 'ECONNABORTED' }), sent: sent && !stale });
    });
    const body = o.body;
    if (typeof body !== 'function') req.end(body);
    else {
      (async () => {
        for await (const piece of body()) {
          if (settled || req.destroyed) return;
          if (!req.write(piece)) {
            await new Promise<void>((r) => {
              // Whichever comes first; the other listener goes too, or every wait would leave one behind.
              const done = () => {
                req.off('drain', done);
                req.off('close', done);
                r();
              };
              req.on('drain', done);
              req.on('close', done);
            });
          }
        }
        req.end();
      })().catch((error: NodeJS.ErrnoException) => {
        // The body's source failed: nothing reached the server whole, and the network is not to blame.
        finish({ error, sent: false, source: true });
        req.destroy();
      });
    }
  });
}

/** What to do with one attempt's outcome. */
export type Verdict<T> = { value: T } | { failure: CachenessError; retryable: boolean; waitMs?: number };

/**
 * Runs `once` until `judge` returns a value, a failure that is not retryable, `retries` retries are
 * spent, or the next wait would pass `deadline`. Waits back off exponentially with jitter (100 ms
 * doubling to 2 s), or as long as the server asked (`waitMs`, from Retry-After).
 */
export async function retrying<T>(
  retries: number,
  deadline: number,
  once: () => Promise<Answer | NetworkFailure>,
  judge: (r: Answer | NetworkFailure) => Verdict<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (let n = 0; ; n++) {
    checkAborted(signal, 'A transfer');
    const v = judge(await once());
    if ('value' in v) return v.value; // done is done, even if the signal fired meanwhile
    checkAborted(signal, 'A transfer');
    if (!v.retryable || n >= retries) throw v.failure;
    const delay = v.waitMs ?? Math.min(2_000, 100 * 2 ** n) * (0.5 + Math.random() / 2);
    if (Date.now() + delay >= deadline) throw v.failure;
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Seconds of a Retry-After header, in ms, when it is a number. */
export function retryAfterMs(headers: IncomingHttpHeaders): number | undefined {
  const s = Number(headers['retry-after']);
  return headers['retry-after'] !== undefined && Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}
