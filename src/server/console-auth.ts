import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import { OidcLogin, type User, UserService } from '../identity/index.js';
import type { Actor, Role } from './actor.js';
import { sendError } from './errors.js';
import { LoginThrottle } from './login-throttle.js';

/** The console's session cookie: HttpOnly, SameSite=Strict, path /. */
export const sessionCookie = 'custos_session';
/**
 * Cookie-authenticated requests that change something must carry this header. A page on
 * another origin cannot set a custom header without a CORS preflight, which Custos never
 * grants, so with SameSite=Strict this stops cross-site request forgery (OWASP's
 * "custom request header" defence).
 */
export const csrfHeader = 'x-custos-csrf';

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface ConsoleAuthOptions {
  users: UserService;
  /** Mark the cookie Secure (when Custos is reached over https). */
  secureCookie: boolean;
  /** Single sign-on, when console.oidc is configured. */
  oidc?: OidcLogin;
  /** Custos's public base URL; the provider's redirect back is read against it. */
  baseUrl: string;
  /** Failed-login limits (a default LoginThrottle when absent). */
  throttle?: LoginThrottle;
}

/** The browser's handle on an open single sign-on login; Lax, because the provider's redirect back is cross-site. */
const oidcCookie = 'custos_oidc';
const oidcPath = '/api/v1/session/oidc';

/** The actor a user acts as in the admin API; its name is the user's email. */
export function actorFromUser(user: User): Actor {
  return {
    id: user.id,
    kind: 'user',
    name: user.email,
    roles: new Set<Role>(user.roles),
    groups: new Set(user.groups),
  };
}

function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

/** A changing request from the console must come from the console's own origin, with the CSRF header. */
function checkSameOrigin(request: FastifyRequest): void {
  if (request.headers[csrfHeader] !== '1') {
    throw new CustosError(
      'forbidden',
      `a console request that changes something needs the ${csrfHeader} header`,
    );
  }
  // Browsers send Origin on cross-origin and on most same-origin POSTs; when present it must be ours.
  const origin = request.headers.origin;
  if (origin !== undefined && (hostOf(origin) === undefined || hostOf(origin) !== request.headers.host)) {
    throw new CustosError('forbidden', 'the request came from another origin');
  }
}

/** The host of an Origin header, or undefined for "null" and anything unparsable. */
function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * AdminDeps.authenticateUser: a user API token (Authorization: Bearer custos_ut_...) or a
 * console session cookie, resolved to the user's actor; undefined when neither is valid.
 */
export function userAuthenticator(
  users: UserService,
): (request: FastifyRequest) => Promise<Actor | undefined> {
  return async (request) => {
    const header = request.headers.authorization ?? '';
    if (header !== '') {
      const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
      if (!UserService.isUserToken(token)) return undefined;
      const user = await users.authenticateToken(token);
      return user === undefined ? undefined : actorFromUser(user);
    }
    const secret = readCookie(request, sessionCookie);
    if (secret === undefined) return undefined;
    const user = await users.resolveSession(secret);
    if (user === undefined) return undefined;
    if (!safeMethods.has(request.method)) checkSameOrigin(request);
    return actorFromUser(user);
  };
}

