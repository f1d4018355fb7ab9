/**
 * Export bundles made through the admin API (for the console): each is written to
 * `<data>/exports/<id>/` exactly as `custos audit export` writes one, verified at once, and
 * described by `<data>/exports/<id>.json` (who asked, when, the window, the summary and the
 * verification), kept beside the bundle so the bundle itself stays what an auditor checks.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CustosError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { BUNDLE_FILES, type ExportSummary, exportBundle } from './bundle.js';
import type { TransparencyLog } from './tlog.js';
import { type BundleVerification, verifyBundle } from './verify-bundle.js';

export interface StoredExport {
  readonly id: string;
  readonly createdAt: number;
  /** Who asked for it (an email, or "admin-token"). */
  readonly createdBy: string;
  /** The window asked for (ISO 8601, inclusive), or null for unbounded. */
  readonly from: string | null;
  readonly to: string | null;
  readonly summary: ExportSummary;
  /** The result of verifying the bundle with the log's key right after writing it. */
  readonly verification: BundleVerification;
  /** The files of the bundle, with their sizes in bytes. */
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
}

const ID = /^exp_[0-9a-z]{26}$/;
const FILE_NAMES: ReadonlySet<string> = new Set(Object.values(BUNDLE_FILES));

/** The export bundles kept under one directory. */
export class ExportStore {
  constructor(private readonly dir: string) {}

  /** Write, verify and describe a new bundle for the events in [from, to]. */
  async create(
    store: Store,
    log: TransparencyLog,
    request: { id: string; createdBy: string; now: number; from?: number; to?: number },
  ): Promise<StoredExport> {
    const out = join(this.dir, request.id);
    mkdirSync(this.dir, { recursive: true });
    try {
      const summary = await exportBundle(store, log, {
        outDir: out,
        ...(request.from === undefined ? {} : { from: request.from }),
        ...(request.to === undefined ? {} : { to: request.to }),
      });
      const verification = await verifyBundle(out, { verifierKey: log.verifierKey });
      const stored: StoredExport = {
        id: request.id,
        createdAt: request.now,
        createdBy: request.createdBy,
        from: request.from === undefined ? null : new Date(request.from).toISOString(),
        to: request.to === undefined ? null : new Date(request.to).toISOString(),
        summary,
        verification,
        files: this.filesOf(request.id),
      };
      writeFileSync(join(this.dir, `${request.id}.json`), `${JSON.stringify(stored, null, 2)}\n`);
      return stored;
    } catch (error) {
      rmSync(out, { recursive: true, force: true });
      throw error;
    }
  }

  /** Every kept export, newest first. */
  list(): StoredExport[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((name) => name.endsWith('.json') && ID.test(name.slice(0, -5)))
      .sort()
      .reverse()
      .map((name) => JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as StoredExport);
  }

  get(id: string): StoredExport {
    const path = join(this.dir, `${id}.json`);
    if (!ID.test(id) || !existsSync(path)) throw new CustosError('not_found', `no audit export ${id}`);
    return JSON.parse(readFileSync(path, 'utf8')) as StoredExport;
  }

  /** One file of a bundle, by its name in the bundle (events.jsonl, checkpoints.txt, ...). */
  file(id: string, name: string): { path: string; bytes: number } {
    this.get(id);
    if (!FILE_NAMES.has(name))
      throw new CustosError('not_found', `an export bundle has no file ${JSON.stringify(name)}`);
    const path = join(this.dir, id, name);
    if (!existsSync(path)) throw new CustosError('not_found', `export ${id} has no file ${name}`);
    return { path, bytes: statSync(path).size };
  }

  private filesOf(id: string): StoredExport['files'] {
    return [...FILE_NAMES]
      .filter((name) => existsSync(join(this.dir, id, name)))
      .map((name) => ({ name, bytes: statSync(join(this.dir, id, name)).size }));
  }
}
