// Pool allocations of static services, kept in state.dir so that a VIP allocated from a pool
// is stable across restarts (SPEC, `services[].pool`). The only I/O of lb/ipam.
//
// File: <dir>/allocations.json, `{ "version": 1, "allocations": { "web": "192.168.122.90" } }`.
// - loadState never throws: a missing file is an empty state; an unreadable one is reported
//   and treated as empty; a corrupt one (bad JSON, wrong shape, wrong version) is reported,
//   moved aside to allocations.json.corrupt-<timestamp> and treated as empty. Entries with a
//   bad address are dropped, and so is every later entry with an address already seen, each
//   with a problem: no address is ever handed to two services.
// - saveState is atomic: a temp file in the same directory, fsync, rename over the file,
//   fsync of the directory. A crash leaves the old file or the new one, never a mix; a temp
//   file a crash left behind is ignored and removed by the next loadState.

import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalIp } from './address.ts';

export const STATE_FILE = 'allocations.json';
export const STATE_VERSION = 1;
const TEMP_PREFIX = `${STATE_FILE}.tmp-`;

export interface LoadedState {
  /** Service name -> canonical address. */
  allocations: Record<string, string>;
  /** One line each, action first; empty when the file was fine or absent. */
  problems: string[];
}

export interface LoadOptions {
  /** For the name of a corrupt file moved aside; default: now. */
  now?: Date;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The part of a Date usable in a file name: 2024-05-01T12-00-00-000Z. */
function stamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, '-');
}

/** Why the document is not a state file, if it is not. */
function shapeProblem(doc: unknown): string | undefined {
  if (!isPlainObject(doc)) return 'it is not a JSON object';
  if (doc['version'] !== STATE_VERSION) return `its "version" is ${JSON.stringify(doc['version']) ?? 'missing'}, not ${STATE_VERSION}`;
  if (!isPlainObject(doc['allocations'])) return 'its "allocations" is not an object';
  return undefined;
}

export async function loadState(dir: string, opts: LoadOptions = {}): Promise<LoadedState> {
  const file = join(dir, STATE_FILE);
  const problems: string[] = [];
  await removeStrayTemps(dir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { allocations: {}, problems };
    problems.push(`Check ${q(file)}: cannot read it (${e.code ?? e.message}); starting with no saved pool allocations`);
    return { allocations: {}, problems };
  }

  let doc: unknown;
  let why: string | undefined;
  try {
    doc = JSON.parse(text);
    why = shapeProblem(doc);
  } catch (err) {
    why = `it is not valid JSON (${(err as Error).message})`;
  }
  if (why !== undefined) {
    const aside = `${file}.corrupt-${stamp(opts.now ?? new Date())}`;
    try {
      await rename(file, aside);
      problems.push(`Check ${q(aside)}: ${q(file)} was moved there because ${why}; starting with no saved pool allocations`);
    } catch (err) {
      problems.push(`Check ${q(file)}: ${why}, and it could not be moved aside (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); starting with no saved pool allocations`);
    }
    return { allocations: {}, problems };
  }

  const allocations: Record<string, string> = {};
  const owner = new Map<string, string>();
  for (const [name, value] of Object.entries((doc as { allocations: Record<string, unknown> }).allocations)) {
    const ip = typeof value === 'string' ? canonicalIp(value) : undefined;
    if (ip === undefined) {
      problems.push(`Check ${q(file)}: dropped service ${q(name)}, whose address ${JSON.stringify(value)} is not an IP address`);
      continue;
    }
    const first = owner.get(ip);
    if (first !== undefined) {
      problems.push(`Check ${q(file)}: dropped service ${q(name)}, whose address ${q(ip)} is already saved for ${q(first)}`);
      continue;
    }
    owner.set(ip, name);
    allocations[name] = ip;
  }
  return { allocations, problems };
}

let tempCounter = 0;

/** Writes the allocations atomically (see the header). Throws on I/O failure, leaving the old file. */
export async function saveState(dir: string, allocations: Readonly<Record<string, string>>): Promise<void> {
  const file = join(dir, STATE_FILE);
  const sorted: Record<string, string> = {};
  for (const name of Object.keys(allocations).sort()) sorted[name] = allocations[name]!;
  const text = `${JSON.stringify({ version: STATE_VERSION, allocations: sorted }, null, 2)}\n`;
  const temp = join(dir, `${TEMP_PREFIX}${process.pid}-${Date.now()}-${tempCounter++}`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(temp, 'wx', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw new Error(`Cannot save pool allocations to ${q(file)}: ${(err as Error).message}`, { cause: err });
  }
  // The rename is durable only once the directory is: best effort where directories
  // cannot be opened for fsync.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // EISDIR/EPERM on some filesystems: the rename itself is done.
  }
}

/** Temp files of a save that crashed before its rename: never read, removed. */
async function removeStrayTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(TEMP_PREFIX)) await unlink(join(dir, n)).catch(() => undefined);
}
