import { closeSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { CustosError, errorMessage } from '../core/errors.js';
import type { AuditEvent } from './events.js';
import { FileOcsfSink, type OcsfSink, type OcsfSinkStats, toOcsf, WebhookOcsfSink } from './ocsf.js';
import { OtlpTraceExporter } from './otlp.js';

/** The `exports` section of custos.yaml, as validated by the configuration schema. */
export interface ExportsConfig {
  readonly ocsf?:
    | {
        readonly file?: string | undefined;
        readonly webhook?:
          | { readonly url: string; readonly headers: Readonly<Record<string, string>> }
          | undefined;
        readonly includeContent: boolean;
      }
    | undefined;
  readonly otlp?:
    | {
        readonly endpoint: string;
        readonly headers: Readonly<Record<string, string>>;
        readonly includeContent: boolean;
        readonly serviceName: string;
      }
    | undefined;
}

export interface ExporterDeps {
  /** Where relative file paths in the configuration are resolved from. */
  baseDir: string;
  product: { name: string; version: string };
  /** Records or spans given up on, by exporter ("ocsf-file", "ocsf-webhook", "otlp"). */
  onDrop: (exporter: string, count: number, reason: string) => void;
  agentName?: (agentId: string) => string | undefined;
  /** Longest wait for undelivered records at close (default 3000 ms); the rest are counted as dropped. */
  closeTimeoutMs?: number;
}

/** The configured exporters behind one listener for the audit recorder. */
export interface AuditExporters {
  /** Hand a durable batch to every exporter; never throws, never waits. */
  write(events: readonly AuditEvent[]): void;
  /** Delivered, dropped and pending counts per exporter. */
  stats(): Record<string, OcsfSinkStats>;
  /** Deliver what is queued (or give up on it) and release the destinations. */
  close(): Promise<void>;
}

/** Start the OCSF sinks and the OTLP trace exporter the configuration asks for (possibly none). */
export function startExporters(config: ExportsConfig, deps: ExporterDeps): AuditExporters {
  const sinks = new Map<string, OcsfSink>();
  const ocsf = config.ocsf;
  if (ocsf?.file !== undefined) {
    const path = resolve(deps.baseDir, ocsf.file);
    // A path that cannot be written stops the start, rather than dropping every record later.
    try {
      closeSync(openSync(path, 'a'));
    } catch (error) {
      throw new CustosError(
        'config_invalid',
        `exports.ocsf.file: cannot append to ${path}: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
    sinks.set(
      'ocsf-file',
      new FileOcsfSink(path, {
        onDrop: (n, why) => deps.onDrop('ocsf-file', n, why),
      }),
    );
  }
  if (ocsf?.webhook !== undefined) {
    sinks.set(
      'ocsf-webhook',
      new WebhookOcsfSink({
        url: ocsf.webhook.url,
        headers: { ...ocsf.webhook.headers },
        onDrop: (n, why) => deps.onDrop('ocsf-webhook', n, why),
      }),
    );
  }
  const otlp =
    config.otlp === undefined
      ? undefined
      : new OtlpTraceExporter({
          endpoint: config.otlp.endpoint,
          headers: { ...config.otlp.headers },
          includeContent: config.otlp.includeContent,
          serviceName: config.otlp.serviceName,
          serviceVersion: deps.product.version,
          onDrop: (n, why) => deps.onDrop('otlp', n, why),
          ...(deps.agentName === undefined ? {} : { agentName: deps.agentName }),
        });
  const includeContent = ocsf?.includeContent === true;

  const exporters: AuditExporters = {
    write(events) {
      if (sinks.size > 0) {
        for (const event of events) {
          const record = toOcsf(event, deps.product, { includeContent });
          for (const sink of sinks.values()) sink.write(record);
        }
      }
      otlp?.write(events);
    },
    stats() {
      const out: Record<string, OcsfSinkStats> = {};
      for (const [name, sink] of sinks) out[name] = sink.stats();
      if (otlp !== undefined) out.otlp = otlp.stats();
      return out;
    },
    async close() {
      // Let batches the recorder handed over on the last turn arrive first.
      await new Promise((r) => setImmediate(r));
      // A dead destination (retrying with backoff) must not hold the shutdown for long.
      let timer: NodeJS.Timeout | undefined;
      const closed = Promise.all([...[...sinks.values()].map((s) => s.close()), otlp?.close()]).then(
        () => true,
      );
      const gaveUp = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), deps.closeTimeoutMs ?? 3000);
        timer.unref();
      });
      const done = await Promise.race([closed, gaveUp]);
      clearTimeout(timer);
      if (!done) {
        for (const [name, stats] of Object.entries(exporters.stats()))
          if (stats.pending > 0) deps.onDrop(name, stats.pending, 'not delivered before shutdown');
      }
    },
  };
  return exporters;
}
