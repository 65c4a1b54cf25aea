/**
 * Whether the cloud API is reachable, for mode `auto`: calls that find it unreachable (or unable to
 * serve) switch the link offline, later calls go straight to the local store, and a health probe
 * backing off from 1 to 60 s switches it online again (then the outbox is pushed).
 * @module
 */
import { OptionError } from '../errors.js';
import type { HealthResponse, WhoAmIResponse } from '../protocol.js';
import { type ApiClient, classifyFailure } from './client.js';
import { isNotFound } from './cloud.js';

/** Where a cache's calls go: `local` (no cloud API), or the cloud API's reachability. */
export type RemoteStatus = 'local' | 'online' | 'offline';

/** What a call through the link gives: the API's answer, or `offline` (the caller falls back). */
export type Reached<T> = { ok: true; value: T } | { ok: false };

const PROBE_FIRST_MS = 1_000;
const PROBE_MAX_MS = 60_000;

/** The reachability of one cloud API. */
export class Link {
  private state: 'online' | 'offline' = 'online';
  private probeTimer: NodeJS.Timeout | undefined;
  private probeDelay = PROBE_FIRST_MS;
  private closed = false;
  private bound: Promise<void> | undefined;

  constructor(
    readonly api: ApiClient,
    /** `remote`: failures are thrown; `auto`: an unreachable API is a fallback. */
    readonly mode: 'remote' | 'auto',
    /** Called each time the link comes back online (to push the outbox). */
    private readonly onOnline: () => void,
    /** Binds the local directory to the namespace the API key opens: false when it belongs to another. */
    private readonly bindNamespace: (namespace: string) => boolean,
    /** Whether this API key was checked against the directory before (by an earlier process). */
    private checked: boolean,
  ) {}

  /**
   * Whether the local directory may answer for this API key: it was checked to open the directory's
   * namespace (now or before). Until then a local copy could be another namespace's.
   */
  get trusted(): boolean {
    return this.checked;
  }

  /**
   * Before the first call: which namespace the API key opens, checked against the directory's (a
   * directory holds one namespace's copies and queued writes). Asked again after an outage.
   */
  ensureBound(): Promise<void> {
    this.bound ??= this.api.request<WhoAmIResponse>('GET', 'whoami').then(
      ({ namespace }) => {
        this.checked = this.bindNamespace(namespace);
        if (!this.checked) {
          throw new OptionError(
            'EOPTION',
            `This cache's directory holds entries of another cloud namespace than this API key's ('${namespace}'); use another dir (CACHENESS_DIR) for this key.`,
          );
        }
      },
      (err) => {
        if (this.isOutage(err)) this.bound = undefined;
        if (isNotFound(err)) {
          throw new OptionError('EOPTION', `The cloud API at ${this.api.origin} has no /v1/whoami: it predates this SDK. Redeploy the stack (npx cdk deploy).`, { cause: err });
        }
        throw err;
      },
    );
    return this.bound;
  }

  get status(): 'online' | 'offline' {
    return this.state;
  }

  /**
   * Runs `fn` against the API. In mode `auto`, while offline it is not run at all, and a failure that
   * means the API is unreachable or cannot serve (not a refusal) switches the link offline; both give
   * `{ ok: false }`. Every other failure is thrown.
   */
  async call<T>(fn: () => Promise<T>): Promise<Reached<T>> {
    if (this.mode === 'auto' && this.state === 'offline') return { ok: false };
    try {
      await this.ensureBound();
      return { ok: true, value: await fn() };
    } catch (err) {
      if (this.mode === 'auto' && this.isOutage(err)) {
        this.goOffline();
        return { ok: false };
      }
      throw err;
    }
  }

  /** True for failures that mean "not now" (mode `auto` falls back on them) rather than "no". */
  isOutage(err: unknown): boolean {
    return classifyFailure(err) !== 'rejected';
  }

  /** Marks the API unreachable and starts probing it. */
  goOffline(): void {
    if (this.state === 'offline' || this.closed) return;
    this.state = 'offline';
    this.probeDelay = PROBE_FIRST_MS;
    this.scheduleProbe();
  }

  /** Probes now (used by `sync()`): true when the API answered. */
  async probe(): Promise<boolean> {
    try {
      await this.api.request<HealthResponse>('GET', 'health', { deadlineMs: 5_000 });
    } catch {
      return false;
    }
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const wasOffline = this.state === 'offline';
    this.state = 'online';
    if (wasOffline && !this.closed) this.onOnline();
    return true;
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    const delay = this.probeDelay * (0.75 + Math.random() / 2);
    this.probeDelay = Math.min(PROBE_MAX_MS, this.probeDelay * 2);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe().then((up) => {
        if (!up) this.scheduleProbe();
      });
    }, delay);
    this.probeTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.api.close();
  }
}
