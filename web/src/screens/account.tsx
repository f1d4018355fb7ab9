import { type FormEvent, useState } from 'react';
import { ApiError, api, type SessionUser } from '../api';
import { Field, Problem } from './common';

/** Who is logged in, and a change of their own password. */
export function Account({ user }: { user: SessionUser }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState<ApiError | undefined>();
  const [done, setDone] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setDone(false);
    try {
      await api('/session/password', { method: 'POST', body: { current, password: next } });
      setCurrent('');
      setNext('');
      setDone(true);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'network', String(e)));
    }
  };
  return (
    <section>
      <h1>Account</h1>
      <dl className="facts">
        <Field label="Email">{user.email}</Field>
        <Field label="Roles">{user.roles.join(', ')}</Field>
        <Field label="Groups">{user.groups.join(', ') || '-'}</Field>
      </dl>
      <form className="add-user" onSubmit={submit} aria-label="change password">
        <h2>Change password</h2>
        <label>
          Current password
          <input
            type="password"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
            required
          />
        </label>
        <label>
          New password (at least 12 characters)
          <input
            type="password"
            autoComplete="new-password"
            value={next}
            onChange={(e) => setNext(e.target.value)}
            required
          />
        </label>
        <Problem error={error} />
        {done && <p role="status">Password changed. Your other sessions have ended.</p>}
        <div className="actions">
          <button type="submit">Change password</button>
        </div>
      </form>
    </section>
  );
}
