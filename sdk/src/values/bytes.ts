import type { ValueHandler } from './handler.js';

/** True for byte streams: Node `Readable`s, web `ReadableStream`s and other async iterables. */
export function isByteStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/**
 * Raw binary values (`Buffer`, `Uint8Array`, `ArrayBuffer`) stored byte for byte, with no framing:
 * reads return the bytes without a copy. Byte streams (Node `Readable`, web `ReadableStream`,
 * `AsyncIterable<Uint8Array>`) are stored as their bytes and read back as a `Buffer` (or as a stream
 * with `getStream`).
 */
export const bytesHandler: ValueHandler = {
  name: 'bytes',
  version: 1,
  canHandle(value) {
    return value instanceof ArrayBuffer || (value instanceof Uint8Array && (value.constructor === Uint8Array || Buffer.isBuffer(value))) || isByteStream(value);
  },
  serialize(value) {
    if (isByteStream(value)) return { stream: value as AsyncIterable<Uint8Array>, type: 'Buffer' };
    if (value instanceof ArrayBuffer) return { bytes: new Uint8Array(value), type: 'ArrayBuffer' };
    return { bytes: value as Uint8Array, type: Buffer.isBuffer(value) ? 'Buffer' : 'Uint8Array' };
  },
  deserialize(bytes, type) {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (type === 'Buffer') return buf;
    if (type === 'ArrayBuffer') {
      return buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength ? buf.buffer : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  },
};
