import type { DetectAction, DetectConfig } from '../core/config.js';

/** The inline detectors, by the name findings, incidents and playbooks use. */
export type DetectorName = 'ceiling' | 'anomaly' | 'denials' | 'loop' | 'first_use' | 'bytes' | 'hours';

export const detectorNames: readonly DetectorName[] = [
  'ceiling',
  'anomaly',
  'denials',
  'loop',
  'first_use',
  'bytes',
  'hours',
];

/** What a detector saw: which one, what it asks for, and when the behaviour began. */
export interface Finding {
  readonly detector: DetectorName;
  readonly action: Exclude<DetectAction, 'off'>;
  /** The state that fired: the agent's, its task's, or the agent's use of one tool. */
  readonly scope: 'agent' | 'task' | 'tool';
  /** Best estimate of when the behaviour began (ms). */
  readonly onsetAt: number;
  readonly detail: string;
}

/** One call as the detectors see it. */
export interface Observation {
  readonly time: number;
  readonly server: string;
  readonly target: string;
  readonly argsHash: string;
  readonly bytes: number;
}

/** Settings of the rate and sequence detectors after per-agent overrides. */
export type DetectorSettings = Pick<DetectConfig, 'ceiling' | 'anomaly' | 'denials' | 'loop' | 'bytes'>;

/**
 * Exponentially weighted rate of events (per second) with time constant `tau` seconds,
 * updated in O(1) per event whatever the spacing between events.
 */
function decay(value: number, elapsedMs: number, tau: number): number {
  return elapsedMs <= 0 ? value : value * Math.exp(-elapsedMs / 1000 / tau);
}

/**
 * The detector state of one agent, task or (agent, tool): a token bucket, short and
 * baseline rates of calls and of bytes, the current run of identical calls and a ring
 * of recent denial times. Every update is O(1) with no allocation.
 */
export class MeterState {
  // token bucket
  private tokens: number;
  private bucketAt = 0;
  private fullAt = 0;
  // call rate: short term and baseline
  private short = 0;
  private baseline = 0;
  private rateAt = 0;
  private elevatedSince = -1;
  // bytes out
  private bytesShort = 0;
  private bytesBaseline = 0;
  // loop
  private loopServer = '';
  private loopTarget = '';
  private loopHash = '';
  private loopCount = 0;
  private loopStart = 0;
  // denials
  private readonly denials: Float64Array;
  private denialNext = 0;
  private denialSeen = 0;
  /** Time of the last call seen (ms), for pruning idle state. */
  lastSeen = 0;

  constructor(readonly settings: DetectorSettings) {
    this.tokens = settings.ceiling.burst;
    this.denials = new Float64Array(Math.max(1, settings.denials.count));
  }

  /** Count one call; the first finding that asks for more than the others wins. */
  observe(call: Observation): Finding | undefined {
    const s = this.settings;
    const now = call.time;
    this.lastSeen = now;
    let found: Finding | undefined;

    if (s.ceiling.action !== 'off') {
      const refill = this.bucketAt === 0 ? s.ceiling.burst : ((now - this.bucketAt) / 1000) * s.ceiling.rate;
      this.tokens = Math.min(s.ceiling.burst, this.tokens + refill);
      this.bucketAt = now;
      if (this.tokens >= s.ceiling.burst) this.fullAt = now;
      if (this.tokens >= 1) this.tokens -= 1;
      else
        found = pick(found, {
          detector: 'ceiling',
          action: s.ceiling.action,
          scope: 'agent',
          onsetAt: this.fullAt,
          detail: `more than ${s.ceiling.rate} calls/s (burst ${s.ceiling.burst})`,
        });
    }

    const elapsed = this.rateAt === 0 ? 0 : now - this.rateAt;
    this.rateAt = now;
    const a = s.anomaly;
    if (a.action !== 'off') {
      const longTau = a.baselineMinutes * 60;
      this.short = decay(this.short, elapsed, a.shortSeconds) + 1 / a.shortSeconds;
      this.baseline = decay(this.baseline, elapsed, longTau) + 1 / longTau;
      const threshold = Math.max(a.minRate, a.factor * this.baseline);
      if (this.short > threshold / 4) {
        if (this.elevatedSince < 0) this.elevatedSince = now;
      } else this.elevatedSince = -1;
      if (this.short > threshold)
        found = pick(found, {
          detector: 'anomaly',
          action: a.action,
          scope: 'agent',
          onsetAt: this.elevatedSince < 0 ? now : this.elevatedSince,
          detail: `${this.short.toFixed(1)} calls/s against a baseline of ${this.baseline.toFixed(2)} (threshold ${threshold.toFixed(1)})`,
        });
    }

    const b = s.bytes;
    if (b.action !== 'off' && (call.bytes > 0 || this.bytesShort > 0)) {
      const longTau = b.baselineMinutes * 60;
      this.bytesShort = decay(this.bytesShort, elapsed, b.shortSeconds) + call.bytes / b.shortSeconds;
      this.bytesBaseline = decay(this.bytesBaseline, elapsed, longTau) + call.bytes / longTau;
      const threshold = Math.max(b.minBytesPerSecond, b.factor * this.bytesBaseline);
      if (this.bytesShort > threshold)
        found = pick(found, {
          detector: 'bytes',
          action: b.action,
          scope: 'agent',
          onsetAt: now,
          detail: `${Math.round(this.bytesShort)} bytes/s sent out (threshold ${Math.round(threshold)})`,
        });
    }

    if (s.loop.action !== 'off') {
      const same =
        call.argsHash === this.loopHash &&
        call.target === this.loopTarget &&
        call.server === this.loopServer &&
        now - this.loopStart <= s.loop.windowSeconds * 1000;
      if (same) this.loopCount += 1;
      else {
        this.loopServer = call.server;
        this.loopTarget = call.target;
        this.loopHash = call.argsHash;
        this.loopCount = 1;
        this.loopStart = now;
      }
      if (this.loopCount >= s.loop.count)
        found = pick(found, {
          detector: 'loop',
          action: s.loop.action,
          scope: 'agent',
          onsetAt: this.loopStart,
          detail: `${call.server}.${call.target} called ${this.loopCount} times in a row with the same arguments`,
        });
    }
    return found;
  }

