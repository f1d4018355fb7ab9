import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import { CustosError } from '../core/errors.js';
import { IdGenerator } from '../core/ids.js';
import type { User, UserRole, UserService, UserTokenInfo } from '../identity/index.js';
import { callAdmin, type GlobalOptions, readConfig, runningServer, withAudit, withStore } from './context.js';
import { formatTime, printJson, printTable } from './output.js';

type Json = { json?: boolean };

/** Who runs the CLI without a server: $CUSTOS_USER or the login name (recorded with each change). */
function whoAmI(): string {
  return process.env.CUSTOS_USER ?? userInfo().username;
}

/** A change to people without a server: the user service with the audit log, so it is recorded. */
async function changeUsers<T>(config: Config, work: (users: UserService) => Promise<T>): Promise<T> {
  const { UserService } = await import('../identity/index.js');
  return withAudit(config, ({ store, audit, clock, ids }) =>
    work(new UserService({ store, clock, ids, audit })),
  );
}

/** The password from standard input (never from argv, where other users of the machine can read it). */
async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    process.stderr.write('password (end with Enter, then Ctrl-D): ');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text === '') throw new CustosError('usage', 'no password on standard input');
  return text;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function row(u: User) {
  return {
    email: u.email,
    id: u.id,
    roles: u.roles.join(','),
    groups: u.groups.join(',') || '-',
    status: u.status,
    password: u.hasPassword ? 'yes' : 'no',
  };
}

export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('people who use the console and the admin API');

  user
    .command('add <email>')
    .description('add a user; with --password-stdin the password is read from standard input')
    .requiredOption('--role <role>', 'admin, approver or auditor (repeatable)', collect, [])
    .option('--group <group>', 'a group the user belongs to (repeatable)', collect, [])
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read a local password from standard input')
    .option('--json', 'print JSON')
    .action(
      async (
        email: string,
        o: Json & { role: string[]; group: string[]; name?: string; passwordStdin?: boolean },
      ) => {
        const { userRoles } = await import('../identity/index.js');
        for (const role of o.role) {
          if (!userRoles.includes(role as UserRole)) {
            throw new CustosError('usage', `unknown role ${role}: use ${userRoles.join(', ')}`);
          }
        }
        const input = {
          email,
          roles: o.role as UserRole[],
          groups: o.group,
          ...(o.name ? { name: o.name } : {}),
          ...(o.passwordStdin ? { password: await readPassword() } : {}),
        };
        const config = await readConfig(program.opts<GlobalOptions>());
        const server = await runningServer(config);
        const added = server
          ? (await callAdmin<{ user: User }>(server, 'POST', '/users', input)).user
          : await changeUsers(config, (users) => users.add(input, whoAmI()));
        if (o.json) return printJson({ user: added });
        console.log(`user ${added.email} added (${added.roles.join(', ')})`);
      },
    );

  user
    .command('list')
    .description('list users')
    .option('--json', 'print JSON')
    .action(async (o: Json) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const users = server
        ? (await callAdmin<{ users: User[] }>(server, 'GET', '/users')).users
        : await withStore(config, async (store) => {
            const { UserService } = await import('../identity/index.js');
            return new UserService({ store, clock: systemClock, ids: new IdGenerator(systemClock) }).list();
          });
      if (o.json) return printJson({ users });
      printTable(users.map(row), ['email', 'id', 'roles', 'groups', 'status', 'password']);
    });

  for (const action of ['disable', 'enable'] as const) {
    user
      .command(`${action} <email>`)
      .description(
        action === 'disable'
          ? 'disable a user: their sessions end and their API tokens stop working'
          : 'enable a disabled user',
      )
      .option('--json', 'print JSON')
      .action(async (ref: string, o: Json) => {
        const config = await readConfig(program.opts<GlobalOptions>());
        const server = await runningServer(config);
        const changed = server
          ? (
              await callAdmin<{ user: User }>(
                server,
                'POST',
                `/users/${encodeURIComponent(ref)}/${action}`,
                {},
              )
            ).user
          : await changeUsers(config, (users) => users[action](ref, whoAmI()));
        if (o.json) return printJson({ user: changed });
        console.log(`${changed.email} is now ${changed.status}`);
      });
  }

  user
    .command('roles <email>')
    .description("replace a user's roles")
    .requiredOption('--role <role>', 'admin, approver or auditor (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json & { role: string[] }) => {
      const { userRoles } = await import('../identity/index.js');
      for (const role of o.role) {
        if (!userRoles.includes(role as UserRole))
          throw new CustosError('usage', `unknown role ${role}: use ${userRoles.join(', ')}`);
      }
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const roles = o.role as UserRole[];
      const changed = server
        ? (
            await callAdmin<{ user: User }>(server, 'POST', `/users/${encodeURIComponent(ref)}/roles`, {
              roles,
            })
          ).user
        : await changeUsers(config, (users) => users.setRoles(ref, roles, whoAmI()));
      if (o.json) return printJson({ user: changed });
      console.log(`${changed.email} now has the roles ${changed.roles.join(', ')}`);
    });

  user
    .command('password <email>')
    .description("set a user's password, read from standard input; their sessions end")
    .action(async (ref: string) => {
      const password = await readPassword();
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      if (server) await callAdmin(server, 'POST', `/users/${encodeURIComponent(ref)}/password`, { password });
      else await changeUsers(config, (users) => users.setPassword(ref, password, whoAmI()));
      console.log(`password of ${ref} set`);
    });

  user
    .command('token <email>')
    .description('create an admin API token for a user; it is shown once')
    .requiredOption('--name <name>', 'what the token is for, e.g. "ci"')
    .option('--json', 'print JSON')
    .action(async (ref: string, o: Json & { name: string }) => {
      const config = await readConfig(program.opts<GlobalOptions>());
      const server = await runningServer(config);
      const created = server
        ? await callAdmin<{ token: string; info: UserTokenInfo }>(
            server,
            'POST',
            `/users/${encodeURIComponent(ref)}/tokens`,
            { name: o.name },
          )
        : await changeUsers(config, (users) => users.createToken(ref, o.name, whoAmI()));
      if (o.json) return printJson(created);
      console.log(
        `token ${created.info.id} (${created.info.name}) created ${formatTime(created.info.createdAt)}`,
      );
      console.log(created.token);
      console.log('The token is shown once. Use it as "Authorization: Bearer <token>" on /api/v1.');
    });
}
