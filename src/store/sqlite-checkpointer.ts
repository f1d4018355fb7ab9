import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Copies committed WAL frames into the SQLite database file from a worker thread with a
 * connection of its own, so the writer's event loop never waits for that copy or its
 * fsync. Measured on the audit append path: SQLite's automatic checkpoint, run inside the
 * committing call every 1,000 pages, tripled the wall time of an insert batch on this
 * machine's disk. PASSIVE checkpoints never block the writer or readers; the writer's own
 * automatic checkpoint stays on as a backstop and finds the work already done.
 */
export interface Checkpointer {
  stop(): Promise<void>;
}

// Runs as CommonJS in the worker (eval), so it needs no build step of its own.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 0');
let stopping = false;
const tick = () => {
  if (stopping) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or closing: the next tick (or the writer's own checkpoint) does it.
  }
  setTimeout(tick, workerData.intervalMs);
};
parentPort.on('message', () => {
  stopping = true;
  try { db.close(); } catch {}
  parentPort.close();
});
tick();
`;

/** Start checkpointing the WAL of `file` every `intervalMs` from a worker thread. */
export function startCheckpointer(file: string, intervalMs = 100): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(workerSource, { eval: true, workerData: { file, driver, intervalMs } });
  worker.unref();
  // A failing checkpointer costs speed, never data: the writer's automatic checkpoint remains.
  worker.on('error', () => {});
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    async stop() {
      // Unreferenced while it works (it must not keep a process alive), referenced while we wait for it.
      worker.ref();
      worker.postMessage('stop');
      await exited;
    },
  };
}
