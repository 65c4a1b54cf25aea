/** The API's error table: library errors keep their code, get the status they deserve, and server failures leak nothing. */

import { CachenessError, type ErrorCode, IntegrityError, StoreError, ValueError } from 'cacheness/model';
import { describe, expect, it } from 'vitest';
import { toErrorResponse } from '../src/api/errors.js';

describe('toErrorResponse', () => {
  it.each([
    ['EKEYFILE', 400],
    ['EKEYASYNC', 400],
    ['ESTREAM', 400],
    ['EFILE', 400],
    ['EHANDLER', 400],
    ['EVALUETOOLARGE', 413],
    ['ETABLE', 404],
  ] as [ErrorCode, number][])('%s is a %i with its own message and details', (code, status) => {
    const r = toErrorResponse(new ValueError(code, `about ${code}`, { details: { key: 'k' } }));
    expect(r.status).toBe(status);
    expect(r.body.error).toEqual({ code, message: `about ${code}`, details: { key: 'k' } });
  });

  it('reports damage as 422 and server failures as 500 without their message or details', () => {
    expect(toErrorResponse(new IntegrityError('EINTEGRITY', 'damaged')).status).toBe(422);
    const store = toErrorResponse(new StoreError('ESTORE', 'disk /var/secret full', { details: { path: '/var/secret' } }));
    expect(store.status).toBe(500);
    expect(store.body.error).toEqual({ code: 'ESTORE', message: 'The store failed; try again later.' });
    expect(toErrorResponse(new CachenessError('ECLOSED', 'closed')).status).toBe(500);
  });
});
