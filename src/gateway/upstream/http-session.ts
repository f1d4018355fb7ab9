import { StringDecoder } from 'node:string_decoder';
import type { Dispatcher, Pool } from 'undici';
import { CustosError } from '../../core/errors.js';
import { isJson } from './catalog.js';
import { cancelled, type RequestContext, refusedCredential, timedOut, unavailable } from './errors.js';
import { type Json, UpstreamRpcError } from './types.js';

/** What a request on a session needs besides its method and params. */
export interface SessionRequestOptions {
  context: RequestContext;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Notifications the upstream sent on this request's response stream, in arrival order. */
  onNotification: (method: string, params: Json | undefined) => void;
  /** Credential headers for this request only (the inject stage's); they override configured ones. */
  headers?: Readonly<Record<string, string>> | undefined;
}

/** Requests on an established connection that bypass the SDK client (see HttpSession). */
export interface DirectRequests {
  request(method: string, params: Json | undefined, options: SessionRequestOptions): Promise<Json>;
  /** Fail the requests in flight; the connection is gone. */
  close(): void;
}

export interface HttpSessionOptions {
  pool: Pool;
  /** Path and query of the MCP endpoint. */
  path: string;
  /** The configured headers; sent on every request. */
  headers: Readonly<Record<string, string>>;
  sessionId: string | undefined;
  protocolVersion: string;
  /** Next request id; shared by the upstream's sessions so ids never repeat. */
  nextId: () => string;
  /** The server forgot the session (HTTP 404) or the link failed: reconnect. */
  lost: (reason: string) => void;
  /**
   * The shared credential headers from the vault, looked up for a request that brings none of
   * its own (one Custos sends on its own, such as logging/setLevel), so nothing goes out bare.
   */
  credentials?: (() => Promise<Record<string, string> | undefined>) | undefined;
}

/**
 * A 2025-11-25 Streamable HTTP session (spec: basic/transports, Streamable HTTP) that the SDK
 * client negotiated, used directly for requests: one POST per request on a keep-alive undici
 * Pool, the answer read as JSON or as an SSE stream. The SDK client costs about 700 µs of CPU
 * per request (fetch, web streams, zod on every message); this path costs a few tens. Results
 * pass through unvalidated beyond JSON-RPC framing, as the contract says.
 */
export class HttpSession implements DirectRequests {
  readonly #options: HttpSessionOptions;
  readonly #headers: Record<string, string>;
  readonly #inFlight = new Set<SessionExchange>();
  #closed = false;

  constructor(options: HttpSessionOptions) {
    this.#options = options;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers)) headers[name.toLowerCase()] = value;
    headers['content-type'] = 'application/json';
    headers.accept = 'application/json, text/event-stream';
    headers['mcp-protocol-version'] = options.protocolVersion;
    if (options.sessionId !== undefined) headers['mcp-session-id'] = options.sessionId;
    this.#headers = headers;
  }

  request(method: string, params: Json | undefined, options: SessionRequestOptions): Promise<Json> {
    const credentials = this.#options.credentials;
    if (options.headers !== undefined || credentials === undefined)
      return this.#send(method, params, options);
    return credentials().then((headers) =>
      this.#send(method, params, headers === undefined ? options : { ...options, headers }),
    );
  }

  #send(method: string, params: Json | undefined, options: SessionRequestOptions): Promise<Json> {
    if (this.#closed) return Promise.reject(unavailable(options.context.server, 'connection closed'));
    const id = this.#options.nextId();
    const body = JSON.stringify(
      params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
    );
    return new Promise<Json>((resolve, reject) => {
      const exchange = new SessionExchange(this, id, options, resolve, reject);
      this.#inFlight.add(exchange);
      exchange.start(body);
    });
  }

