/**
 * Versioned, forward-only migrations of the cloud metadata schema. `migrate()` is idempotent and
 * safe to run from several deploys at once (a transaction-scoped advisory lock serializes them).
 * @module
 */
import { StoreError } from 'cacheness/model';
import type { Sql } from 'postgres';

/** One migration: applied once, in order, inside a transaction. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'entries, blobs, pins, access statistics, counters, custom tables',
    sql: `
-- One row per tenant: every writing transaction locks its namespace's row first (serializing a
-- namespace's writers in one order, as SQLite's BEGIN IMMEDIATE does), so writers cannot deadlock.
CREATE TABLE namespaces (namespace text PRIMARY KEY);

-- Text compares byte-wise ("C"), as in the local SQLite store, whatever the database's default collation.
CREATE TABLE entries (
  namespace text NOT NULL,
  key text COLLATE "C" NOT NULL,
  params jsonb,
  handler text COLLATE "C" NOT NULL,
  type text COLLATE "C" NOT NULL,
  codec text COLLATE "C" NOT NULL,
  size bigint NOT NULL,
  stored_size bigint NOT NULL,
  content_hash text COLLATE "C" NOT NULL,
  blob_id text COLLATE "C",
  inline bytea,
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  description text COLLATE "C",
  metadata jsonb,
  PRIMARY KEY (namespace, key)
);
CREATE INDEX entries_expires_at ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX entries_blob ON entries (namespace, blob_id) WHERE blob_id IS NOT NULL;
CREATE INDEX entries_params ON entries USING gin (params jsonb_path_ops);
CREATE INDEX entries_metadata ON entries USING gin (metadata jsonb_path_ops);

-- Read statistics live apart from entries: reads update them in batches without rewriting entry rows.
CREATE TABLE access (
  namespace text NOT NULL,
  key text COLLATE "C" NOT NULL,
  hits bigint NOT NULL DEFAULT 0,
  accessed_at timestamptz NOT NULL,
  PRIMARY KEY (namespace, key)
);
CREATE INDEX access_lru ON access (namespace, accessed_at);
CREATE INDEX access_lfu ON access (namespace, hits, accessed_at);

CREATE TABLE counters (
  namespace text NOT NULL,
  name text NOT NULL,
  value bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (namespace, name)
);

CREATE TABLE blobs (
  namespace text NOT NULL,
  id text NOT NULL,
  gen text NOT NULL,
  size bigint NOT NULL,
  refs integer NOT NULL DEFAULT 0,
  ready boolean NOT NULL DEFAULT false,
  doomed boolean NOT NULL DEFAULT false,
  PRIMARY KEY (namespace, id)
);
CREATE INDEX blobs_garbage ON blobs (namespace) WHERE refs <= 0;

CREATE TABLE pins (
  token text PRIMARY KEY,
  namespace text NOT NULL,
  blob_id text NOT NULL,
  owner text NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX pins_blob ON pins (namespace, blob_id);

CREATE TABLE custom_tables (
  id serial PRIMARY KEY,
  namespace text NOT NULL,
  name text NOT NULL,
  definition jsonb NOT NULL
);
CREATE UNIQUE INDEX custom_tables_name ON custom_tables (namespace, lower(name));

CREATE FUNCTION bump_counter(ns text, counter text, delta bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO counters (namespace, name, value) SELECT ns, counter, delta WHERE delta <> 0
  ON CONFLICT (namespace, name) DO UPDATE SET value = counters.value + excluded.value
$$;

CREATE FUNCTION entries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM bump_counter(NEW.namespace, 'entries', 1);
    PERFORM bump_counter(NEW.namespace, 'bytes', NEW.stored_size);
    UPDATE blobs SET refs = refs + 1, ready = true WHERE NEW.blob_id IS NOT NULL AND namespace = NEW.namespace AND id = NEW.blob_id;
    INSERT INTO access (namespace, key, hits, accessed_at) VALUES (NEW.namespace, NEW.key, 0, NEW.created_at)
      ON CONFLICT (namespace, key) DO UPDATE SET hits = 0, accessed_at = excluded.accessed_at;
    RETURN NEW;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM bump_counter(OLD.namespace, 'entries', -1);
    PERFORM bump_counter(OLD.namespace, 'bytes', -OLD.stored_size);
    UPDATE blobs SET refs = refs - 1 WHERE OLD.blob_id IS NOT NULL AND namespace = OLD.namespace AND id = OLD.blob_id;
    DELETE FROM access WHERE namespace = OLD.namespace AND key = OLD.key;
    -- Custom-table rows live and die with their entry: only this namespace's tables are touched.
    FOR t IN SELECT id FROM custom_tables WHERE namespace = OLD.namespace LOOP
      EXECUTE format('DELETE FROM %I WHERE namespace = $1 AND key = $2', 'ct_' || t.id) USING OLD.namespace, OLD.key;
    END LOOP;
    RETURN OLD;
  ELSE
    PERFORM bump_counter(NEW.namespace, 'bytes', NEW.stored_size - OLD.stored_size);
    IF OLD.blob_id IS DISTINCT FROM NEW.blob_id THEN
      UPDATE blobs SET refs = refs - 1 WHERE OLD.blob_id IS NOT NULL AND namespace = OLD.namespace AND id = OLD.blob_id;
      UPDATE blobs SET refs = refs + 1, ready = true WHERE NEW.blob_id IS NOT NULL AND namespace = NEW.namespace AND id = NEW.blob_id;
    ELSIF NEW.blob_id IS NOT NULL THEN
      UPDATE blobs SET ready = true WHERE namespace = NEW.namespace AND id = NEW.blob_id;
    END IF;
    RETURN NEW;
  END IF;
END
$$;
CREATE TRIGGER entries_changed AFTER INSERT OR UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION entries_changed();

-- A re-put (created_at in the SET list, even when unchanged) starts the entry's statistics afresh;
-- touch() does not set created_at, so it keeps them.
CREATE FUNCTION entries_rewritten() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE access SET hits = 0, accessed_at = NEW.created_at WHERE namespace = NEW.namespace AND key = NEW.key;
  RETURN NEW;
END
$$;
CREATE TRIGGER entries_rewritten AFTER UPDATE OF created_at ON entries FOR EACH ROW EXECUTE FUNCTION entries_rewritten();
`,
  },
  {
    version: 2,
    name: 'API keys',
    sql: `
CREATE TABLE api_keys (
  id text PRIMARY KEY,
  namespace text NOT NULL,
  name text NOT NULL,
  secret_hash bytea NOT NULL,
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CHECK (scopes <@ ARRAY['read', 'write', 'admin']::text[] AND cardinality(scopes) > 0)
);
CREATE INDEX api_keys_namespace ON api_keys (namespace);
`,
  },
  {
    version: 3,
    name: 'pending uploads',
    sql: `
-- An entry whose bytes are still on their way to S3: invisible to reads until completed.
CREATE TABLE uploads (
  id text PRIMARY KEY,
  namespace text NOT NULL,
  key text COLLATE "C" NOT NULL,
  record jsonb NOT NULL,
  tables jsonb,
  blob_name text NOT NULL,
  pin text NOT NULL,
  s3_upload_id text,
  part_size bigint,
  part_count integer,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX uploads_namespace ON uploads (namespace, created_at);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
`,
  },
  {
    version: 4,
    name: 'streamed uploads of unknown size',
    sql: `
-- A blob's object is normally named <id>.<gen>. A streamed upload's bytes are staged under a random
-- name before their content hash is known; when they become the content's blob, the row keeps that
-- name here.
ALTER TABLE blobs ADD COLUMN object text COLLATE "C";
CREATE INDEX blobs_object ON blobs (namespace, object) WHERE object IS NOT NULL;
-- Streamed uploads: the largest size the plan can carry (their real size arrives at completion).
ALTER TABLE uploads ADD COLUMN max_size bigint;
`,
  },
  {
    version: 5,
    name: 'per-namespace expiry index',
    sql: `
-- The sweeper and eviction look for one namespace's expired entries; entries_expires_at still serves
-- the search for namespaces with expired entries.
CREATE INDEX entries_namespace_expires_at ON entries (namespace, expires_at) WHERE expires_at IS NOT NULL;
`,
  },
  {
    version: 6,
    name: 'bookkeeping once per statement',
    sql: `
-- Migration 1 kept counters, blob reference counts, access rows and custom-table rows in step with
-- entries row by row. A statement touching n rows then updated the same counter rows n times, each
-- update stepping over the versions the statement had already made: a 20,000-row DELETE cost 270 us a
-- row against 55 us at 1,000. These statement-level triggers do the same bookkeeping once per
-- statement, grouped, from the statement's transition tables.
DROP TRIGGER entries_changed ON entries;
DROP FUNCTION entries_changed();

CREATE FUNCTION entries_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM bump_counter(x.namespace, 'entries', x.n), bump_counter(x.namespace, 'bytes', x.bytes)
    FROM (SELECT namespace, count(*) AS n, sum(stored_size)::bigint AS bytes FROM new_rows GROUP BY namespace ORDER BY namespace) x;
  UPDATE blobs b SET refs = b.refs + x.n, ready = true
    FROM (SELECT namespace, blob_id, count(*) AS n FROM new_rows WHERE blob_id IS NOT NULL GROUP BY namespace, blob_id) x
    WHERE b.namespace = x.namespace AND b.id = x.blob_id;
  INSERT INTO access (namespace, key, hits, accessed_at) SELECT namespace, key, 0, created_at FROM new_rows
    ON CONFLICT (namespace, key) DO UPDATE SET hits = 0, accessed_at = excluded.accessed_at;
  RETURN NULL;
END
$$;

CREATE FUNCTION entries_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  PERFORM bump_counter(x.namespace, 'entries', -x.n), bump_counter(x.namespace, 'bytes', -x.bytes)
    FROM (SELECT namespace, count(*) AS n, sum(stored_size)::bigint AS bytes FROM old_rows GROUP BY namespace ORDER BY namespace) x;
  UPDATE blobs b SET refs = b.refs - x.n
    FROM (SELECT namespace, blob_id, count(*) AS n FROM old_rows WHERE blob_id IS NOT NULL GROUP BY namespace, blob_id) x
    WHERE b.namespace = x.namespace AND b.id = x.blob_id;
  DELETE FROM access a USING old_rows o WHERE a.namespace = o.namespace AND a.key = o.key;
  -- Custom-table rows live and die with their entry: only the tables of the namespaces involved.
  FOR t IN SELECT c.id FROM custom_tables c WHERE c.namespace IN (SELECT DISTINCT namespace FROM old_rows) LOOP
    EXECUTE format('DELETE FROM %I r USING old_rows o WHERE r.namespace = o.namespace AND r.key = o.key', 'ct_' || t.id);
  END LOOP;
  RETURN NULL;
END
$$;

CREATE FUNCTION entries_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM bump_counter(x.namespace, 'bytes', x.delta)
    FROM (SELECT n.namespace, sum(n.stored_size - o.stored_size)::bigint AS delta
          FROM new_rows n JOIN old_rows o ON o.namespace = n.namespace AND o.key = n.key GROUP BY n.namespace ORDER BY n.namespace) x;
  UPDATE blobs b SET refs = b.refs - x.n
    FROM (SELECT o.namespace, o.blob_id, count(*) AS n FROM old_rows o JOIN new_rows n ON n.namespace = o.namespace AND n.key = o.key
          WHERE o.blob_id IS NOT NULL AND o.blob_id IS DISTINCT FROM n.blob_id GROUP BY o.namespace, o.blob_id) x
    WHERE b.namespace = x.namespace AND b.id = x.blob_id;
  UPDATE blobs b SET refs = b.refs + x.n, ready = true
    FROM (SELECT n.namespace, n.blob_id, count(*) AS n FROM new_rows n JOIN old_rows o ON o.namespace = n.namespace AND o.key = n.key
          WHERE n.blob_id IS NOT NULL AND n.blob_id IS DISTINCT FROM o.blob_id GROUP BY n.namespace, n.blob_id) x
    WHERE b.namespace = x.namespace AND b.id = x.blob_id;
  UPDATE blobs b SET ready = true
    FROM (SELECT DISTINCT namespace, blob_id FROM new_rows WHERE blob_id IS NOT NULL) x
    WHERE b.namespace = x.namespace AND b.id = x.blob_id AND NOT b.ready;
  RETURN NULL;
END
$$;

CREATE TRIGGER entries_inserted AFTER INSERT ON entries REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION entries_inserted();
CREATE TRIGGER entries_deleted AFTER DELETE ON entries REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION entries_deleted();
CREATE TRIGGER entries_updated AFTER UPDATE ON entries REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION entries_updated();
`,
  },
  {
    version: 7,
    name: 'garbage by object name; graveyard of replaced doomed blobs',
    sql: `
-- The sweeper walks a namespace's garbage in object-name order (streamed blobs keep staged names).
CREATE INDEX blobs_garbage_by_name ON blobs (namespace, (coalesce(object, id || '.' || gen) COLLATE "C")) WHERE refs <= 0;
-- A doomed blob re-acquired before its sweeper finished gets a new object name; the old name goes here
-- so its object is deleted (or tagged) even if that sweeper could not.
CREATE TABLE blob_graveyard (
  namespace text NOT NULL,
  name text COLLATE "C" NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, name)
);
`,
  },
  {
    version: 8,
    name: 'pending uploads dated by their writer',
    sql: `
-- A write replayed with the client's own time (writtenAt): the entry keeps that creation time when its
-- upload completes, and completion checks again that no later write was stored meanwhile. NULL: the
-- write happens at completion, as before.
ALTER TABLE uploads ADD COLUMN written_at timestamptz;
-- The record's expiresAt was given as an absolute time: completion keeps it instead of counting the
-- ttl from completion.
ALTER TABLE uploads ADD COLUMN fixed_expiry boolean NOT NULL DEFAULT false;
`,
  },
];

/** Applies the migrations not yet applied; returns the versions it applied. */
export async function migrate(sql: Sql, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return sql.begin(async (tx) => {
    await tx.unsafe('SELECT pg_advisory_xact_lock(7424316642)'); // "cacheness" migrations, one at a time
    await tx.unsafe('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await tx.unsafe('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new StoreError(
        'ESTORE',
        `The database schema is at version ${newest}, newer than this code knows (${known}): deploy the newer functions instead of migrating back (migrations are forward-only).`,
        { details: { newerSchema: true, version: newest, known } },
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.unsafe(m.sql);
      await tx.unsafe('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
