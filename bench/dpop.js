// DPoP benchmark: CPU per call that verifying a DPoP proof (RFC 9449) adds to authentication
// at the gateway, against a bearer token whose verification is cached. Proofs are made before
// the timed loop (an agent makes them, not Custos). Needs `npm run build` first (imports dist/).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { systemClock } from '../dist/core/clock.js';
import { IdGenerator } from '../dist/core/ids.js';
import { accessTokenHash, createIdentityService } from '../dist/identity/index.js';
import { openStore } from '../dist/store/index.js';

const issuer = 'http://127.0.0.1:7400';
const audience = `${issuer}/mcp`;

async function dpopKey(alg) {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { alg, privateKey: pair.privateKey, jwk: await exportJWK(pair.publicKey) };
}

function proof(key, claims) {
  return new SignJWT({ jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ...claims })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk })
    .sign(key.privateKey);
}

/** CPU microseconds (user + system) per call of `work` over `inputs`, run one after another. */
async function cpuPerCall(inputs, work) {
  globalThis.gc?.();
  const before = process.cpuUsage();
  for (const input of inputs) await work(input);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / inputs.length;
}

export async function run({ quick = false } = {}) {
  const n = quick ? 1000 : 4000;
  const store = await openStore(
    `sqlite:${join(mkdtempSync(join(tmpdir(), 'custos-bench-dpop-')), 'custos.db')}`,
  );
  try {
    const identity = await createIdentityService({
      store,
      clock: systemClock,
      ids: new IdGenerator(systemClock),
      issuer,
      audience,
    });
    const { clientId, clientSecret } = await identity.agents.add({
      name: 'bench',
      owner: 'bench@example.com',
      purpose: 'benchmark',
    });
    const form = { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret };
    const bearer = (await identity.handleTokenRequest(form)).access_token;
    await identity.verifyAccessToken(bearer); // the signature check is cached from here on
    const bearerUs = await cpuPerCall(Array(n).fill(bearer), (t) => identity.verifyAccessToken(t));

    const metrics = [
      { metric: 'calls measured per scenario', value: n, unit: 'calls' },
      { metric: 'bearer token (cached verification)', value: bearerUs, unit: 'µs CPU/call' },
    ];
    for (const alg of ['ES256', 'EdDSA']) {
      const key = await dpopKey(alg);
      const tokenProof = await proof(key, { htm: 'POST', htu: `${issuer}/oauth/token` });
      const bound = (await identity.handleTokenRequest(form, undefined, tokenProof)).access_token;
      const ath = accessTokenHash(bound);
      const proofs = [];
      for (let i = 0; i < n; i++) proofs.push(await proof(key, { htm: 'POST', htu: audience, ath }));
      const dpopUs = await cpuPerCall(proofs, (p) =>
        identity.verifyAccessToken(bound, { scheme: 'DPoP', proof: p, method: 'POST', url: audience }),
      );
      metrics.push(
        { metric: `DPoP-bound token, ${alg} proof`, value: dpopUs, unit: 'µs CPU/call' },
        { metric: `added by DPoP verification, ${alg}`, value: dpopUs - bearerUs, unit: 'µs CPU/call' },
      );
    }
    return { metrics: metrics.map((m) => ({ ...m, value: Math.round(m.value * 10) / 10 })) };
  } finally {
    await store.close();
  }
}
