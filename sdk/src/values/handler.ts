/**
 * Value handlers turn values into bytes and back. The core ships two (raw bytes and structured
 * values); the rich-data issue adds a public registry, streaming handlers, arrays and tables on
 * this same interface.
 * @module
 */

/** Serializes one family of values. */
export interface ValueHandler {
  /** Recorded per entry; reading an entry needs a handler of this name. */
  readonly name: string;
  /** Format version, recorded per entry as `name@version` in `EntryInfo.handler`. */
  readonly version: number;
  /** True when this handler stores `value`. */
  canHandle(value: unknown): boolean;
  /** Encodes `value`; `type` names the concrete type so it reads back as the same class. */
  serialize(value: unknown): { bytes: Uint8Array; type: string };
  /** Decodes bytes written by `serialize` (any version up to `version`). */
  deserialize(bytes: Uint8Array, type: string, version: number): unknown;
}
