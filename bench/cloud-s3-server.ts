/**
 * The S3 stand-in of the cloud benchmark, in a process of its own (so it gets a core of its own and
 * does not share the event loop of the client being measured): the test harness's
 * @20minutes/s3rver on 127.0.0.1. Prints `{ endpoint, bucket }` as one JSON line, then serves until
 * its standard input closes (the parent ended or died) or it gets SIGTERM.
 *
 *   tsx --conditions=source bench/cloud-s3-server.ts [bucket]
 * @module
 */
import { startS3 } from '../functions/test/s3-server.js';

const s3 = await startS3(process.argv[2] ?? 'cacheness-bench');
process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint, bucket: s3.bucket })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await s3.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
