/**
 * S3 client middleware for tests that need to see or provoke what the S3-protocol test server cannot.
 *
 * - {@link recordCommands} only watches: every command still goes to the real server unchanged.
 * - {@link injectFaults} is the one stand-in the S3 tests allow: per-key errors that real S3 can
 *   report (a DeleteObjects call answering 200 with `AccessDenied` for some keys; a PutObjectTagging
 *   refused) but that no request can make s3rver produce. Keys not named in the faults are served by
 *   the real server, and a named key's object is really left in place (it is taken out of the
 *   DeleteObjects request before it is sent), exactly as after such an answer from S3.
 */
import type { ObjectIdentifier, S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/s3/client.js';
import { S3_CREDENTIALS, type S3Harness } from './s3-server.js';

/** A command the client sent: its name (`DeleteObjectsCommand`, …) and input. */
export interface SentCommand {
  name: string;
  input: Record<string, unknown>;
  output?: Record<string, unknown>;
}

/** A new client of the test server whose commands (and their outputs) are appended to the returned list. */
export function recordCommands(s3: S3Harness): { client: S3Client; sent: SentCommand[] } {
  const client = createS3Client({ endpoint: s3.endpoint, credentials: S3_CREDENTIALS });
  const sent: SentCommand[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const entry: SentCommand = { name: String(context.commandName), input: args.input as Record<string, unknown> };
      sent.push(entry);
      const result = await next(args);
      entry.output = result.output as unknown as Record<string, unknown>;
      return result;
    },
    { step: 'initialize', name: 'testRecordCommands' },
  );
  return { client, sent };
}

/** Object keys S3 refuses to act on; change the sets at any time (clear them to end the fault). */
export interface S3Faults {
  /** DeleteObjects reports `AccessDenied` for these keys and leaves the objects in place. */
  deleteDenied: Set<string>;
  /** PutObjectTagging on these keys fails with `AccessDenied`. */
  tagDenied: Set<string>;
}

class AccessDenied extends Error {
  override readonly name = 'AccessDenied';
  readonly $fault = 'client';
  readonly $metadata = { httpStatusCode: 403 };
}

/** A new client of the test server on which the given per-key faults happen (see the module comment). */
export function injectFaults(s3: S3Harness, faults: S3Faults): S3Client {
  const client = createS3Client({ endpoint: s3.endpoint, credentials: S3_CREDENTIALS });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Key?: string; Delete?: { Objects?: ObjectIdentifier[] } };
      if (context.commandName === 'PutObjectTaggingCommand' && input.Key && faults.tagDenied.has(input.Key)) throw new AccessDenied('Access Denied');
      if (context.commandName !== 'DeleteObjectsCommand' || !input.Delete?.Objects) return next(args);
      const objects = input.Delete.Objects;
      const denied = objects.filter((o) => o.Key !== undefined && faults.deleteDenied.has(o.Key));
      if (!denied.length) return next(args);
      const errors = denied.map(({ Key }) => ({ Key, Code: 'AccessDenied', Message: 'Access Denied' }));
      const rest = objects.filter((o) => !denied.includes(o));
      // S3 answers 200 with an <Error> per refused key; an empty Delete is malformed, so send none then.
      if (!rest.length) return { output: { $metadata: { httpStatusCode: 200 }, Errors: errors }, response: {} } as Awaited<ReturnType<typeof next>>;
      const result = await next({ ...args, input: { ...input, Delete: { ...input.Delete, Objects: rest } } as typeof args.input });
      const output = result.output as { Errors?: unknown[] };
      output.Errors = [...(output.Errors ?? []), ...errors];
      return result;
    },
    { step: 'initialize', name: 'testInjectFaults' },
  );
  return client;
}
