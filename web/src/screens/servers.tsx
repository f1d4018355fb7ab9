import type { ServerInfo, Tool } from '../api';
import { useData } from '../hooks';
import { Badge, Problem } from './common';

function Tools({ server }: { server: string }) {
  const { data, error } = useData<{ tools: Tool[] }>(`/servers/${encodeURIComponent(server)}/tools`, {
    live: false,
  });
  return (
    <>
      <Problem error={error} />
      <ul className="tools">
        {data?.tools.map((t) => (
          <li key={t.name}>
            <code>{t.name}</code>
            {t.annotations.readOnlyHint === true && <Badge value="read-only" />}
            {t.annotations.destructiveHint === true && <Badge value="destructive" />}
            {t.description && <p>{t.description}</p>}
          </li>
        ))}
      </ul>
    </>
  );
}

export function Servers() {
  const { data, error } = useData<{ servers: ServerInfo[] }>('/servers');
  return (
    <section>
      <h1>Servers</h1>
      <Problem error={error} />
      {data?.servers.length === 0 && <p className="muted">No upstream servers are configured.</p>}
      {data?.servers.map((s) => (
        <details key={s.name} className="server" data-server={s.name}>
          <summary>
            <strong>{s.name}</strong> <Badge value={s.status} /> <span className="muted">{s.transport}</span>{' '}
            <span className="muted">
              {s.tools} tools, {s.prompts} prompts, {s.resources} resources
            </span>
          </summary>
          <Tools server={s.name} />
        </details>
      ))}
    </section>
  );
}
