/**
 * Figure 3 of the cloud benchmark: the TTL sweeper expiring many entries of one namespace, against
 * bare DELETEs of the same rows in the same 1,000-row batches (the database ceiling: the same per-row
 * triggers, none of the sweeper's claiming, ordering or bookkeeping). A second case puts blobs behind
 * the entries, with their objects in S3, so the sweeper also reclaims objects; its baseline adds the
 * blob rows' delete and a direct DeleteObjects of the same keys.
 *
 * Rows are inserted with `INSERT ... SELECT generate_series`, 1,000 rows a statement, and vacuumed
 * before each timed step, so the sweeper and the baselines start from the same state. (One statement
 * for all rows would be far slower: the counters trigger makes a statement's cost grow with the square
 * of its row count; the scaling diagnostic measures that.)
 * @module
 */
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { blobObjectKey, sweep } from '@cacheness/functions/api';
import type { Sql } from 'postgres';

export interface SweepBenchOptions {
  sql: Sql;
  s3: S3Client;
  bucket: string;
  /** Expired entries to reclaim. */
  entries: number;
  /** Blobs (each an S3 object) behind the entries of the second case; 0 skips it. */
  blobs: number;
}

export interface SweepCase {
  label: string;
  entries: number;
  blobs: number;
  /** Seconds to insert the entries (1,000-row statements, triggers included). */
  insertSeconds: number;
  sweepSeconds: number;
  /** Bare DELETEs of 1,000 rows each (by primary-key range), triggers on. */
  baselineSeconds: number;
  /** One DELETE of every row with triggers disabled (session_replication_role = replica): no counters, no access rows to maintain. */
  noTriggerSeconds: number;
  report: { namespaces: number; expired: number; objectsDeleted: number };
}

/** Seconds of one INSERT ... SELECT and one DELETE of `rows` rows (triggers on), for a few sizes. */
export interface StatementScaling {
  rows: number;
  insertSeconds: number;
  deleteSeconds: number;
}

export interface SweepResults {
  cases: SweepCase[];
  scaling: StatementScaling[];
}

const BATCH = 1000;
const GEN = 'cafe0001';
const since = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
/** Deterministic 32-hex blob ids (same formula as the SQL below). */
const blobId = (i: number) => (i + 1).toString(16).padStart(32, '0');
const entryKey = (i: number) => `sweep/${String(i).padStart(8, '0')}`;

async function vacuum(sql: Sql): Promise<void> {
  await sql`VACUUM ANALYZE entries, access, counters, blobs`;
}

/** Inserts entries `from` to `to - 1` of `namespace` in one statement: expired an hour ago or more, one second apart. */
function insertRange(sql: Sql, namespace: string, from: number, to: number, blobs: number) {
  const size = blobs > 0 ? 1024 : 16;
  return sql`
    INSERT INTO entries (namespace, key, handler, type, codec, size, stored_size, content_hash, blob_id, inline, created_at, expires_at)
    SELECT ${namespace}, 'sweep/' || lpad(i::text, 8, '0'), 'bytes@1', 'Buffer', 'none', ${size}::int, ${size}::int, md5(i::text),
      CASE WHEN ${blobs}::int > 0 THEN lpad(to_hex(i % greatest(${blobs}::int, 1) + 1), 32, '0') END,
      CASE WHEN ${blobs}::int > 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
      now() - interval '2 hours', now() - interval '1 hour' - i * interval '1 second'
    FROM generate_series(${from}::int, ${to - 1}::int) AS i`;
}

async function insertEntries(sql: Sql, namespace: string, n: number, blobs: number): Promise<number> {
  await sql`DELETE FROM counters WHERE namespace = ${namespace}`;
  if (blobs > 0) {
    await sql`
      INSERT INTO blobs (namespace, id, gen, size, refs, ready)
      SELECT ${namespace}, lpad(to_hex(i + 1), 32, '0'), ${GEN}, 1024, 0, true FROM generate_series(0, ${blobs - 1}::int) AS i`;
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += BATCH) await insertRange(sql, namespace, i, Math.min(i + BATCH, n), blobs);
  return since(t0);
}

async function putObjects(s3: S3Client, bucket: string, namespace: string, count: number): Promise<void> {
  const body = Buffer.alloc(1024, 7);
  let next = 0;
  const loop = async () => {
    while (next < count) {
      const i = next++;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: blobObjectKey(namespace, `${blobId(i)}.${GEN}`), Body: body, ContentLength: body.length }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, loop));
}

async function objectCount(s3: S3Client, bucket: string, namespace: string): Promise<number> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: blobObjectKey(namespace, ''), MaxKeys: 1000 }));
  return out.KeyCount ?? out.Contents?.length ?? 0;
}

async function remaining(sql: Sql, namespace: string): Promise<{ entries: number; access: number; blobs: number }> {
  const [r] = await sql`
    SELECT (SELECT count(*) FROM entries WHERE namespace = ${namespace})::int AS entries,
           (SELECT count(*) FROM access WHERE namespace = ${namespace})::int AS access,
           (SELECT count(*) FROM blobs WHERE namespace = ${namespace})::int AS blobs`;
  return r as { entries: number; access: number; blobs: number };
}

