import type { Custos, StartOptions } from '../src/app.js';
import type { buildConfig as BuildConfig, Config } from '../src/core/config.js';

export interface ChaosRig {
  readonly custos: Custos;
  readonly arrivals: number[];
  readonly dataDir: string;
  readonly home: string;
  token(): Promise<string>;
  close(): Promise<void>;
}

export function startChaosRig(options: {
  startCustos: (config: Config, options?: StartOptions) => Promise<Custos>;
  buildConfig: typeof BuildConfig;
  detect?: Record<string, unknown>;
  playbooks?: Record<string, string>;
  /** Run the echo upstream in its own process. */
  upstreamProcess?: boolean;
}): Promise<ChaosRig>;

export interface RunawayResult {
  rate: number;
  ownProcess: boolean;
  normalCalls: number;
  sent: number;
  outcomes: { ok: number; refused: number; error: number };
  achievedRate: number;
  detected: boolean;
  detectionMs: number | null;
  upstreamAfterOnset: number;
  upstreamAfterDetection: number | null;
  upstreamTotal: number;
  incidentId: string | null;
  detector: string | null;
  /** Calls refused at authentication with the tokens the quarantine ended, as the incident counts them. */
  refusedTokens: number | null;
}

export function runaway(
  rig: ChaosRig,
  options: {
    rate: number;
    normalSeconds?: number;
    maxSeconds?: number;
    tailMs?: number;
    ownProcess?: boolean;
  },
): Promise<RunawayResult>;

export interface KillResult {
  rate: number;
  sent: number;
  outcomes: { ok: number; refused: number; error: number };
  cli: { code: number; stdout: string; stderr: string };
  upstreamBeforeKillReturned: number;
  upstreamAfterKillReturned: number;
}

export function killSwitch(
  rig: ChaosRig,
  options: { bin: string; rate?: number; beforeKillMs?: number; afterKillMs?: number },
): Promise<KillResult>;

export function runCli(
  bin: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }>;
