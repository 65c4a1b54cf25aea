/**
 * The handler registry: which handler stores a value (the first, in priority order, whose
 * `canHandle` accepts it) and which one reads an entry (by the name recorded with it). Built-ins:
 * raw bytes, typed and n-d arrays, Arrow tables, polars DataFrames, then structured values as the
 * fallback. Handlers registered here apply to every cache of the process, ahead of the built-ins
 * unless placed otherwise; `createCache({ handlers })` puts a cache's own handlers ahead of these.
 * @module
 */
import { HandlerError } from '../errors.js';
import { arrowHandler } from './arrow.js';
import { bytesHandler } from './bytes.js';
import type { ValueHandler } from './handler.js';
import { ndarrayHandler } from './ndarray.js';
import { polarsHandler } from './polars.js';
import { structuredHandler } from './structured.js';

/** Where a registered handler goes in the priority order. */
export type HandlerPosition = 'first' | 'last' | { before: string } | { after: string };

/** The built-ins accept disjoint values (a DataFrame is no Arrow Table), so their order only sets which tests run first. */
const BUILTIN: readonly ValueHandler[] = [bytesHandler, ndarrayHandler, arrowHandler, polarsHandler];
/** The process-wide order, without the structured fallback (always last). */
let order: ValueHandler[] = [...BUILTIN];
/** Bumped on every change, so caches can keep their resolved order until the registry changes. */
let generation = 0;

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

function validate(h: ValueHandler): void {
  if (typeof h !== 'object' || h === null) throw new HandlerError('EHANDLER', 'registerHandler takes a handler object: { name, version, canHandle, serialize, deserialize }.');
  if (typeof h.name !== 'string' || !NAME.test(h.name)) {
    throw new HandlerError('EHANDLER', `A handler name is 1-64 letters, digits, '.', '_' or '-' (it is recorded with every entry); got ${JSON.stringify(h.name)}.`);
  }
  if (!Number.isSafeInteger(h.version) || h.version < 1) throw new HandlerError('EHANDLER', `Handler '${h.name}' needs a whole-number version of at least 1.`);
  for (const f of ['canHandle', 'serialize', 'deserialize'] as const) {
    if (typeof h[f] !== 'function') throw new HandlerError('EHANDLER', `Handler '${h.name}' lacks ${f}().`);
  }
  if (h.name === structuredHandler.name) throw new HandlerError('EHANDLER', `'${h.name}' is the built-in fallback handler's name; choose another.`);
}

function insert(list: ValueHandler[], h: ValueHandler, at: HandlerPosition): ValueHandler[] {
  const rest = list.filter((x) => x.name !== h.name);
  if (at === 'first') return [h, ...rest];
  if (at === 'last') return [...rest, h];
  const anchor = 'before' in at ? at.before : at.after;
  const i = rest.findIndex((x) => x.name === anchor);
  if (i < 0)
    throw new HandlerError('EHANDLER', `No handler '${anchor}' to place '${h.name}' ${'before' in at ? 'before' : 'after'}; registered: ${rest.map((x) => x.name).join(', ')}.`);
  rest.splice('before' in at ? i : i + 1, 0, h);
  return rest;
}

/**
 * Registers `handler` for every cache of this process, ahead of the built-ins by default. A handler
 * of the same name is replaced (so re-registering moves it).
 * @throws {HandlerError} `EHANDLER` for a malformed handler or an unknown `before`/`after` anchor.
 */
export function registerHandler(handler: ValueHandler, options: { position?: HandlerPosition } = {}): void {
  validate(handler);
  order = insert(order, handler, options.position ?? 'first');
  generation++;
}

/** Removes a registered handler (built-ins too); true when it was registered. Entries it wrote then read as ENOHANDLER. */
export function unregisterHandler(name: string): boolean {
  const before = order.length;
  order = order.filter((h) => h.name !== name);
  generation++;
  return order.length < before;
}

/** The handlers in priority order, the structured fallback last. */
export function listHandlers(): readonly ValueHandler[] {
  return [...order, structuredHandler];
}

/** Restores the built-in order (for tests). */
export function resetHandlers(): void {
  order = [...BUILTIN];
  generation++;
}

/** Checks a cache's own handlers (at createCache). */
export function validateHandlers(own: readonly ValueHandler[]): void {
  for (const h of own) validate(h);
}

/**
 * The order a cache uses: its own handlers, then the process-wide ones, then the fallback. Returns a
 * resolver that recomputes only when the registry has changed.
 */
export function handlerResolver(own: readonly ValueHandler[] = []): () => readonly ValueHandler[] {
  validateHandlers(own);
  const names = new Set(own.map((h) => h.name));
  let seen = -1;
  let list: readonly ValueHandler[] = [];
  return () => {
    if (seen !== generation) {
      list = [...own, ...order.filter((h) => !names.has(h.name)), structuredHandler];
      seen = generation;
    }
    return list;
  };
}
