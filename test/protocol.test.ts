import { createCache } from 'cacheness';
import { fromWireEntry, toWireEntry } from 'cacheness/model';
import { expect, it } from 'vitest';

it('carries entries over the wire as JSON and back unchanged, dates included', async () => {
  const cache = createCache({ store: 'memory' });
  try {
    await cache.put({ a: 1 }, 'k', { ttl: '1h', metadata: { team: 'x' }, description: 'd' });
    const info = (await cache.getEntry('k')) as NonNullable<Awaited<ReturnType<typeof cache.getEntry>>>;
    const wire = JSON.parse(JSON.stringify(toWireEntry(info)));
    expect(typeof wire.createdAt).toBe('string');
    expect(fromWireEntry(wire)).toEqual(info);
    const never = { ...info, expiresAt: null };
    expect(fromWireEntry(JSON.parse(JSON.stringify(toWireEntry(never))))).toEqual(never);
  } finally {
    await cache.close();
  }
});
