import { type FormEvent, type ReactElement, useEffect, useState } from 'react';
import type { Approval } from './api';
import { ApiError, api, type SessionUser } from './api';
import { LiveContext, useData, useLiveTicks, useRoute } from './hooks';
import { Account } from './screens/account';
import { AgentDetail, AgentList } from './screens/agents';
import { Approvals } from './screens/approvals';
import { AuditEventDetail, AuditTimeline } from './screens/audit';
import { IncidentDetail, IncidentList } from './screens/incidents';
import { OverviewScreen } from './screens/overview';
import { Servers } from './screens/servers';
import { Users } from './screens/users';

/** Who is using the console; roles decide which buttons show (the API enforces them anyway). */
export interface Viewer {
  user: SessionUser;
}

function viewerOf(user: SessionUser): Viewer {
  return { user };
}

const sections = [
  ['overview', 'Overview'],
  ['agents', 'Agents'],
  ['approvals', 'Approvals'],
  ['incidents', 'Incidents'],
  ['audit', 'Audit'],
  ['servers', 'Servers'],
] as const;

export function App() {
  const [user, setUser] = useState<SessionUser | null | undefined>(undefined);
  useEffect(() => {
    api<{ user: SessionUser }>('/session').then(
      (r) => setUser(r.user),
      () => setUser(null),
    );
  }, []);
  if (user === undefined) return <p className="loading">Loading…</p>;
  if (user === null) return <Login onLogin={setUser} />;
  return <Shell viewer={viewerOf(user)} onLogout={() => setUser(null)} />;
}

function Login({ onLogin }: { onLogin: (user: SessionUser) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState(false);
  useEffect(() => {
    api<{ oidc: boolean }>('/session/options').then(
      (o) => setSso(o.oidc),
      () => setSso(false),
    );
  }, []);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await api<{ user: SessionUser }>('/session', { method: 'POST', body: { email, password } });
      onLogin(r.user);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'login failed');
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login">
      <form onSubmit={submit} aria-label="log in">
        <h1>Custos</h1>
        <label>
          Email
          <input
            name="email"
            type="email"
            autoComplete="username"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            required
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {sso && (
          <a className="sso" href="/api/v1/session/oidc">
            Log in with single sign-on
          </a>
        )}
      </form>
    </main>
  );
}

/** How many approval requests wait, beside the Approvals link (nothing without an approval engine). */
function PendingCount() {
  const { data } = useData<{ approvals: Approval[] }>('/approvals?status=pending&limit=100');
  const count = data?.approvals.length ?? 0;
  if (count === 0) return null;
  return (
    <span className="count" title={`${count} pending`}>
      {count}
    </span>
  );
}

function Shell({ viewer, onLogout }: { viewer: Viewer; onLogout: () => void }) {
  const route = useRoute();
  const { tick, connected } = useLiveTicks(true);
  const section = route[0] ?? 'overview';
  const logout = async () => {
    await api('/session', { method: 'DELETE' }).catch(() => {});
    onLogout();
  };
  let screen: ReactElement;
  if (section === 'agents' && route[1]) screen = <AgentDetail viewer={viewer} agentRef={route[1]} />;
  else if (section === 'agents') screen = <AgentList />;
  else if (section === 'approvals') screen = <Approvals viewer={viewer} view={route[1] ?? 'inbox'} />;
  else if (section === 'incidents' && route[1]) screen = <IncidentDetail viewer={viewer} id={route[1]} />;
  else if (section === 'incidents') screen = <IncidentList />;
  else if (section === 'audit' && route[1]) screen = <AuditEventDetail id={route[1]} />;
  else if (section === 'audit') screen = <AuditTimeline />;
  else if (section === 'servers') screen = <Servers />;
  else if (section === 'people' && viewer.user.roles.includes('admin')) screen = <Users />;
  else if (section === 'account') screen = <Account user={viewer.user} />;
  else screen = <OverviewScreen />;
  return (
    <LiveContext.Provider value={tick}>
      <header className="top">
        <a className="brand" href="#/overview">
          Custos
        </a>
        <nav>
          {sections.map(([id, label]) => (
            <a key={id} href={`#/${id}`} className={section === id ? 'current' : undefined}>
              {label}
              {id === 'approvals' && <PendingCount />}
            </a>
          ))}
          {viewer.user.roles.includes('admin') && (
            <a href="#/people" className={section === 'people' ? 'current' : undefined}>
              People
            </a>
          )}
        </nav>
        <div className="who">
          <span
            className={connected ? 'live on' : 'live'}
            title={connected ? 'live updates on' : 'reconnecting'}
          >
            {connected ? 'live' : 'offline'}
          </span>
          <a className="email" href="#/account">
            {viewer.user.email}
          </a>
          <button type="button" className="link" onClick={logout}>
            Log out
          </button>
        </div>
      </header>
      <main className="content">{screen}</main>
    </LiveContext.Provider>
  );
}
