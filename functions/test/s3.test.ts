import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeMultipart, MAX_URL_SECONDS, planParts, presignGet, presignParts, presignPut, S3_LIMITS, startMultipart } from '../src/s3/index.js';
import { type S3Harness, startS3 } from './s3-server.js';

const MiB = 1024 * 1024;

describe('planParts', () => {
  it('uses the preferred part size when the object fits', () => {
    expect(planParts({ size: 100 * MiB })).toEqual({ partSize: 16 * MiB, partCount: 7, capacity: 160_000 * MiB });
    expect(planParts({ size: 0 })).toMatchObject({ partCount: 1 });
    expect(planParts({ size: 1, preferredPartSize: 1 })).toMatchObject({ partSize: 5 * MiB }); // never below S3's minimum
  });

  it('grows parts so any size up to 5 TiB fits in 10,000 parts', () => {
    const max = planParts({ size: S3_LIMITS.maxObjectSize });
    expect(max.partSize).toBe(525 * MiB);
    expect(max.partCount).toBeLessThanOrEqual(10_000);
    for (const size of [160_000 * MiB + 1, 1024 ** 4, 3 * 1024 ** 4 + 12345, S3_LIMITS.maxObjectSize - 1]) {
      const p = planParts({ size });
      expect(p.partCount).toBeLessThanOrEqual(10_000);
      expect(p.partSize * p.partCount).toBeGreaterThanOrEqual(size);
      expect(p.partSize % MiB).toBe(0);
    }
  });

  it('plans for the worst case when the size is unknown', () => {
    expect(planParts({}).capacity).toBe(S3_LIMITS.maxObjectSize);
    const bounded = planParts({ maxSize: 300 * 1024 ** 3 });
    expect(bounded.capacity).toBeGreaterThanOrEqual(300 * 1024 ** 3);
  });

  it('refuses sizes S3 cannot store', () => {
    expect(() => planParts({ size: S3_LIMITS.maxObjectSize + 1 })).toThrow(RangeError);
    expect(() => planParts({ size: -1 })).toThrow(RangeError);
  });
});

describe('presigned transfers against an S3-protocol server', () => {
  let s3: S3Harness;
  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(() => s3.stop());
  const ref = (key: string) => ({ bucket: s3.bucket, key });

  it('signs URLs without any x-amz-checksum parameter (real S3 would reject an empty-body CRC32)', async () => {
    const urls = [
      await presignPut(s3.client, { ...ref('a'), size: 10 }),
      await presignGet(s3.client, ref('a')),
      ...(await presignParts(s3.client, { ...ref('a'), uploadId: 'u', partNumbers: [1, 2] })).map((p) => p.url),
    ];
    for (const url of urls) expect([...new URL(url).searchParams.keys()].filter((k) => k.toLowerCase().startsWith('x-amz-checksum'))).toEqual([]);
    // What the SDK does by default, for contrast: the trap this client avoids.
    const { S3Client } = await import('@aws-sdk/client-s3');
    const naive = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    const trap = await getSignedUrl(naive, new PutObjectCommand({ Bucket: s3.bucket, Key: 'a', ContentLength: 10 }), { expiresIn: 60 });
    expect(trap.toLowerCase()).toContain('x-amz-checksum');
    naive.destroy();
  });

  it('uploads with one PUT and downloads whole or by range', async () => {
    const data = randomBytes(100_000);
    const put = await fetch(await presignPut(s3.client, { ...ref('single'), size: data.length }), { method: 'PUT', body: data });
    expect(put.status).toBe(200);
    const url = await presignGet(s3.client, ref('single'));
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(data)).toBe(true);
    const ranged = await fetch(url, { headers: { Range: 'bytes=1000-1999' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(1000, 2000))).toBe(true);
  });

  it('rejects a body of another size than the one signed', async () => {
    const url = await presignPut(s3.client, { ...ref('sized'), size: 10 });
    expect((await fetch(url, { method: 'PUT', body: Buffer.alloc(11) })).status).toBe(403);
    expect((await fetch(await presignGet(s3.client, ref('sized')))).status).toBe(404);
  });

  it('rejects an expired or tampered URL', async () => {
    const expired = await getSignedUrl(s3.client, new PutObjectCommand({ Bucket: s3.bucket, Key: 'late', ContentLength: 1 }), {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 10 * 60_000),
    });
    expect((await fetch(expired, { method: 'PUT', body: 'x' })).status).toBe(403);
    const good = await presignPut(s3.client, { ...ref('mine'), size: 1 });
    expect((await fetch(good.replace('/mine?', '/theirs?'), { method: 'PUT', body: 'x' })).status).toBe(403);
  });

  it('caps URL lifetime at 15 minutes', async () => {
    const url = new URL(await presignGet(s3.client, { ...ref('a'), expiresIn: 7 * 24 * 3600 }));
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBe(MAX_URL_SECONDS);
  });

  it('uploads in several presigned parts and completes in part order', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1234)];
    const uploadId = await startMultipart(s3.client, ref('multi'));
    const urls = await presignParts(s3.client, { ...ref('multi'), uploadId, partNumbers: [3, 1, 2] });
    const etags = await Promise.all(
      urls.map(async ({ partNumber, url }) => {
        const res = await fetch(url, { method: 'PUT', body: parts[partNumber - 1] });
        expect(res.status).toBe(200);
        return { partNumber, etag: res.headers.get('etag') as string };
      }),
    );
    await completeMultipart(s3.client, { ...ref('multi'), uploadId, parts: etags });
    const whole = Buffer.from(await (await fetch(await presignGet(s3.client, ref('multi')))).arrayBuffer());
    expect(whole.equals(Buffer.concat(parts))).toBe(true);
  });

  it('refuses single PUTs larger than 5 GiB and part numbers outside 1..10,000', async () => {
    await expect(presignPut(s3.client, { ...ref('x'), size: 6 * 1024 ** 3 })).rejects.toThrow(RangeError);
    await expect(presignParts(s3.client, { ...ref('x'), uploadId: 'u', partNumbers: [0] })).rejects.toThrow(RangeError);
    await expect(presignParts(s3.client, { ...ref('x'), uploadId: 'u', partNumbers: [10_001] })).rejects.toThrow(RangeError);
  });
});
