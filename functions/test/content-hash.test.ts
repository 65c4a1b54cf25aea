import { randomBytes } from 'node:crypto';
import { xxh128Hex } from 'cacheness/stores';
import { expect, it } from 'vitest';
import { contentHashHex } from '../src/content-hash.js';

it("computes the SDK's content hash (XXH3-128 hex) at every size, across the SDK's small/large implementation boundary", async () => {
  for (const n of [0, 1, 3, 16, 17, 128, 129, 240, 241, 1000, 16 * 1024 - 1, 16 * 1024, 100_000, 1 << 20]) {
    const data = randomBytes(n);
    expect(await contentHashHex(data), `${n} bytes`).toBe(xxh128Hex(data));
  }
});
