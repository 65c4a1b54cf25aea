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
  const at = id.lastIndexOf('@');
  const name = at < 0 ? id : id.slice(0, at);
  const version = at < 0 ? 1 : Number(id.slice(at + 1));
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

/** `name@version` recorded per entry. */
export function handlerId(h: ValueHandler): string {
  return `${h.name}@${h.version}`;
}