  close(): void {
    this.#closed = true;
    for (const exchange of this.#inFlight) exchange.connectionClosed();
    this.#inFlight.clear();
  }

  /** @internal */
  dispatch(
    body: string,
    handler: Dispatcher.DispatchHandler,
    extra?: Readonly<Record<string, string>>,
  ): void {
    let headers = this.#headers;
    if (extra !== undefined) {
      headers = { ...headers };
      for (const [name, value] of Object.entries(extra)) headers[name.toLowerCase()] = value;
    }
    this.#options.pool.dispatch({ path: this.#options.path, method: 'POST', headers, body }, handler);
  }

  /**
   * Send a notification or a response, fire and forget, with the credential headers of the
   * request it concerns (a cancellation must reach an upstream that checks every request).
   * @internal
   */
  post(message: Json, extra?: Readonly<Record<string, string>>): void {
    try {
      this.dispatch(JSON.stringify(message), ignoreAnswer, extra);
    } catch {
      // Best effort: the request it concerns has failed already.
    }
  }

  /** @internal */
  finished(exchange: SessionExchange): void {
    this.#inFlight.delete(exchange);
  }

  /** @internal */
  lost(reason: string): void {
    if (this.#closed) return;
    this.#options.lost(reason);
  }
}

/** The answer to a notification or a response (202, no body) matters to nobody. */
const ignoreAnswer: Dispatcher.DispatchHandler = {
  onRequestStart() {},
  onResponseStart() {},
  onResponseData() {},
  onResponseEnd() {},
  onResponseError() {},
};

type Framing = 'json' | 'sse';

/** One request and its answer; the undici dispatch handler for that POST. */
class SessionExchange implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #settled = false;
  /** Set when we abort the HTTP request ourselves; its error is then expected. */
  #abortReason: Error | undefined;
  #status = 0;
  #framing: Framing | undefined;
  #chunks: Buffer[] = [];
  #sse: SseReader | undefined;

  constructor(
    readonly session: HttpSession,
    readonly id: string,
    readonly options: SessionRequestOptions,
    readonly resolve: (result: Json) => void,
    readonly reject: (error: Error) => void,
  ) {}

  start(body: string): void {
    const signal = this.options.signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.#cancel('cancelled');
        return;
      }
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    this.#timer = setTimeout(this.#onTimeout, this.options.timeoutMs);
    try {
      this.session.dispatch(body, this, this.options.headers);
    } catch (error) {
      this.#fail(unreachable(this.options.context, error));
    }
  }

