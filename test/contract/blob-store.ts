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

    it('stages bytes piece by piece and publishes them under a name only at the end', async () => {
      const pieces = [randomBytes(3_000_000), randomBytes(6_000_000), randomBytes(1), randomBytes(4_000_000)];
      const want = Buffer.concat(pieces.map((p) => Buffer.from(p)));
      const stage = await s.stage();
      for (const p of pieces) {
        await stage.write(p);
        p.fill(0); // the store must have taken its own copy (or written it out) by now
      }
      expect(stage.size).toBe(13_000_001);
      expect(await s.read(name(30))).toBeUndefined();
      const listed: string[] = [];
      for await (const n of s.names()) listed.push(n);
      expect(listed).toEqual([]); // a stage is not a blob
      await stage.publish(name(30));
      const back = Buffer.from((await s.read(name(30)))!);
      expect(back.equals(want)).toBe(true);
      expect(await s.size(name(30))).toBe(13_000_001);
      await stage.abort(); // after publish: a no-op
      expect(await s.size(name(30))).toBe(13_000_001);
      await expect(stage.write(Buffer.from('x'))).rejects.toThrow();
    });

    it('publishes a small or empty stage, and an aborted stage leaves nothing', async () => {
      const small = await s.stage();
      await small.write(Buffer.from('hello'));
      await small.publish(name(31));
      expect(Buffer.from((await s.read(name(31)))!).toString()).toBe('hello');
      const empty = await s.stage();
      await empty.publish(name(32));
      expect(await s.size(name(32))).toBe(0);
      const dropped = await s.stage();
      await dropped.write(randomBytes(9_000_000));
      await dropped.abort();
      await dropped.abort();
      const listed: string[] = [];
      for await (const n of s.names()) listed.push(n);
      expect(listed.sort()).toEqual([name(31), name(32)]);
    });

    it('reads ranges of an open blob', async () => {
      const data = randomBytes(1_000_000);
      await s.write(name(33), data);
      expect(await s.open(name(34))).toBeUndefined();
      const r = (await s.open(name(33)))!;
      try {
        expect(r.size).toBe(data.length);
        expect(Buffer.from(await r.read(0, 10)).equals(data.subarray(0, 10))).toBe(true);
        expect(Buffer.from(await r.read(123_456, 500_000)).equals(data.subarray(123_456, 623_456))).toBe(true);
        expect(Buffer.from(await r.read(999_990, 100)).equals(data.subarray(999_990))).toBe(true); // short at the end
        expect((await r.read(1_000_000, 10)).length).toBe(0);
      } finally {
        await r.close();
      }
    });

    it('reads ranges into memory the caller gives, and into new memory when it is too small', async () => {
      const data = randomBytes(300_000);
      await s.write(name(35), data);
      const r = (await s.open(name(35)))!;
      try {
        const into = Buffer.alloc(200_000, 7);
        const got = await r.read(1_000, 150_000, into);
        expect(got.buffer === into.buffer).toBe(true); // a view of the caller's memory (compared as booleans: a failing diff of two buffers takes minutes)
        expect(got.byteOffset).toBe(into.byteOffset);
        expect(Buffer.from(got).equals(data.subarray(1_000, 151_000))).toBe(true);
        expect(into[150_000]).toBe(7); // nothing written past what was read
        const short = await r.read(299_000, 5_000, into); // fewer bytes past the end
        expect(short.buffer === into.buffer).toBe(true);
        expect(Buffer.from(short).equals(data.subarray(299_000))).toBe(true);
        const small = Buffer.alloc(10);
        const other = await r.read(0, 100_000, small);
        expect(other.buffer === small.buffer).toBe(false);
        expect(Buffer.from(other).equals(data.subarray(0, 100_000))).toBe(true);
        expect(small.equals(Buffer.alloc(10))).toBe(true); // left alone
      } finally {
        await r.close();
      }
    });

    it('reads an open blob deleted meanwhile as its old bytes, or fails with ESTORE where the store cannot keep them', async () => {
      const data = randomBytes(10_000);
      await s.write(name(36), data);
      const r = (await s.open(name(36)))!;
      try {
        await s.delete([name(36)]);
        const got = await r.read(0, 100).then(
          (b) => Buffer.from(b),
          (err: unknown) => err,
        );
        if (Buffer.isBuffer(got)) expect(got.equals(data.subarray(0, 100))).toBe(true);
        else expect(got).toMatchObject({ name: 'StoreError', code: 'ESTORE' });
      } finally {
        await r.close();
      }
    });

    it('sweeps no live data as partial', async () => {
      await s.write(name(20), Buffer.from('keep'));
      await s.sweepPartial(0);
      expect(Buffer.from((await s.read(name(20)))!).toString()).toBe('keep');
    });
  });
}
