/** Worker thread of offline verification: checks one byte range of events.jsonl (see verify-events.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { checkEventRange, type EventRange } from './verify-events.js';

parentPort!.postMessage(await checkEventRange(workerData as EventRange));
