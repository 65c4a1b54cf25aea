/** Lambda handler that applies database migrations (run by the deployment before the API serves). */
import { StoreError } from 'cacheness/model';
import { createApiKey, type Scope } from '../postgres/api-keys.js';
import { migrate } from '../postgres/migrations.js';
import { lambdaContext, withFreshConnectionOnDrop } from './config.js';

/**
 * Applies the migrations. Invoked directly, or as a CloudFormation custom resource (through the CDK
 * provider framework) on every deploy that changes them; deleting the resource changes nothing.
 */
export async function handler(event?: MigrateEvent): Promise<{ applied: number[]; key?: string; info?: unknown }> {
  if (event?.RequestType === 'Delete') return { applied: [] };
  const ctx = lambdaContext();
  let applied: number[];
  try {
    applied = await withFreshConnectionOnDrop(ctx, () => migrate(ctx.sql));
  } catch (err) {
    // A CloudFormation rollback brings back the previous code while the database keeps the newer schema
    // (migrations are forward-only): succeed, so the rollback can finish, and say so in the log.
    if (event?.RequestType !== 'Update' || !(err instanceof StoreError) || err.details?.newerSchema !== true) throw err;
    console.warn(`migrations skipped during a rollback: ${err.message}`);
    applied = [];
  }
  if (!event?.createKey) return { applied };
  // The first API key of a deployment: operators invoke this function (it alone reaches the database
  // and holds its credentials; invoking it takes lambda:InvokeFunction on it).
  const { key, info } = await createApiKey(ctx.sql, { namespace: event.createKey.namespace, scopes: event.createKey.scopes, name: event.createKey.name });
  return { applied, key, info };
}

/** A CloudFormation custom-resource event, or an operator's request for an API key. */
export interface MigrateEvent {
  RequestType?: 'Create' | 'Update' | 'Delete';
  createKey?: { namespace: string; scopes: Scope[]; name?: string };
}
