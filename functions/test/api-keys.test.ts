import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, listApiKeys, revokeApiKey, verifyApiKey } from '../src/postgres/index.js';
import { type PostgresHarness, startPostgres } from './postgres-server.js';

let pg: PostgresHarness;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(() => pg.stop());

describe('API keys', () => {
  it('verify to their namespace and scopes, and store only a hash', async () => {
    const { key, info } = await createApiKey(pg.sql, { namespace: 'team-a', scopes: ['read', 'write'], name: 'ci' });
    expect(key).toMatch(/^ck_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(await verifyApiKey(pg.sql, key)).toEqual({ keyId: info.keyId, namespace: 'team-a', scopes: ['read', 'write'] });
    const stored = await pg.sql`SELECT * FROM api_keys WHERE id = ${info.keyId}`;
    expect(JSON.stringify(stored)).not.toContain(key.slice(16));
  });

  it('reject malformed, unknown, tampered and revoked keys', async () => {
    const { key, info } = await createApiKey(pg.sql, { namespace: 'team-b', scopes: ['read'] });
    const [id, secret] = [key.slice(3, 15), key.slice(16)]; // ck_<12-character id>_<secret>; the secret may itself contain '_'
    const flipped = `ck_${id}_${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of ['', 'ck_', 'Bearer x', `ck_${'0'.repeat(12)}_${secret}`, flipped, `${key}x`]) {
      expect(await verifyApiKey(pg.sql, bad), bad).toBeUndefined();
    }
    expect(await revokeApiKey(pg.sql, 'someone-else', info.keyId)).toBe(false); // only its own namespace may revoke it
    expect(await verifyApiKey(pg.sql, key)).toBeDefined();
    expect(await revokeApiKey(pg.sql, 'team-b', info.keyId)).toBe(true);
    expect(await verifyApiKey(pg.sql, key)).toBeUndefined();
    expect(await revokeApiKey(pg.sql, 'team-b', info.keyId)).toBe(false);
  });

  it('list a namespace’s keys without secrets', async () => {
    await createApiKey(pg.sql, { namespace: 'team-c', scopes: ['admin'], name: 'ops' });
    await createApiKey(pg.sql, { namespace: 'team-d', scopes: ['read'] });
    const keys = await listApiKeys(pg.sql, 'team-c');
    expect(keys.map((k) => [k.namespace, k.name, k.scopes])).toEqual([['team-c', 'ops', ['admin']]]);
    expect(Object.keys(keys[0] ?? {})).not.toContain('secretHash');
  });

  it('refuse bad namespaces and scopes', async () => {
    await expect(createApiKey(pg.sql, { namespace: '../etc', scopes: ['read'] })).rejects.toThrow(RangeError);
    await expect(createApiKey(pg.sql, { namespace: 'ok', scopes: [] })).rejects.toThrow(RangeError);
    await expect(createApiKey(pg.sql, { namespace: 'ok', scopes: ['root' as 'read'] })).rejects.toThrow(RangeError);
  });
});