  connectionClosed(): void {
    const { server, method } = this.options.context;
    this.#abort(
      unavailableFor(
        this.options.context,
        `upstream "${server}" closed the connection before answering ${method}`,
        {
          reason: 'connection_closed',
        },
      ),
    );
  }

  readonly #onAbort = (): void => this.#cancel('cancelled');
  readonly #onTimeout = (): void => this.#cancel('timeout');

  /** Stop waiting, tell the upstream to stop working (spec: utilities/cancellation). */
  #cancel(why: 'cancelled' | 'timeout'): void {
    if (this.#settled) return;
    const reason =
      why === 'timeout'
        ? `timed out after ${this.options.timeoutMs} ms`
        : describeReason(this.options.signal?.reason);
    this.session.post(
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: this.id, reason } },
      this.options.headers,
    );
    const error = why === 'timeout' ? timedOut(this.options.context) : cancelled(this.options.context);
    this.#abort(error);
  }

  #abort(error: Error): void {
    if (this.#settled) return;
    this.#abortReason = error;
    this.#fail(error);
    this.#controller?.abort(error);
  }

  #succeed(result: Json): void {
    if (this.#settled) return;
    this.#cleanup();
    this.resolve(result);
  }

  #fail(error: Error): void {
    if (this.#settled) return;
    this.#cleanup();
    this.reject(error);
  }

  #cleanup(): void {
    this.#settled = true;
    clearTimeout(this.#timer);
    this.options.signal?.removeEventListener('abort', this.#onAbort);
    this.session.finished(this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#status = statusCode;
    if (statusCode === 404) {
      // The server forgot the session (restart or expiry): a new one is needed.
      this.#abort(this.#httpError(statusCode));
      this.session.lost('the upstream no longer knows the session (HTTP 404)');
      return;
    }
    if (statusCode < 200 || statusCode >= 300) {
      const challenge = headers['www-authenticate'];
      const refused =
        this.options.headers === undefined
          ? undefined
          : refusedCredential(
              this.options.context.server,
              this.options.context.method,
              statusCode,
              Array.isArray(challenge) ? challenge.join(', ') : challenge,
            );
      this.#abort(refused ?? this.#httpError(statusCode));
      return;
    }
    const type = headers['content-type'];
    const contentType = (Array.isArray(type) ? type[0] : type) ?? '';
    if (contentType.includes('text/event-stream')) {
      this.#framing = 'sse';
      this.#sse = new SseReader((data) => this.#message(data));
    } else if (contentType.includes('application/json')) {
      this.#framing = 'json';
    } else {
      this.#abort(this.#invalid(`content type "${contentType}"`));
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#framing === 'json') this.#chunks.push(chunk);
    else this.#sse?.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#framing === 'json') {
      const text =
        this.#chunks.length === 1
          ? (this.#chunks[0] as Buffer).toString('utf8')
          : Buffer.concat(this.#chunks).toString('utf8');
      this.#chunks = [];
      this.#message(text);
    } else {
      this.#sse?.end();
    }
    if (!this.#settled) {
      const { server, method } = this.options.context;
      this.#fail(
        unavailableFor(
          this.options.context,
          `upstream "${server}" ended the answer to ${method} without a result`,
          {
            reason: 'connection_closed',
          },
        ),
      );
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#settled || this.#abortReason !== undefined) return;
    // The link failed (refused, reset): the server may have restarted, so reconnect.
    this.#fail(unreachable(this.options.context, error));
    this.session.lost(`request failed: ${error.message}`);
  }

  /** One JSON-RPC message: the body of a JSON answer or the data of one SSE event. */
  #message(text: string): void {
    if (this.#settled) return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      this.#abort(this.#invalid('malformed JSON', error));
      return;
    }
    if (!isJson(message) || message.jsonrpc !== '2.0') {
      this.#abort(this.#invalid('not a JSON-RPC 2.0 message'));
      return;
    }
    const method = message.method;
    if (typeof method === 'string') {
      const params = isJson(message.params) ? message.params : undefined;
      if (message.id === undefined) this.#notification(method, params);
      else this.#serverRequest(message.id, method);
      return;
    }
    if (message.id !== this.id) return; // Not ours: a response to nothing we asked on this stream.
    if (isJson(message.error)) {
      const { code, message: text, data } = message.error;
      this.#fail(
        new UpstreamRpcError(
          typeof code === 'number' ? code : -32603,
          typeof text === 'string' ? text : 'upstream error',
          data,
        ),
      );
    } else if (isJson(message.result)) {
      this.#succeed(message.result);
    } else {
      this.#abort(this.#invalid('a response with neither an object result nor an error'));
    }
  }

  #notification(method: string, params: Json | undefined): void {
    try {
      this.options.onNotification(method, params);
    } catch {
      // A listener's failure is not the upstream's; the supervisor logs what it routes.
    }
  }

  /** Custos declares no client capabilities, so it answers ping and refuses the rest. */
  #serverRequest(id: unknown, method: string): void {
    if (typeof id !== 'string' && typeof id !== 'number') return;
    this.session.post(
      method === 'ping'
        ? { jsonrpc: '2.0', id, result: {} }
        : { jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${method}` } },
      this.options.headers,
    );
  }

  #httpError(status: number): Error {
    const { server, method } = this.options.context;
    return unavailableFor(this.options.context, `upstream "${server}" could not be reached for ${method}`, {
      reason: 'unreachable',
      httpStatus: status,
    });
  }

  #invalid(what: string, cause?: unknown): Error {
    const { server, method } = this.options.context;
    return new CustosError('upstream_error', `upstream "${server}" sent an invalid answer to ${method}`, {
      detail: { server, method, reason: 'invalid_result', what: `${what} (HTTP ${this.#status})` },
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

function unavailableFor(context: RequestContext, message: string, detail: Json): CustosError {
  return new CustosError('upstream_unavailable', message, {
    detail: { server: context.server, method: context.method, ...detail },
  });
}

function unreachable(context: RequestContext, cause: unknown): CustosError {
  const { server, method } = context;
  return new CustosError('upstream_unavailable', `upstream "${server}" could not be reached for ${method}`, {
    detail: { server, method, reason: 'unreachable' },
    cause,
  });
}

function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return reason === undefined ? 'cancelled' : String(reason);
}

/**
 * An incremental reader of an SSE stream (HTML Living Standard, server-sent events, parsing):
 * it hands over the data of each `message` event as it completes. Fields other than data and
 * event are ignored: Custos does not resume POST streams.
 */
class SseReader {
  readonly #decoder = new StringDecoder('utf8');
  #buffer = '';
  #data: string[] = [];
  #event = '';

  constructor(readonly onEvent: (data: string) => void) {}

  push(chunk: Buffer): void {
    this.#buffer += this.#decoder.write(chunk);
    this.#drain();
  }

  end(): void {
    this.#buffer += this.#decoder.end();
    this.#drain();
    this.#line(this.#buffer);
    this.#buffer = '';
    this.#line('');
  }

  #drain(): void {
    let start = 0;
    for (;;) {
      const newline = this.#buffer.indexOf('\n', start);
      if (newline === -1) break;
      const end = newline > start && this.#buffer.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      this.#line(this.#buffer.slice(start, end));
      start = newline + 1;
    }
    if (start > 0) this.#buffer = this.#buffer.slice(start);
  }

  #line(line: string): void {
    if (line === '') {
      // Events without data (the priming event a resumable stream starts with) carry no message.
      const data = this.#data.length === 1 ? (this.#data[0] as string) : this.#data.join('\n');
      if (data !== '' && (this.#event === '' || this.#event === 'message')) this.onEvent(data);
      this.#data = [];
      this.#event = '';
      return;
    }
    if (line.charCodeAt(0) === 58) return; // a comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
  }
}
