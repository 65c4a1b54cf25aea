import { type EntryInfo, type EntryRecord, type JsonObject, toEntryInfo } from '../entry.js';
import { HandlerError } from '../errors.js';
import type { ValueHandler } from './handler.js';
import { listHandlers } from './registry.js';
import { structuredHandler } from './structured.js';

export { isByteStream } from './bytes.js';
export type { HandlerContext, Serialized, SerializedBytes, SerializedStream, ValueHandler } from './handler.js';
export { type NdArray, shuffle, unshuffle } from './ndarray.js';
export { type HandlerPosition, handlerResolver, listHandlers, registerHandler, resetHandlers, unregisterHandler, validateHandlers } from './registry.js';
export { assertStructured } from './structured.js';

/** The built-in handlers in priority order (the process-wide registry at load time). */
export const builtinHandlers: readonly ValueHandler[] = listHandlers();

/** Picks the handler for `value`. */
export function handlerFor(value: unknown, handlers: readonly ValueHandler[] = builtinHandlers): ValueHandler {
  for (const h of handlers) if (h.canHandle(value)) return h;
  return structuredHandler;
}

/** Finds the handler that wrote an entry (`name@version`). */
export function handlerByName(id: string, handlers: readonly ValueHandler[] = builtinHandlers): { handler: ValueHandler; version: number } {
  const { name, version } = parseHandlerId(id);
  const handler = handlers.find((h) => h.name === name);
  if (!handler) {
    throw new HandlerError(
      'ENOHANDLER',
      `This entry was written by value handler '${name}', which is not registered in this process. Register it (registerHandler) before reading the entry.`,
      { details: { handler: name } },
    );
  }
  if (version > handler.version) {
    throw new HandlerError(
      'ENOHANDLER',
      `This entry was written by '${name}' format version ${version}, but the registered handler only reads up to version ${handler.version}. Upgrade cacheness or the handler.`,
      { details: { handler: name, version } },
    );
  }
  return { handler, version };
}

/** The parts of a recorded `name@version` (version 1 when absent). */
function parseHandlerId(id: string): { name: string; version: number } {
  const at = id.lastIndexOf('@');
  return at < 0 ? { name: id, version: 1 } : { name: id.slice(0, at), version: Number(id.slice(at + 1)) };
}

/** `name@version` recorded per entry. */
export function handlerId(h: ValueHandler): string {
  return `${h.name}@${h.version}`;
}

/**
 * What the handler that wrote an entry tells about its value from the entry alone (`handler`, `type`
 * and `size`, so a remote entry serves as well as a local record): undefined when the handler is
 * not registered, is older than the entry, has no `describe`, or has nothing to tell. Never throws:
 * a description is a convenience, and an entry must stay listable whatever its type string holds.
 */
export function describeValue(e: Pick<EntryRecord, 'handler' | 'type' | 'size'>, handlers: readonly ValueHandler[] = builtinHandlers): JsonObject | undefined {
  const { name, version } = parseHandlerId(e.handler);
  const handler = handlers.find((h) => h.name === name);
  if (!handler?.describe || !(version <= handler.version)) return undefined;
  try {
    return handler.describe(e.type, version, e.size) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The public form of a stored record, with its value's description (`valueInfo`) when its handler gives one. */
export function entryInfo(r: EntryRecord, handlers: readonly ValueHandler[] = builtinHandlers): EntryInfo {
  const info = toEntryInfo(r);
  const valueInfo = describeValue(r, handlers);
  if (valueInfo) info.valueInfo = valueInfo;
  return info;
}
