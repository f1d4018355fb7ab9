import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { type EngineLimits, PolicyEngine } from './engine.js';
import { compilePolicySet, PolicyLoadError, type PolicySources, readPolicyDirectory } from './load.js';
import type {
  Decision,
  DecisionInput,
  LoadedPolicy,
  PolicyExplanation,
  PolicyPrincipal,
  PolicyProblem,
  PolicyResource,
  PolicyTask,
} from './types.js';

/** What the store currently enforces. Frozen; a reload replaces it whole. */
export interface PolicySnapshot {
  /** Starts at 1 and grows by one on every successful reload. */
  readonly generation: number;
  readonly directory: string | undefined;
  /** `built-in` or the schema file's name. */
  readonly schema: string;
  readonly policies: readonly LoadedPolicy[];
  /** When this snapshot was loaded (ms since the epoch, from the injected clock). */
  readonly loadedAt: number;
  /**
   * Hex SHA-256 identifying the policy set: of the schema text and every policy's id and
   * text, in id order. Equal sets hash equal whenever and wherever loaded; any change to a
   * policy or the schema changes it. Audit events commit to it (policySetHash).
   */
  readonly hash: string;
}

export type ReloadResult =
  | { readonly ok: true; readonly snapshot: PolicySnapshot }
  | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

export interface PolicyStoreOptions {
  /** Source of `loadedAt` times; defaults to Date.now. */
  readonly now?: () => number;
  readonly limits?: Partial<EngineLimits>;
}

export interface WatchListener {
  /** A change was loaded and is now enforced. */
  readonly onReload?: (snapshot: PolicySnapshot) => void;
  /** A change was rejected; the previous snapshot stays in force. */
  readonly onError: (problems: readonly PolicyProblem[]) => void;
}

function snapshotOf(
  engine: PolicyEngine,
  generation: number,
  directory: string | undefined,
  loadedAt: number,
): PolicySnapshot {
  const policies = engine.policySet.policies.map(({ id, file, index, line, effect, text }) =>
    Object.freeze({ id, file, index, line, effect, text }),
  );
  return Object.freeze({
    generation,
    directory,
    schema: engine.policySet.schemaName,
    policies: Object.freeze(policies),
    loadedAt,
    hash: policySetHash(engine.policySet.schemaText, policies),
  });
}

/** See PolicySnapshot.hash. Lengths prefix every part, so no two different sets give the same input. */
export function policySetHash(schemaText: string, policies: readonly { id: string; text: string }[]): string {
  const digest = createHash('sha256');
  const part = (text: string) => {
    const bytes = Buffer.from(text, 'utf8');
    digest.update(`${bytes.length}:`).update(bytes);
  };
  part('custos policy set v1');
  part(schemaText);
  const sorted = [...policies].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const policy of sorted) {
    part(policy.id);
    part(policy.text);
  }
  return digest.digest('hex');
}

function problemsOf(error: unknown): readonly PolicyProblem[] {
  if (error instanceof PolicyLoadError) return error.problems;
  throw error;
}

/**
 * Holds the policy set in force and answers decisions from it. A reload compiles the new set
 * completely before swapping one reference, so every decision sees either the old or the new
 * set, never a mix and never nothing; an invalid change leaves the last good set in force.
 */
export class PolicyStore {
  private current: { engine: PolicyEngine; snapshot: PolicySnapshot };
  private watcher: FSWatcher | undefined;
  private reloading: Promise<ReloadResult> | undefined;
  private reloadAgain = false;

  private constructor(
    engine: PolicyEngine,
    private readonly directory: string | undefined,
    private readonly options: PolicyStoreOptions,
  ) {
    const now = options.now ?? Date.now;
    this.current = { engine, snapshot: snapshotOf(engine, 1, directory, now()) };
  }

