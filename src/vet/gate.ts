import { statSync, unwatchFile, watchFile } from 'node:fs';
import { readLockfile } from './lockfile.js';
import { definitionHash, type Lockfile, type PinSection } from './pins.js';
import type { Json } from './types.js';

export type GatedKind = 'tool' | 'prompt' | 'resource' | 'resourceTemplate';

const sectionOf: Record<GatedKind, PinSection> = {
  tool: 'tools',
  prompt: 'prompts',
  resource: 'resources',
  resourceTemplate: 'resourceTemplates',
};

const keyOf: Record<GatedKind, (d: Json) => string> = {
  tool: (d) => String(d.name),
  prompt: (d) => String(d.name),
  resource: (d) => String(d.uri),
  resourceTemplate: (d) => String(d.uriTemplate),
};

export interface PinGateOptions {
  /** Called after the lockfile changed on disk and was reloaded (the view must be rebuilt). */
  onChange?: () => void;
  onError?: (error: unknown) => void;
  /** How often to look at the lockfile's modification time, in ms. */
  pollMs?: number;
}

/**
 * Enforces the pin lockfile in the gateway: a definition is admitted only when its canonical
 * hash equals the pinned one, and the server's instructions are unchanged. Anything added,
 * changed, renamed or belonging to a server without pins is withheld (fail closed), until a
 * human approves the new state (custos vet approve), which rewrites the lockfile.
 * A lockfile that cannot be read withholds everything.
 */
export class PinGate {
  #lock: Lockfile | undefined;
  #hashes = new WeakMap<object, string>();
  readonly #path: string;
  readonly #options: PinGateOptions;

  constructor(path: string, options: PinGateOptions = {}) {
    this.#path = path;
    this.#options = options;
    this.#load();
    watchFile(path, { interval: options.pollMs ?? 500, persistent: false }, () => {
      this.#load();
      options.onChange?.();
    });
  }

  get path(): string {
    return this.#path;
  }

  /** The lockfile in force; undefined when it cannot be read (everything is withheld). */
  get lockfile(): Lockfile | undefined {
    return this.#lock;
  }

  /** Re-read the lockfile now (after this process wrote it). */
  reload(): void {
    this.#load();
    this.#options.onChange?.();
  }

  close(): void {
    unwatchFile(this.#path);
  }

  #load(): void {
    try {
      statSync(this.#path);
      this.#lock = readLockfile(this.#path);
    } catch (error) {
      this.#lock = undefined;
      this.#options.onError?.(error);
    }
  }

  #hash(kind: GatedKind, definition: Json): string {
    let hash = this.#hashes.get(definition);
    if (hash === undefined) {
      hash = definitionHash(definition, kind);
      this.#hashes.set(definition, hash);
    }
    return hash;
  }

  /** Whether the server's current instructions are the pinned ones. */
  instructionsMatch(server: string, instructions: string | undefined): boolean {
    const pins = this.#lock?.servers[server];
    if (pins === undefined) return false;
    const now = instructions === undefined ? null : definitionHash({ instructions }, 'instructions');
    return (pins.instructions?.hash ?? null) === now;
  }

  /** Whether agents may see and use this definition of this server. */
  admits(server: string, kind: GatedKind, definition: Json, instructions: string | undefined): boolean {
    const pins = this.#lock?.servers[server];
    if (pins === undefined) return false;
    if (!this.instructionsMatch(server, instructions)) return false;
    const pinned = pins[sectionOf[kind]][keyOf[kind](definition)];
    return pinned !== undefined && pinned.hash === this.#hash(kind, definition);
  }

  /** The pins of one server, as last loaded. */
  pinsOf(server: string) {
    return this.#lock?.servers[server];
  }
}