async function runCase(o: SweepBenchOptions, label: string, namespace: string, blobs: number): Promise<SweepCase> {
  const { sql, s3, bucket, entries: n } = o;
  const objects = Math.min(blobs, n);
  const prepare = async () => {
    const seconds = await insertEntries(sql, namespace, n, blobs);
    if (blobs > 0) await putObjects(s3, bucket, namespace, objects);
    await vacuum(sql);
    return seconds;
  };
  const expectEmpty = async (what: string) => {
    const left = await remaining(sql, namespace);
    if (left.entries !== 0 || left.access !== 0 || left.blobs !== 0) throw new Error(`${what} left rows behind: ${JSON.stringify(left)}`);
    if (blobs > 0 && (await objectCount(s3, bucket, namespace)) !== 0) throw new Error(`${what} left objects behind.`);
  };
  const deleteObjects = async () => {
    const keys = Array.from({ length: objects }, (_, i) => ({ Key: blobObjectKey(namespace, `${blobId(i)}.${GEN}`) }));
    for (let i = 0; i < keys.length; i += 1000) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000), Quiet: true } }));
  };

  // Baselines first, then the sweeper, each on freshly inserted rows.
  const insertSeconds = await prepare();
  let t0 = process.hrtime.bigint();
  let deleted = 0;
  for (let i = 0; i < n; i += BATCH) {
    const rows = await sql`DELETE FROM entries WHERE namespace = ${namespace} AND key >= ${entryKey(i)} AND key < ${entryKey(i + BATCH)} AND expires_at <= now()`;
    deleted += rows.count;
  }
  if (blobs > 0) {
    await sql`DELETE FROM blobs WHERE namespace = ${namespace} AND refs <= 0`;
    await deleteObjects();
  }
  const baselineSeconds = since(t0);
  if (deleted !== n) throw new Error(`The bare DELETEs removed ${deleted} entries, expected ${n}.`);
  await expectEmpty('The bare DELETEs');

  await prepare();
  t0 = process.hrtime.bigint();
  await sql.begin(async (tx) => {
    await tx`SET LOCAL session_replication_role = replica`;
    deleted = (await tx`DELETE FROM entries WHERE namespace = ${namespace} AND expires_at <= now()`).count;
    await tx`DELETE FROM access WHERE namespace = ${namespace}`;
    if (blobs > 0) await tx`DELETE FROM blobs WHERE namespace = ${namespace}`;
  });
  if (blobs > 0) await deleteObjects();
  const noTriggerSeconds = since(t0);
  if (deleted !== n) throw new Error(`The DELETE without triggers removed ${deleted} entries, expected ${n}.`);
  await expectEmpty('The DELETE without triggers');

  await prepare();
  if (blobs > 0 && (await objectCount(s3, bucket, namespace)) !== Math.min(objects, 1000)) throw new Error('The objects behind the blobs are missing.');
  t0 = process.hrtime.bigint();
  const report = await sweep({ sql, s3, bucket, now: Date.now() });
  const sweepSeconds = since(t0);
  if (report.expired !== n) throw new Error(`The sweeper expired ${report.expired} entries, expected ${n}.`);
  if (report.objectsDeleted !== objects) throw new Error(`The sweeper deleted ${report.objectsDeleted} objects, expected ${objects}.`);
  await expectEmpty('The sweeper');
  const [c] = await sql`SELECT value FROM counters WHERE namespace = ${namespace} AND name = 'expirations'`;
  if (Number(c?.value) !== n) throw new Error(`The expirations counter says ${c?.value}, expected ${n}.`);
  return { label, entries: n, blobs, insertSeconds, sweepSeconds, baselineSeconds, noTriggerSeconds, report };
}

/** One INSERT and one DELETE statement of growing row counts (triggers on). */
async function statementScaling(sql: Sql, largest: number): Promise<StatementScaling[]> {
  const out: StatementScaling[] = [];
  for (const rows of [largest / 4, largest / 2, largest].map(Math.floor)) {
    if (rows < 1) continue;
    const namespace = `bench-scaling-${rows}`;
    await vacuum(sql);
    let t0 = process.hrtime.bigint();
    await insertRange(sql, namespace, 0, rows, 0);
    const insertSeconds = since(t0);
    await vacuum(sql);
    t0 = process.hrtime.bigint();
    await sql`DELETE FROM entries WHERE namespace = ${namespace}`;
    const deleteSeconds = since(t0);
    await sql`DELETE FROM counters WHERE namespace = ${namespace}`;
    out.push({ rows, insertSeconds, deleteSeconds });
  }
  return out;
}

export async function runSweep(o: SweepBenchOptions): Promise<SweepResults> {
  const cases = [await runCase(o, 'inline entries', 'bench-sweep', 0)];
  if (o.blobs > 0) cases.push(await runCase(o, `entries over ${o.blobs} blobs`, 'bench-sweep-blobs', o.blobs));
  const scaling = await statementScaling(o.sql, Math.min(o.entries, 20_000));
  return { cases, scaling };
}
