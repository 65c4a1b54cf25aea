/**
 * API keys: each bound to one namespace (tenant) with scopes. Only a hash of the secret is stored;
 * the key itself is shown once, at creation. A key reads `ck_<id>_<secret>`: the id finds the row,
 * the secret is checked against its SHA-256 in constant time.
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from 'postgres';

/** What a key may do. `admin` manages keys of its namespace. */
export type Scope = 'read' | 'write' | 'admin';
const SCOPES: readonly Scope[] = ['read', 'write', 'admin'];
const KEY = /^ck_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The identity a valid key grants. */
export interface Principal {
  keyId: string;
  namespace: string;
  scopes: Scope[];
}

/** A key's public description (never its secret). */
export interface ApiKeyInfo extends Principal {
  name: string;
  createdAt: Date;
  revokedAt: Date | null;
}

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Checks a namespace name: 1-63 letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export function validateNamespace(namespace: string): string {
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new RangeError(`Invalid namespace ${JSON.stringify(namespace)}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit.`);
  }
  return namespace;
}

/** Creates a key; returns it in full, the only time it is available. */
export async function createApiKey(sql: Sql, opts: { namespace: string; scopes: Scope[]; name?: string }): Promise<{ key: string; info: ApiKeyInfo }> {
  validateNamespace(opts.namespace);
  const scopes = [...new Set(opts.scopes)];
  if (scopes.length === 0 || scopes.some((s) => !SCOPES.includes(s))) throw new RangeError(`Scopes must be a non-empty subset of ${SCOPES.join(', ')}.`);
  const id = randomBytes(9)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '0')
    .slice(0, 12);
  const secret = randomBytes(32).toString('base64url'); // 43 characters
  const [row] = await sql`
    INSERT INTO api_keys (id, namespace, name, secret_hash, scopes)
    VALUES (${id}, ${opts.namespace}, ${opts.name ?? ''}, ${hash(secret)}, ${scopes})
    RETURNING created_at`;
  return { key: `ck_${id}_${secret}`, info: { keyId: id, namespace: opts.namespace, scopes, name: opts.name ?? '', createdAt: row?.created_at as Date, revokedAt: null } };
}

/** The principal of a valid, unrevoked key; undefined for anything else (malformed, unknown, revoked, wrong secret). */
export async function verifyApiKey(sql: Sql, key: string): Promise<Principal | undefined> {
  const m = typeof key === 'string' ? KEY.exec(key) : null;
  if (!m) return undefined;
  const [row] = await sql`SELECT namespace, scopes, secret_hash FROM api_keys WHERE id = ${m[1] as string} AND revoked_at IS NULL`;
  if (!row) return undefined;
  const stored = row.secret_hash as Buffer;
  const given = hash(m[2] as string);
  if (stored.length !== given.length || !timingSafeEqual(stored, given)) return undefined;
  return { keyId: m[1] as string, namespace: row.namespace as string, scopes: row.scopes as Scope[] };
}

/** Revokes a key of `namespace`; false when there is no such active key there. */
export async function revokeApiKey(sql: Sql, namespace: string, keyId: string): Promise<boolean> {
  const rows = await sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${keyId} AND namespace = ${namespace} AND revoked_at IS NULL RETURNING id`;
  return rows.length > 0;
}

/** The keys of a namespace (without secrets). */
export async function listApiKeys(sql: Sql, namespace: string): Promise<ApiKeyInfo[]> {
  const rows = await sql`SELECT id, namespace, name, scopes, created_at, revoked_at FROM api_keys WHERE namespace = ${namespace} ORDER BY created_at, id`;
  return rows.map((r) => ({
    keyId: r.id as string,
    namespace: r.namespace as string,
    name: r.name as string,
    scopes: r.scopes as Scope[],
    createdAt: r.created_at as Date,
    revokedAt: (r.revoked_at as Date | null) ?? null,
  }));
}
