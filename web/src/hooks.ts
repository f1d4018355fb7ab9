import { createContext, useCallback, useContext, useEffect, useState } from 'react';
import { ApiError, api } from './api';

/** A counter that moves whenever the live stream reports something new. */
export const LiveContext = createContext(0);

export function useLive(): number {
  return useContext(LiveContext);
}

/**
 * Subscribe to GET /api/v1/stream (server-sent events). Bursts are folded into one tick
 * every half second so a busy gateway does not refetch each screen per event.
 */
export function useLiveTicks(enabled: boolean): { tick: number; connected: boolean } {
  const [tick, setTick] = useState(0);
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    if (!enabled) return;
    const source = new EventSource('/api/v1/stream');
    let pending: ReturnType<typeof setTimeout> | undefined;
    const bump = () => {
      if (pending !== undefined) return;
      pending = setTimeout(() => {
        pending = undefined;
        setTick((t) => t + 1);
      }, 500);
    };
    source.addEventListener('ready', () => setConnected(true));
    source.addEventListener('audit', bump);
    source.addEventListener('change', bump);
    source.onerror = () => setConnected(false);
    // Approvals expire without an audit event; look again now and then.
    const every = setInterval(bump, 15_000);
    return () => {
      source.close();
      clearInterval(every);
      if (pending !== undefined) clearTimeout(pending);
    };
  }, [enabled]);
  return { tick, connected };
}

export interface Data<T> {
  data: T | undefined;
  error: ApiError | undefined;
  reload: () => void;
}

/** GET an admin API path; refetched when the path changes and on each live tick. */
export function useData<T>(path: string | null, options: { live?: boolean } = {}): Data<T> {
  const live = useLive();
  const tick = options.live === false ? 0 : live;
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [nonce, setNonce] = useState(0);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick and nonce are refetch triggers
  useEffect(() => {
    if (path === null) return;
    let stale = false;
    api<T>(path).then(
      (value) => {
        if (stale) return;
        setData(value);
        setError(undefined);
      },
      (e: unknown) => {
        if (stale) return;
        setError(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
      },
    );
    return () => {
      stale = true;
    };
  }, [path, tick, nonce]);
  return { data, error, reload };
}

/** The part of the URL after '#/', split on '/': the console's route. */
function readRoute(): string[] {
  return window.location.hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
}

export function useRoute(): string[] {
  const [route, setRoute] = useState(readRoute);
  useEffect(() => {
    const onChange = () => setRoute(readRoute());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
