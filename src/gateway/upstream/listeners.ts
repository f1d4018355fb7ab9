import type { Unsubscribe, UpstreamLogger } from './types.js';

/** A set of listeners where one throwing listener neither stops the others nor the emitter. */
export class Listeners<T> {
  readonly #listeners = new Set<(value: T) => void>();

  constructor(
    private readonly logger: UpstreamLogger,
    private readonly what: string,
  ) {}

  add(listener: (value: T) => void): Unsubscribe {
    // Wrap so the same function may subscribe twice and unsubscribe each independently.
    const entry = (value: T) => listener(value);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(value: T): void {
    for (const listener of this.#listeners) {
      try {
        listener(value);
      } catch (error) {
        this.logger.error({ err: error, event: this.what }, 'upstream event listener failed');
      }
    }
  }
}
