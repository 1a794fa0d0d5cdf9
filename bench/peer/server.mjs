// The peer for `make bench-compare`: panva's oidc-provider configured like our IdP.
//
// One confidential client (client_secret_basic), authorization code + PKCE S256,
// refresh tokens with rotation, first-party auto-grant (no consent screen), RS256
// ID tokens, and a login interaction that accepts a form POST of email/password
// checked against an argon2id hash with the same cost as ours (m=19 MiB, t=2, p=1).
//
// The server is one Node process, in one of two shapes (PEER_STORE):
//   memory  oidc-provider's default in-memory adapter: no store at all, nothing survives a
//           restart or is shared between processes; its documentation says it is for
//           development only. The peer's best case.
//   redis   ./redis_adapter.mjs on a redis-server (PEER_REDIS_URL), which compare.py runs with
//           appendonly yes and appendfsync everysec: its production shape.
//
// Configuration comes from the environment (bench/compare.py sets it):
//   PEER_PORT, PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_REDIRECT_URI,
//   PEER_USERS (how many users bench-user-<n>@example.org), PEER_PASSWORD,
//   PEER_STORE (memory or redis), PEER_REDIS_URL.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import { hash, verify } from '@node-rs/argon2';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT || 54400);
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.PEER_CLIENT_ID || 'bench-client';
const clientSecret = process.env.PEER_CLIENT_SECRET || 'bench-secret-bench-secret-bench-secret';
const redirectUri = process.env.PEER_REDIRECT_URI || 'http://127.0.0.1:8765/callback';
const userCount = Number(process.env.PEER_USERS || 64);
const password = process.env.PEER_PASSWORD || 'Correct-Horse-42!';

const store = process.env.PEER_STORE || 'memory';
// oidc-provider's default, which the built-in adapter also keeps entries for past their expiry.
const clockTolerance = 15;

async function storageAdapter() {
  if (store === 'memory') return undefined;
  if (store !== 'redis') throw new Error(`PEER_STORE must be memory or redis, not ${store}`);
  const { Redis } = await import('ioredis');
  const { redisAdapter } = await import('./redis_adapter.mjs');
  const client = new Redis(process.env.PEER_REDIS_URL || 'redis://127.0.0.1:6379', { keyPrefix: 'oidc:' });
  await client.ping(); // not ready for /healthz before the store answers
  return redisAdapter(client, { clockTolerance });
}

const ARGON2 = { algorithm: 2 /* argon2id */, memoryCost: 19456, timeCost: 2, parallelism: 1 };

// Like bench/seed_large.py: one argon2id hash shared by every seeded user.
const passwordHash = await hash(password, ARGON2);
const accounts = new Map();
for (let n = 0; n < userCount; n += 1) {
  const email = `bench-user-${n}@example.org`;
  accounts.set(email, { accountId: `sub-${n}`, email, name: `Bench User ${n}`, passwordHash });
}
const byId = new Map([...accounts.values()].map((a) => [a.accountId, a]));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-1', alg: 'RS256', use: 'sig' };

const adapter = await storageAdapter();
const provider = new Provider(issuer, {
  ...(adapter ? { adapter } : {}),
  clockTolerance,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, RefreshToken: 30 * 24 * 3600, Session: 12 * 3600, Interaction: 600, Grant: 30 * 24 * 3600 },
  // Rotate on every use, like ours (RFC 9700 4.14.2).
  rotateRefreshToken: true,
  // oidc-provider drops offline_access unless prompt=consent is sent (OIDC Core 11), which would
  // force a consent interaction on every authorize; a first-party client gets refresh tokens anyway.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // First-party client: no consent screen. A signed-in user gets a grant for every scope.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const account = byId.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!doctype html><html><head><title>Log in</title></head><body>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input type="hidden" name="csrf_token" value="${escape(uid)}">
<label>Email address <input type="email" name="email" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<input type="hidden" name="provider" value="identity">
<button>Login</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const callback = provider.callback();

// The app's own sign-in pages, as oidc-provider expects (it renders no login page itself).
const server = createServer(async (req, res) => {
  try {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    const match = req.url.match(/^\/interaction\/([\w-]+)(\/login)?$/);
    if (match) {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== match[1]) throw new Error('interaction mismatch');
      if (req.method === 'GET' && !match[2]) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(loginPage(details.uid));
        return;
      }
      if (req.method === 'POST' && match[2]) {
        const form = await readForm(req);
        const account = accounts.get((form.get('email') || '').trim().toLowerCase());
        const ok = await verify(account ? account.passwordHash : passwordHash, form.get('password') || '');
        if (!account || !ok) {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          res.end(loginPage(details.uid, 'Your email address or password was incorrect'));
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: account.accountId, amr: ['pwd'] } },
          { mergeWithLastSubmission: false });
        return;
      }
    }
    callback(req, res);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(String(err && err.message));
  }
});

server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => {
  console.log(`peer oidc-provider ${issuer} ready (${store} store, client ${clientId}, ${userCount} users)`);
});