  /** Load a policy directory; throws PolicyLoadError (code `policy_invalid`) if it does not validate. */
  static async open(directory: string, options: PolicyStoreOptions = {}): Promise<PolicyStore> {
    const sources = await readPolicyDirectory(directory);
    return new PolicyStore(new PolicyEngine(compilePolicySet(sources), options.limits), directory, options);
  }

  /** Build a store from in-memory sources (tests, `custos policy test` on unsaved files). */
  static fromSources(sources: PolicySources, options: PolicyStoreOptions = {}): PolicyStore {
    return new PolicyStore(new PolicyEngine(compilePolicySet(sources), options.limits), undefined, options);
  }

  get snapshot(): PolicySnapshot {
    return this.current.snapshot;
  }

  /** Hash of the policy set in force (PolicySnapshot.hash). */
  get policySetHash(): string {
    return this.current.snapshot.hash;
  }

  /** The engine in force (for tools that compare indexed and full evaluation). */
  get engine(): PolicyEngine {
    return this.current.engine;
  }

  decide(input: DecisionInput): Decision {
    return this.current.engine.decide(input);
  }

  explain(input: DecisionInput): PolicyExplanation {
    return this.current.engine.explain(input);
  }

  canSee(principal: PolicyPrincipal, task: PolicyTask | undefined, resource: PolicyResource): boolean {
    return this.current.engine.canSee(principal, task, resource);
  }

  /** The annotations of a policy in force (e.g. `@approval("payments")`), or undefined for an unknown id. */
  annotationsOf(id: string): Readonly<Record<string, string>> | undefined {
    const policy = this.current.engine.policySet.byId.get(id);
    return policy === undefined ? undefined : (policy.json.annotations ?? {});
  }

  /** Re-read the directory (or use the given sources) and swap in the result if it validates. */
  async reload(sources?: PolicySources): Promise<ReloadResult> {
    let compiled: ReturnType<typeof compilePolicySet>;
    try {
      const read =
        sources ?? (this.directory === undefined ? undefined : await readPolicyDirectory(this.directory));
      if (read === undefined) return { ok: true, snapshot: this.current.snapshot };
      compiled = compilePolicySet(read);
    } catch (error) {
      return { ok: false, problems: problemsOf(error) };
    }
    const engine = new PolicyEngine(compiled, this.options.limits);
    const previous = this.current.engine;
    const now = this.options.now ?? Date.now;
    this.current = {
      engine,
      snapshot: snapshotOf(engine, this.current.snapshot.generation + 1, this.directory, now()),
    };
    previous.dispose();
    return { ok: true, snapshot: this.current.snapshot };
  }

  /**
   * Reload whenever the directory changes (debounced). Returns a function that stops watching.
   * Rejected changes go to `onError` and leave the previous set in force.
   */
  watch(listener: WatchListener, debounceMs = 100): () => void {
    if (this.directory === undefined) throw new Error('watch needs a store opened from a directory');
    this.watcher?.close();
    let timer: NodeJS.Timeout | undefined;
    const trigger = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        void this.reloadSerially(listener);
      }, debounceMs);
    };
    const watcher = watch(this.directory, trigger);
    watcher.on('error', (error) =>
      listener.onError([{ file: this.directory ?? '', message: String(error) }]),
    );
    this.watcher = watcher;
    return () => {
      if (timer !== undefined) clearTimeout(timer);
      watcher.close();
      if (this.watcher === watcher) this.watcher = undefined;
    };
  }

  /** Stop watching and release the engine's Cedar state. */
  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.current.engine.dispose();
  }

  // One reload at a time; changes that arrive meanwhile cause exactly one more.
  private async reloadSerially(listener: WatchListener): Promise<void> {
    if (this.reloading !== undefined) {
      this.reloadAgain = true;
      return;
    }
    do {
      this.reloadAgain = false;
      this.reloading = this.reload();
      const result = await this.reloading;
      this.reloading = undefined;
      if (result.ok) listener.onReload?.(result.snapshot);
      else listener.onError(result.problems);
    } while (this.reloadAgain);
  }
}
