/**
 * The database password from an AWS Secrets Manager secret (the JSON secret RDS and the CDK app create:
 * `{ username, password, host, port, dbname }`), read when a connection opens and kept for a minute,
 * so a rotated password reaches new connections within a minute without a call per connection.
 * @module
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { StoreError } from 'cacheness/model';

/** How long a fetched password is reused. */
export const SECRET_CACHE_MS = 60_000;

/** A password source for {@link connectDatabase}'s `password` option; `invalidate()` forgets the cached one (after a rotation). */
export type PasswordSource = (() => Promise<string>) & { invalidate(): void };

/** A password source for {@link connectDatabase}'s `password` option. */
export function secretPassword(secretId: string, opts: { client?: SecretsManagerClient; clock?: () => number } = {}): PasswordSource {
  const client = opts.client ?? new SecretsManagerClient({});
  const clock = opts.clock ?? Date.now;
  let cached: { value: string; at: number } | undefined;
  const read = async () => {
    if (cached && clock() - cached.at < SECRET_CACHE_MS) return cached.value;
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    let password: unknown;
    try {
      password = (JSON.parse(out.SecretString ?? '') as { password?: unknown }).password;
    } catch {
      password = undefined;
    }
    if (typeof password !== 'string')
      throw new StoreError('ESTORE', `Secret ${secretId} holds no JSON "password" field: point DATABASE_SECRET_ARN at the database's credentials secret.`);
    cached = { value: password, at: clock() };
    return password;
  };
  return Object.assign(read, {
    invalidate: () => {
      cached = undefined;
    },
  });
}