function cookieHeader(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${sessionCookie}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

function publicUser(user: User) {
  return { id: user.id, email: user.email, name: user.name, roles: user.roles, groups: user.groups };
}

const login = z.strictObject({ email: z.string().min(1).max(320), password: z.string().min(1).max(1024) });
const passwordChange = z.strictObject({
  current: z.string().min(1).max(1024),
  password: z.string().min(1).max(1024),
});

/**
 * Console login and logout: POST /api/v1/session (email and password; sets the cookie),
 * GET /api/v1/session (who is logged in), DELETE /api/v1/session (logout). These sit
 * outside the admin API's authentication hook, so they check the cookie themselves.
 */
export function registerSessionRoutes(app: FastifyInstance, options: ConsoleAuthOptions): void {
  const { users } = options;
  const throttle = options.throttle ?? new LoginThrottle();
  app.register(
    async (scope) => {
      scope.post('/session', async (request: FastifyRequest, reply: FastifyReply) => {
        checkSameOrigin(request);
        const parsed = login.safeParse(request.body);
        if (!parsed.success) throw new CustosError('bad_request', 'give an email and a password');
        const { email } = parsed.data;
        const wait = throttle.retryAfter(email, request.ip);
        if (wait > 0) {
          request.log.warn({ email, address: request.ip }, 'console login throttled');
          reply.header('retry-after', String(wait));
          return sendError(
            reply,
            new CustosError('too_many_attempts', `too many failed logins; try again in ${wait} seconds`),
          );
        }
        const user = await users.verifyPassword(email, parsed.data.password);
        if (user === undefined) {
          throttle.failed(email, request.ip);
          request.log.info({ email, address: request.ip }, 'console login refused');
          return sendError(reply, new CustosError('invalid_token', 'wrong email or password'));
        }
        throttle.succeeded(email, request.ip);
        const session = await users.createSession(user.id);
        const maxAge = Math.max(1, Math.floor((session.expiresAt - Date.now()) / 1000));
        reply.header('set-cookie', cookieHeader(session.secret, maxAge, options.secureCookie));
        reply.header('cache-control', 'no-store');
        return { user: publicUser(user), expiresAt: session.expiresAt };
      });
      scope.get('/session', async (request: FastifyRequest, reply: FastifyReply) => {
        const secret = readCookie(request, sessionCookie);
        const user = secret === undefined ? undefined : await users.resolveSession(secret);
        reply.header('cache-control', 'no-store');
        if (user === undefined) return sendError(reply, new CustosError('invalid_token', 'not logged in'));
        return { user: publicUser(user) };
      });
      // A logged-in person changes their own password (whatever their role); other sessions end.
      scope.post('/session/password', async (request: FastifyRequest, reply: FastifyReply) => {
        checkSameOrigin(request);
        const secret = readCookie(request, sessionCookie);
        const user = secret === undefined ? undefined : await users.resolveSession(secret);
        if (user === undefined || secret === undefined) {
          return sendError(reply, new CustosError('invalid_token', 'not logged in'));
        }
        const parsed = passwordChange.safeParse(request.body);
        if (!parsed.success) throw new CustosError('bad_request', 'give the current and the new password');
        const wait = throttle.retryAfter(user.email, request.ip);
        if (wait > 0) {
          reply.header('retry-after', String(wait));
          return sendError(
            reply,
            new CustosError('too_many_attempts', `too many failed attempts; try again in ${wait} seconds`),
          );
        }
        if ((await users.verifyPassword(user.email, parsed.data.current)) === undefined) {
          throttle.failed(user.email, request.ip);
          return sendError(reply, new CustosError('forbidden', 'the current password is wrong'));
        }
        await users.setPassword(user.id, parsed.data.password, user.email);
        // setPassword ended every session; keep this one going with a fresh id.
        const session = await users.createSession(user.id);
        const maxAge = Math.max(1, Math.floor((session.expiresAt - Date.now()) / 1000));
        reply.header('set-cookie', cookieHeader(session.secret, maxAge, options.secureCookie));
        return reply.code(204).send();
      });

      scope.get('/session/options', async () => ({ password: true, oidc: options.oidc !== undefined }));

      if (options.oidc !== undefined) {
        const sso = options.oidc;
        const failed = (reply: FastifyReply, message: string) =>
          reply
            .code(403)
            .header('cache-control', 'no-store')
            .header('content-security-policy', "default-src 'none'")
            .header('set-cookie', `${oidcCookie}=; Path=${oidcPath}; HttpOnly; SameSite=Lax; Max-Age=0`)
            .type('text/plain; charset=utf-8')
            .send(`Single sign-on failed: ${message}\nGo back to the console at / and try again.\n`);
        scope.get('/session/oidc', async (_request: FastifyRequest, reply: FastifyReply) => {
          const { url, transactionId } = await sso.begin();
          reply.header(
            'set-cookie',
            [
              `${oidcCookie}=${transactionId}`,
              `Path=${oidcPath}`,
              'HttpOnly',
              'SameSite=Lax',
              'Max-Age=600',
              ...(options.secureCookie ? ['Secure'] : []),
            ].join('; '),
          );
          return reply.header('cache-control', 'no-store').redirect(url, 302);
        });
        scope.get('/session/oidc/callback', async (request: FastifyRequest, reply: FastifyReply) => {
          const transaction = readCookie(request, oidcCookie);
          if (transaction === undefined) return failed(reply, 'this browser did not start a login');
          let email: string;
          try {
            email = (await sso.finish(transaction, new URL(request.url, options.baseUrl))).email;
          } catch (error) {
            request.log.info({ err: error }, 'single sign-on refused');
            return failed(
              reply,
              error instanceof CustosError ? error.message : 'the provider did not confirm the login',
            );
          }
          const user = await users.find(email);
          if (user === undefined || user.status !== 'active') {
            request.log.info({ email }, 'single sign-on for an unknown or disabled user');
            return failed(reply, `${email} is not a Custos user; an admin adds people with custos user add`);
          }
          const session = await users.createSession(user.id);
          const maxAge = Math.max(1, Math.floor((session.expiresAt - Date.now()) / 1000));
          reply.header('set-cookie', [
            cookieHeader(session.secret, maxAge, options.secureCookie),
            `${oidcCookie}=; Path=${oidcPath}; HttpOnly; SameSite=Lax; Max-Age=0`,
          ]);
          return reply.header('cache-control', 'no-store').redirect('/', 302);
        });
      }

      scope.delete('/session', async (request: FastifyRequest, reply: FastifyReply) => {
        checkSameOrigin(request);
        const secret = readCookie(request, sessionCookie);
        if (secret !== undefined) await users.endSession(secret);
        reply.header('set-cookie', cookieHeader('', 0, options.secureCookie));
        return reply.code(204).send();
      });
    },
    { prefix: '/api/v1' },
  );
}

/**
 * The console's login side as configured: local accounts, and single sign-on when
 * `console.oidc` is set (its client secret read from the environment variable it names).
 */
export function registerConsoleLogin(
  app: FastifyInstance,
  deps: {
    users: UserService;
    url: string;
    clock: Clock;
    settings: Config['console'];
    env?: NodeJS.ProcessEnv;
  },
): void {
  const sso = deps.settings.oidc;
  const secret = sso === undefined ? undefined : (deps.env ?? process.env)[sso.clientSecretEnv];
  registerSessionRoutes(app, {
    users: deps.users,
    baseUrl: deps.url,
    secureCookie: deps.url.startsWith('https:'),
    ...(sso === undefined
      ? {}
      : {
          oidc: new OidcLogin(
            {
              issuer: sso.issuer,
              clientId: sso.clientId,
              ...(secret ? { clientSecret: secret } : {}),
              scopes: sso.scopes,
              redirectUri: `${deps.url}/api/v1/session/oidc/callback`,
            },
            deps.clock,
          ),
        }),
  });
}
