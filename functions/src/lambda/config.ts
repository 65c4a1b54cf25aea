/**
 * Configuration of the Lambda handlers, from the environment, created once per container.
 * - DATABASE_URL: the Postgres connection string (in AWS without a password: see DATABASE_SECRET_ARN);
 * - DATABASE_SECRET_ARN (optional): a Secrets Manager secret whose JSON `password` is the password;
 * - DATABASE_SSL (optional): `verify-full` for TLS with the certificate checked, `require` for TLS alone;
 * - DATABASE_CONNECT_TIMEOUT_SECONDS (optional, default 35): below the function's own timeout, so a
 *   request that meets a resuming Aurora answers 503 with Retry-After instead of timing out;
 * - DB_SCHEMA (optional): the search_path;
 * - BUCKET: the payload bucket; S3_ENDPOINT (optional, for tests and the local stack).
 * @module
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Sql } from 'postgres';
import { connectDatabase, generationOf, isDroppedConnection, reconnectIfPossible } from '../postgres/connect.js';
import { secretPassword } from '../postgres/secret-password.js';
import { createS3Client } from '../s3/client.js';

export interface LambdaContext {
  sql: Sql;
  s3: S3Client;
  bucket: string;
  /** Forgets a cached database password (its secret was rotated). */
  onDatabaseAuthFailure?: () => void;
}

let context: LambdaContext | undefined;

export function lambdaContext(env: NodeJS.ProcessEnv = process.env): LambdaContext {
  if (!context) {
    const url = env.DATABASE_URL;
    const bucket = env.BUCKET;
    if (!url || !bucket) throw new Error('The cacheness functions need DATABASE_URL and BUCKET in their environment.');
    const password = env.DATABASE_SECRET_ARN ? secretPassword(env.DATABASE_SECRET_ARN) : undefined;
    context = {
      ...(password ? { onDatabaseAuthFailure: () => password.invalidate() } : {}),
      sql: connectDatabase(url, {
        schema: env.DB_SCHEMA || undefined,
        ...(env.DATABASE_CONNECT_TIMEOUT_SECONDS ? { connectTimeoutSeconds: Number(env.DATABASE_CONNECT_TIMEOUT_SECONDS) } : {}),
        ...(password ? { password } : {}),
        ...(env.DATABASE_SSL === 'require' || env.DATABASE_SSL === 'verify-full' ? { ssl: env.DATABASE_SSL } : {}),
      }),
      s3: createS3Client({ region: env.AWS_REGION, endpoint: env.S3_ENDPOINT }),
      bucket,
    };
  }
  return context;
}

/**
 * Runs a handler's work; if the database connection broke under it, replaces the container's
 * connections before rethrowing, so the next invocation of this container does not inherit a wedged one.
 */
export async function withFreshConnectionOnDrop<T>(ctx: LambdaContext, fn: () => Promise<T>): Promise<T> {
  const generation = generationOf(ctx.sql);
  try {
    return await fn();
  } catch (err) {
    if (isDroppedConnection(err)) reconnectIfPossible(ctx.sql, generation);
    if ((err as { code?: unknown }).code === '28P01') ctx.onDatabaseAuthFailure?.();
    throw err;
  } finally {
    // Scheduled and deploy-time work holds no connection between invocations: a frozen container's
    // open session would keep a paused Aurora awake (the API relies on idle_session_timeout instead).
    reconnectIfPossible(ctx.sql);
  }
}
