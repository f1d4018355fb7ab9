import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { AuditEvent } from './events.js';
import type { DropReporter, OcsfSinkStats } from './ocsf.js';

/**
 * OpenTelemetry traces of governed calls, sent over OTLP/HTTP (JSON) and named after the GenAI
 * semantic conventions: each call is an `invoke_agent {agent}` span (the agent acting through
 * Custos) and a tools/call also has an `execute_tool {tool}` child span. When the agent sent a W3C
 * `traceparent`, the spans join its trace under its span; otherwise each call starts a trace, and
 * `gen_ai.conversation.id` (the task id) groups a task's calls.
 */

export interface OtlpOptions {
  /** The OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. */
  endpoint: string;
  headers?: Record<string, string>;
  /** Put arguments, results and reasoning on the spans (gen_ai.tool.call.arguments and .result). */
  includeContent?: boolean;
  /** service.name of the exported resource (default "custos"). */
  serviceName?: string;
  serviceVersion?: string;
  /** Longest wait before a partial batch of spans is sent (default 1000 ms). */
  flushIntervalMs?: number;
  /** Spans held at most; calls beyond it are dropped and counted (default 2048). */
  maxQueue?: number;
  /** The agent's name for gen_ai.agent.name; the agent id when absent. */
  agentName?: (agentId: string) => string | undefined;
  onDrop?: DropReporter;
}

/** Attribute names used here, from the OpenTelemetry GenAI and MCP semantic conventions. */
export const GenAi = {
  operationName: 'gen_ai.operation.name',
  agentId: 'gen_ai.agent.id',
  agentName: 'gen_ai.agent.name',
  conversationId: 'gen_ai.conversation.id',
  toolName: 'gen_ai.tool.name',
  toolType: 'gen_ai.tool.type',
  toolCallArguments: 'gen_ai.tool.call.arguments',
  toolCallResult: 'gen_ai.tool.call.result',
  mcpMethodName: 'mcp.method.name',
  errorType: 'error.type',
} as const;

/**
 * Counts what reached the collector and what did not; a failed export is dropped (the OTLP
 * exporter already retries transient failures) and reported, never thrown at the gateway.
 */
class CountingExporter implements SpanExporter {
  delivered = 0;
  dropped = 0;
  inFlight = 0;
  lastError: string | null = null;

  constructor(
    private readonly inner: SpanExporter,
    private readonly onDrop: DropReporter,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inFlight += spans.length;
    this.inner.export(spans, (result) => {
      this.inFlight -= spans.length;
      if (result.code === ExportResultCode.SUCCESS) this.delivered += spans.length;
      else {
        this.lastError = result.error?.message ?? 'export failed';
        this.drop(spans.length, `otlp: ${this.lastError}`);
      }
      done(result);
    });
  }

