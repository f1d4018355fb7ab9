import { randomBytes } from 'node:crypto';
import type { Clock } from './clock.js';

const alphabet = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

function encodeTime(ms: number, length: number): string {
  let out = '';
  let value = ms;
  for (let i = 0; i < length; i++) {
    out = alphabet[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

function encodeRandom(length: number, random: (n: number) => Buffer): string {
  const bytes = random(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[(bytes[i] as number) % 32];
  return out;
}

export type IdKind =
  | 'agt'
  | 'cred'
  | 'task'
  | 'evt'
  | 'key'
  | 'req'
  | 'inc'
  | 'cnt'
  | 'det'
  | 'act'
  | 'apr'
  | 'grt'
  | 'usr'
  | 'utok'
  | 'exp'
  | 'bnd'
  | 'rev';

/**
 * Ids are a kind prefix plus a time-ordered, ULID-like body, so they sort by creation
 * time and say what they name when they show up in a log line.
 */
export class IdGenerator {
  private pool: Buffer = Buffer.alloc(0);
  private offset = 0;

  constructor(
    private readonly clock: Clock,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {}

  next(kind: IdKind): string {
    return `${kind}_${encodeTime(this.clock.now(), 10)}${encodeRandom(16, (n) => this.take(n))}`;
  }

  /** Random bytes drawn from a pool refilled 4 KiB at a time: one system call per 256 ids. */
  private take(n: number): Buffer {
    if (this.offset + n > this.pool.length) {
      this.pool = this.random(4096);
      this.offset = 0;
    }
    const bytes = this.pool.subarray(this.offset, this.offset + n);
    this.offset += n;
    return bytes;
  }
}