  /** Count one denied call (not the detectors' own throttling or containment). */
  observeDenial(time: number): Finding | undefined {
    const d = this.settings.denials;
    if (d.action === 'off') return undefined;
    const ring = this.denials;
    ring[this.denialNext] = time;
    this.denialNext = (this.denialNext + 1) % ring.length;
    this.denialSeen += 1;
    // The slot after the newest is the oldest of the last `count` denials.
    const oldest = ring[this.denialNext] ?? 0;
    if (this.denialSeen >= ring.length && time - oldest <= d.windowSeconds * 1000) {
      return {
        detector: 'denials',
        action: d.action,
        scope: 'agent',
        onsetAt: oldest,
        detail: `${ring.length} calls denied within ${Math.round((time - oldest) / 1000)} s`,
      };
    }
    return undefined;
  }

  /** The numbers a snapshot shows. */
  describe(): Record<string, number> {
    return {
      tokens: Math.round(this.tokens * 100) / 100,
      shortRate: Math.round(this.short * 100) / 100,
      baselineRate: Math.round(this.baseline * 1000) / 1000,
      bytesPerSecond: Math.round(this.bytesShort),
      repeatedCalls: this.loopCount,
      denials: this.denialSeen,
    };
  }
}

const severity: Record<Finding['action'], number> = { alert: 1, throttle: 2, quarantine: 3 };

function pick(current: Finding | undefined, next: Finding): Finding {
  return current === undefined || severity[next.action] > severity[current.action] ? next : current;
}

/** Whether a finding asks for more than another (quarantine > throttle > alert). */
export function stronger(a: Finding, b: Finding | undefined): boolean {
  return b === undefined || severity[a.action] > severity[b.action];
}

/**
 * Working hours in a time zone, checked in O(1): the local day and minute are computed
 * with Intl at most once per wall-clock minute and cached.
 */
export class WorkingHours {
  private minuteStart = -1;
  private outside = false;
  private readonly format: Intl.DateTimeFormat;
  private readonly start: number;
  private readonly end: number;
  private readonly days: ReadonlySet<number>;

  constructor(settings: NonNullable<DetectConfig['hours']>) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: settings.timezone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    this.start = minutes(settings.start);
    this.end = minutes(settings.end);
    this.days = new Set(settings.days);
  }

  /** Whether `time` falls outside the configured days and hours. */
  isOutside(time: number): boolean {
    const minuteStart = time - (time % 60_000);
    if (minuteStart !== this.minuteStart) {
      this.minuteStart = minuteStart;
      const parts = this.format.formatToParts(time);
      const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
      const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(get('weekday'));
      const minute = Number(get('hour')) * 60 + Number(get('minute'));
      const inHours =
        this.start <= this.end
          ? minute >= this.start && minute < this.end
          : minute >= this.start || minute < this.end;
      this.outside = !this.days.has(day) || !inHours;
    }
    return this.outside;
  }
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}