  drop(count: number, reason: string): void {
    this.dropped += count;
    this.onDrop(count, reason);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The agent's span from the event's traceparent, validated by the gateway (W3C version 00). */
function remoteParentOf(
  event: AuditEvent,
): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const parts = event.traceparent?.split('-');
  if (parts?.length !== 4) return undefined;
  const [, traceId, spanId, flags] = parts as [string, string, string, string];
  // Bit 0 of trace-flags is "sampled" (W3C Trace Context, section 3.2.2.5).
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

function json(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Sends each durable audit event as spans; never blocks or throws at the caller. */
export class OtlpTraceExporter {
  readonly #provider: TracerProvider;
  readonly #tracer: ReturnType<TracerProvider['getTracer']>;
  readonly #exporter: CountingExporter;
  readonly #options: OtlpOptions;
  readonly #maxQueue: number;
  #started = 0;
  #closed = false;

  constructor(options: OtlpOptions) {
    this.#options = options;
    this.#maxQueue = options.maxQueue ?? 2048;
    this.#exporter = new CountingExporter(
      new OTLPTraceExporter({ url: options.endpoint, headers: { ...options.headers } }),
      options.onDrop ?? (() => {}),
    );
    this.#provider = new TracerProvider({
      // Every governed call is exported: the trace is part of the record, not a sample.
      sampler: new AlwaysOnSampler(),
      resource: resourceFromAttributes({
        'service.name': options.serviceName ?? 'custos',
        ...(options.serviceVersion === undefined ? {} : { 'service.version': options.serviceVersion }),
      }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: this.#exporter,
          scheduledDelayMillis: options.flushIntervalMs ?? 1000,
          // Above our own bound, so the processor never drops silently.
          maxQueueSize: this.#maxQueue * 2 + 2,
          maxExportBatchSize: 512,
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer(
      'custos.audit',
      ...(options.serviceVersion === undefined ? [] : [options.serviceVersion]),
    );
  }

  /**
   * Turn events into spans (queued for the next batch). A call whose traceparent says the agent's
   * trace is not sampled produces no spans: they would be orphans in a trace nobody keeps.
   */
  write(events: readonly AuditEvent[]): void {
    for (const event of events) {
      if (remoteParentOf(event)?.sampled === false) continue;
      const spans = event.method === 'tools/call' && event.target !== null ? 2 : 1;
      const queued = this.#started - this.#exporter.delivered - this.#exporter.dropped;
      if (this.#closed || queued + spans > this.#maxQueue) {
        this.#started += spans;
        this.#exporter.drop(spans, this.#closed ? 'otlp exporter closed' : 'otlp queue full');
        continue;
      }
      this.#started += spans;
      this.#spansOf(event);
    }
  }

  #spansOf(event: AuditEvent): void {
    const include = this.#options.includeContent === true;
    const agentId = event.agentId ?? 'unknown';
    const agentName =
      (event.agentId === null ? undefined : this.#options.agentName?.(event.agentId)) ?? agentId;
    const start = event.time;
    const end = event.time + event.latencyUs / 1000;
    const failed = event.outcome !== 'executed';
    const errorType = failed ? (event.errorCode ?? event.outcome) : undefined;

    let parent: Context = ROOT_CONTEXT;
    const remote = remoteParentOf(event);
    if (remote !== undefined) {
      parent = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: remote.traceId,
        spanId: remote.spanId,
        traceFlags: TraceFlags.SAMPLED,
        isRemote: true,
      });
    }
    const common: Attributes = {
      [GenAi.agentId]: agentId,
      [GenAi.agentName]: agentName,
      [GenAi.mcpMethodName]: event.method,
      'custos.event.id': event.id,
      'custos.event.seq': event.seq,
      'custos.decision': event.effect,
      'custos.policy_ids': [...event.policyIds],
      'custos.outcome': event.outcome,
    };
    if (event.taskId !== null) common[GenAi.conversationId] = event.taskId;
    const extra = event as AuditEvent & { approvalId?: unknown; policySetHash?: unknown };
    if (typeof extra.approvalId === 'string') common['custos.approval.id'] = extra.approvalId;
    if (typeof extra.policySetHash === 'string') common['custos.policy_set.hash'] = extra.policySetHash;
    if (event.owner !== null) common['custos.owner'] = event.owner;
    if (event.server !== null) common['custos.server'] = event.server;
    if (errorType !== undefined) common[GenAi.errorType] = errorType;

    const invoke = this.#tracer.startSpan(
      `invoke_agent ${agentName}`,
      {
        kind: SpanKind.SERVER,
        startTime: start,
        attributes: {
          ...common,
          [GenAi.operationName]: 'invoke_agent',
          ...(event.target === null ? {} : { 'custos.target': event.target }),
          ...(event.reasons.length === 0 ? {} : { 'custos.reasons': [...event.reasons] }),
          ...(include && event.reasoning !== undefined ? { 'custos.reasoning': json(event.reasoning) } : {}),
        },
      },
      parent,
    );
    if (failed)
      invoke.setStatus({ code: SpanStatusCode.ERROR, message: event.reasons[0] ?? errorType ?? '' });

    if (event.method === 'tools/call' && event.target !== null) {
      const tool = this.#tracer.startSpan(
        `execute_tool ${event.target}`,
        {
          // The GenAI conventions ask for INTERNAL on execute_tool (the MCP call beneath it would be the CLIENT span).
          kind: SpanKind.INTERNAL,
          startTime: start,
          attributes: {
            ...common,
            [GenAi.operationName]: 'execute_tool',
            [GenAi.toolName]: event.target,
            // An MCP tool runs outside the agent, on the server Custos calls.
            [GenAi.toolType]: 'extension',
            ...(include && event.arguments !== undefined
              ? { [GenAi.toolCallArguments]: json(event.arguments) }
              : {}),
            ...(include && event.result !== undefined ? { [GenAi.toolCallResult]: json(event.result) } : {}),
          },
        },
        trace.setSpan(parent, invoke),
      );
      if (failed)
        tool.setStatus({ code: SpanStatusCode.ERROR, message: event.reasons[0] ?? errorType ?? '' });
      tool.end(end);
    }
    invoke.end(end);
  }

  stats(): OcsfSinkStats {
    return {
      delivered: this.#exporter.delivered,
      dropped: this.#exporter.dropped,
      pending: this.#started - this.#exporter.delivered - this.#exporter.dropped,
      lastError: this.#exporter.lastError,
    };
  }

  /** Send what is queued now. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#provider.forceFlush().catch(() => {});
    await this.#provider.shutdown().catch(() => {});
  }
}
