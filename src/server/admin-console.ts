import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { listEvents } from '../audit/index.js';
import type { Clock } from '../core/clock.js';
import { CustosError } from '../core/errors.js';
import type { AgentService } from '../identity/index.js';
import type { Store } from '../store/index.js';
import { actorOf } from './actor.js';

export interface ConsoleDataOptions {
  store: Store;
  agents: AgentService;
  clock: Clock;
  /** The tools an upstream server offers as last listed, or undefined for an unknown server. */
  serverTools(
    server: string,
  ): ReadonlyArray<{ name: string; description?: string; annotations?: object }> | undefined;
  /**
   * Other things the live stream watches, by name: each is read on every poll, and when what
   * it returns changes, the stream sends a "change" event naming it (for example the ids of
   * pending approvals, so a new request shows in every open console at once).
   */
  watch?: Readonly<Record<string, () => Promise<unknown>>>;
  /** How often the live stream looks for new audit events. */
  pollMs?: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs?: number;
}

const minute = 60_000;

/**
 * What the console's overview and live updates read: GET /api/v1/overview (agents by status,
 * governed requests and denials per minute over the last hour) and GET /api/v1/stream, a
 * server-sent event stream of new audit events. Approval decisions are audit events too, so
 * the console refreshes its approval inbox from the same stream.
 */
export function consoleDataRoutes(options: ConsoleDataOptions): (api: FastifyInstance) => void {
  const { store, agents, clock } = options;
  const pollMs = options.pollMs ?? 1000;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const streams = new Set<ServerResponse>();

  return (api) => {
    // Streams never end on their own; end them so that closing Custos does not wait on them.
    api.addHook('preClose', async () => {
      for (const stream of streams) stream.end();
      streams.clear();
    });

    api.get('/overview', async (request) => {
      actorOf(request);
      const list = await agents.list({});
      const byStatus = { active: 0, suspended: 0, offboarded: 0 };
      for (const a of list) byStatus[a.status] += 1;
      const now = clock.now();
      const since = now - (now % minute) - 59 * minute;
      // A literal, not a parameter: PostgreSQL matches the GROUP BY to the selected expression by its text.
      const bucket = sql<number>`(time - (time % ${sql.lit(minute)}))`;
      const rows = await store.db
        .selectFrom('audit_events')
        .select([
          bucket.as('minute'),
          sql<number>`count(*)`.as('calls'),
          sql<number>`sum(case when effect = 'deny' then 1 else 0 end)`.as('denied'),
        ])
        .where('time', '>=', since)
        .groupBy(bucket)
        .execute();
      const counts = new Map(rows.map((r) => [Number(r.minute), r]));
      const perMinute = [];
      for (let t = since; t <= now; t += minute) {
        const row = counts.get(t);
        perMinute.push({ minute: t, calls: Number(row?.calls ?? 0), denied: Number(row?.denied ?? 0) });
      }
      return {
        agents: { total: list.length, ...byStatus },
        perMinute,
        lastHour: {
          calls: perMinute.reduce((n, m) => n + m.calls, 0),
          denied: perMinute.reduce((n, m) => n + m.denied, 0),
        },
      };
    });

    api.get('/servers/:name/tools', async (request) => {
      actorOf(request);
      const { name } = request.params as { name: string };
      const tools = options.serverTools(name);
      if (tools === undefined) throw new CustosError('not_found', `no server ${name}`);
      return {
        tools: tools.map((t) => ({
          name: t.name,
          description: t.description ?? null,
          annotations: t.annotations ?? {},
        })),
      };
    });

    api.get('/stream', async (request, reply) => {
      actorOf(request);
      const latest = await store.db
        .selectFrom('audit_events')
        .select(sql<number | null>`max(seq)`.as('seq'))
        .executeTakeFirst();
      let cursor = Number(latest?.seq ?? 0);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        connection: 'keep-alive',
      });
      raw.write(`event: ready\ndata: ${JSON.stringify({ seq: cursor })}\n\n`);
      streams.add(raw);
      const watched = Object.entries(options.watch ?? {});
      const last = new Map<string, string>();
      for (const [topic, read] of watched) last.set(topic, JSON.stringify(await read().catch(() => null)));
      let busy = false;
      const poll = setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
          for (const [topic, read] of watched) {
            const now = JSON.stringify(await read());
            if (now !== last.get(topic)) {
              last.set(topic, now);
              raw.write(`event: change\ndata: ${JSON.stringify({ topic })}\n\n`);
            }
          }
          const events = await listEvents(store, { afterSeq: cursor, limit: 200 });
          for (const event of events) {
            cursor = Math.max(cursor, event.seq);
            // The stream carries the record without content; the console fetches an event to see its arguments.
            const { arguments: _a, reasoning: _r, result: _x, ...summary } = event;
            raw.write(`id: ${event.seq}\nevent: audit\ndata: ${JSON.stringify(summary)}\n\n`);
          }
        } catch (error) {
          request.log.warn({ err: error }, 'console stream could not read the audit log');
        } finally {
          busy = false;
        }
      }, pollMs);
      const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), heartbeatMs);
      raw.on('close', () => {
        clearInterval(poll);
        clearInterval(heartbeat);
        streams.delete(raw);
      });
    });
  };
}
