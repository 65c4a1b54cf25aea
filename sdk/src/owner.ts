/**
 * Identity of this process as the owner of in-flight writes (blob pins, temp files), and a
 * liveness check used to clean up after writers that died (kill -9, power loss).
 * @module
 */
import { hostname } from 'node:os';

const HOST = hostname();

/** `host:pid` of this process. */
export function processOwner(): string {
  return `${HOST}:${process.pid}`;
}

/** True unless `pid` is certainly not a running process on this machine. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Liveness of a `host:pid` owner: owners on other hosts are assumed alive (they expire by time). */
export function isOwnerAlive(owner: string): boolean {
  const at = owner.lastIndexOf(':');
  if (at < 0 || owner.slice(0, at) !== HOST) return true;
  return isPidAlive(Number(owner.slice(at + 1)));
}
