/**
 * Contract suite every BlobStore implementation must pass (filesystem and memory now; S3 with the cloud API).
 */
import { randomBytes } from 'node:crypto';
import type { BlobStore } from 'cacheness/stores';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

export interface BlobStoreHarness {
  store: BlobStore;
  dispose(): Promise<void>;
}

const name = (n: number) => `${n.toString(16).padStart(32, '0')}.0a0b0c0d`;

export function blobStoreContract(label: string, make: () => Promise<BlobStoreHarness>): void {
  describe(`BlobStore contract: ${label}`, () => {
    let h: BlobStoreHarness;
    let s: BlobStore;
    beforeEach(async () => {
      h = await make();
      s = h.store;
    });
    afterEach(async () => {
      await h.dispose();
    });

    it('writes, reads back byte-exact, reports size', async () => {
      const data = randomBytes(300_000);
      await s.write(name(1), data);
      expect(Buffer.from((await s.read(name(1)))!).equals(data)).toBe(true);
      expect(await s.size(name(1))).toBe(data.length);
      await s.write(name(2), new Uint8Array(0));
      expect((await s.read(name(2)))?.length).toBe(0);
    });

    it('reads a missing blob as undefined', async () => {
      expect(await s.read(name(9))).toBeUndefined();
      expect(await s.size(name(9))).toBeUndefined();
    });

    it('is not affected by the caller reusing its buffer', async () => {
      const data = Buffer.alloc(1000, 1);
      await s.write(name(3), data);
      data.fill(2);
      const back = await s.read(name(3));
      expect(back?.[0]).toBe(1);
      back?.fill(3);
      expect((await s.read(name(3)))?.[0]).toBe(1);
    });

    it('replaces a blob atomically on rewrite', async () => {
      await s.write(name(4), Buffer.alloc(10, 1));
      await s.write(name(4), Buffer.alloc(20, 2));
      expect(Buffer.from((await s.read(name(4)))!)).toEqual(Buffer.alloc(20, 2));
    });

    it('deletes, ignoring missing names', async () => {
      await s.write(name(5), Buffer.from('x'));
      await s.delete([name(5), name(6)]);
      expect(await s.read(name(5))).toBeUndefined();
    });

    it('lists every stored name', async () => {
      for (let i = 10; i < 15; i++) await s.write(name(i), Buffer.from([i]));
      const names: string[] = [];
      for await (const n of s.names()) names.push(n);
      expect(names.sort()).toEqual([10, 11, 12, 13, 14].map(name));
    });

    it('sweeps no live data as partial', async () => {
      await s.write(name(20), Buffer.from('keep'));
      await s.sweepPartial(0);
      expect(Buffer.from((await s.read(name(20)))!).toString()).toBe('keep');
    });
  });
}
