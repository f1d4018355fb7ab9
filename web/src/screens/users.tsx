import { type FormEvent, useState } from 'react';
import { ApiError, api, formatTime } from '../api';
import { useData } from '../hooks';
import { Badge, Problem } from './common';

interface UserRow {
  id: string;
  email: string;
  name: string;
  roles: string[];
  groups: string[];
  status: 'active' | 'disabled';
  hasPassword: boolean;
  createdAt: number;
}

const roleNames = ['admin', 'approver', 'auditor'] as const;

/** People and their API tokens (admins only; the API refuses everyone else). */
export function Users() {
  const { data, error, reload } = useData<{ users: UserRow[] }>('/users', { live: false });
  const [problem, setProblem] = useState<ApiError | undefined>();
  const [token, setToken] = useState<{ email: string; token: string } | undefined>();
  // Moves on whenever a token is created or revoked, so the token lists fetch again.
  const [version, setVersion] = useState(0);
  const run = async (work: () => Promise<void>) => {
    setProblem(undefined);
    try {
      await work();
      reload();
    } catch (e) {
      setProblem(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
    }
  };
  const newToken = (email: string) =>
    run(async () => {
      const name = window.prompt(`What is the token for ${email} used for?`, 'automation');
      if (!name) return;
      const created = await api<{ token: string }>(`/users/${encodeURIComponent(email)}/tokens`, {
        method: 'POST',
        body: { name },
      });
      setToken({ email, token: created.token });
      setVersion((v) => v + 1);
    });
  return (
    <section>
      <h1>People</h1>
      <Problem error={error} />
      <Problem error={problem} />
      {token && (
        <div className="notice" role="status">
          <p>
            API token for {token.email}. It is shown once: copy it now and use it as{' '}
            <code>Authorization: Bearer …</code> on /api/v1.
          </p>
          <pre className="text">{token.token}</pre>
          <button type="button" onClick={() => setToken(undefined)}>
            Done
          </button>
        </div>
      )}
      <table className="list">
        <thead>
          <tr>
            <th>Email</th>
            <th>Roles</th>
            <th>Groups</th>
            <th>Status</th>
            <th>Login</th>
            <th>Added</th>
            <th>API tokens</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data?.users.map((u) => (
            <tr key={u.id} data-user={u.email}>
              <td data-label="Email">{u.email}</td>
              <td data-label="Roles">{u.roles.join(', ')}</td>
              <td data-label="Groups">{u.groups.join(', ') || '-'}</td>
              <td data-label="Status">
                <Badge value={u.status} />
              </td>
              <td data-label="Login">{u.hasPassword ? 'password or SSO' : 'SSO only'}</td>
              <td data-label="Added">{formatTime(u.createdAt)}</td>
              <td data-label="API tokens">
                <Tokens email={u.email} version={version} onRevoked={() => setVersion((v) => v + 1)} />
              </td>
              <td className="row-actions">
                {u.status === 'active' ? (
                  <>
                    <button type="button" onClick={() => newToken(u.email)}>
                      New API token
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() =>
                        run(() => api(`/users/${encodeURIComponent(u.email)}/disable`, { method: 'POST' }))
                      }
                    >
                      Disable
                    </button>
                  </>
                ) : (
                  <button
                    type="button"
                    onClick={() =>
                      run(() => api(`/users/${encodeURIComponent(u.email)}/enable`, { method: 'POST' }))
                    }
                  >
                    Enable
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <AddUser onAdded={reload} />
    </section>
  );
}

function AddUser({ onAdded }: { onAdded: () => void }) {
  const [email, setEmail] = useState('');
  const [roles, setRoles] = useState<string[]>(['auditor']);
  const [groups, setGroups] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<ApiError | undefined>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      await api('/users', {
        method: 'POST',
        body: {
          email,
          roles,
          groups: groups
            .split(',')
            .map((g) => g.trim())
            .filter((g) => g !== ''),
          ...(password ? { password } : {}),
        },
      });
      setEmail('');
      setPassword('');
      setGroups('');
      onAdded();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
    }
  };
  return (
    <form className="add-user" onSubmit={submit} aria-label="add a person">
      <h2>Add a person</h2>
      <label>
        Email
        <input
          name="new-email"
          type="email"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          required
        />
      </label>
      <fieldset>
        <legend>Roles</legend>
        {roleNames.map((role) => (
          <label key={role} className="inline">
            <input
              type="checkbox"
              checked={roles.includes(role)}
              onChange={(e) =>
                setRoles(e.target.checked ? [...roles, role] : roles.filter((r) => r !== role))
              }
            />{' '}
            {role}
          </label>
        ))}
      </fieldset>
      <label>
        Groups (comma separated)
        <input name="new-groups" value={groups} onChange={(e) => setGroups(e.target.value)} />
      </label>
      <label>
        Password (empty: single sign-on only; at least 12 characters)
        <input
          name="new-password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </label>
      <Problem error={error} />
      <div className="actions">
        <button type="submit">Add</button>
      </div>
    </form>
  );
}

interface TokenInfo {
  id: string;
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A user's live API tokens (never the tokens themselves), each revocable. */
function Tokens({ email, version, onRevoked }: { email: string; version: number; onRevoked: () => void }) {
  const { data, error } = useData<{ tokens: TokenInfo[] }>(
    `/users/${encodeURIComponent(email)}?v=${version}`,
    { live: false },
  );
  const [problem, setProblem] = useState<ApiError | undefined>();
  const live = (data?.tokens ?? []).filter((t) => t.revokedAt === null);
  const revoke = async (id: string) => {
    setProblem(undefined);
    try {
      await api(`/users/tokens/${encodeURIComponent(id)}/revoke`, { method: 'POST' });
      onRevoked();
    } catch (e) {
      setProblem(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
    }
  };
  if (error) return <Problem error={error} />;
  if (live.length === 0) return <span className="muted">none</span>;
  return (
    <>
      <Problem error={problem} />
      <ul className="tokens">
        {live.map((t) => (
          <li key={t.id}>
            {t.name} <span className="muted">(last used {formatTime(t.lastUsedAt)})</span>{' '}
            <button type="button" className="link" onClick={() => revoke(t.id)}>
              revoke {t.name}
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}
