// The sandbox's OpenID Connect provider: the OpenID-certified `oidc-provider` package (npm) run by
// Node, with a small login page of our own that checks the seeded users' passwords (the package's
// built-in "dev interactions" accept any password, which would make the SSO tests meaningless).
//
// Usage:
//   node provider.mjs --modules DIR --config FILE   serve (config: see sandbox/oidc.py)
//
// The signing keys are read from the key file at start and never made here: sandbox/oidc.py
// writes the first one and each rotated one (Python's `cryptography`). Node 20's synchronous
// RSA key generation could deadlock on its own KeyGenJob mutex when a garbage collection during
// the JWK export destroyed a KeyGenJob; that hung providers at start (see new_signing_key there).
//
// Consent is given automatically for the configured clients (they are first-party: the hub), so
// a login is one form. Logout is the package's RP-initiated logout (end_session_endpoint).
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    modules: { type: 'string' },
    config: { type: 'string' },
  },
});
if (!args.modules || !args.config) {
  console.error('usage: provider.mjs --modules NODE_MODULES_DIR --config CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(args.config, 'utf8'));

function loadKeys() {
  if (!existsSync(config.keys_file)) {
    console.error(`no signing keys in ${config.keys_file}: sandbox/oidc.py (ProviderFiles.write) makes them`);
    process.exit(2);
  }
  return JSON.parse(readFileSync(config.keys_file, 'utf8')).keys;
}

const { default: Provider } = await import(pathToFileURL(join(args.modules, 'oidc-provider', 'lib', 'index.js')).href);

const users = new Map(config.users.map((u) => [u.username, u]));
const bySub = new Map(config.users.map((u) => [u.sub, u]));
const digest = (text) => createHash('sha256').update(String(text), 'utf8').digest();

function passwordMatches(user, password) {
  // Compare digests so that the comparison takes the same time whatever the lengths.
  return timingSafeEqual(digest(user.password), digest(password));
}

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    client_name: c.client_name || c.client_id,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: loadKeys() },
  cookies: { keys: config.cookie_keys },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // By default the scope's claims go into the ID token too (most providers do so); with
  // conform_id_token_claims they are only in userinfo (OIDC Core 5.4), which the hub then asks.
  conformIdTokenClaims: Boolean(config.conform_id_token_claims),
  pkce: { required: () => true },
  ttl: {
    AccessToken: config.ttl?.AccessToken ?? 600,
    AuthorizationCode: config.ttl?.AuthorizationCode ?? 60,
    IdToken: config.ttl?.IdToken ?? 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    userinfo: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const user = bySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: user.name || user.username,
          preferred_username: user.username,
          email: user.email || '',
          email_verified: Boolean(user.email),
          groups: user.groups || [],
        };
      },
    };
  },
  async loadExistingGrant(ctx) {
    // First-party clients only: consent is implied, so a grant covering what was asked is made here.
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email groups');
    await grant.save();
    return grant;
  },
});

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, clientName, error) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in - ${escapeHtml(config.name)}</title></head>
<body><main><h1>${escapeHtml(config.name)}</h1><p>Sign in to continue to ${escapeHtml(clientName)}.</p>
${error ? `<p role="alert" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label>User name <input name="login" id="login" required autofocus></label>
<label>Password <input name="password" id="password" type="password" required></label>
<button type="submit" id="submit">Sign in</button></form></main></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch');
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName || details.params.client_id;
  if (details.prompt.name !== 'login') {
    // consent for a first-party client: loadExistingGrant covers it; finish without a page.
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET' && !action) return send(res, 200, loginPage(uid, clientName, ''));
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const user = users.get(String(form.get('login') || '').trim());
    const password = String(form.get('password') || '');
    if (!user || user.disabled || !passwordMatches(user, password)) {
      console.log(`login failed for ${JSON.stringify(form.get('login'))}`);
      return send(res, 401, loginPage(uid, clientName, 'Wrong user name or password.'));
    }
    console.log(`login ok for ${user.username}`);
    return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, 'method not allowed');
}

const oidc = provider.callback();
async function handler(req, res) {
  const url = new URL(req.url, config.issuer);
  const match = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/);
  if (url.pathname === '/healthz') {
    res.setHeader('Content-Type', 'text/plain');
    return res.end('ok\n');
  }
  if (!match) return oidc(req, res);
  try {
    await interaction(req, res, match[1], match[2]);
  } catch (err) {
    console.error(`interaction failed: ${err.message}`);
    if (!res.headersSent) send(res, 400, `interaction failed: ${escapeHtml(err.name || 'error')}`);
  }
}

provider.on('server_error', (ctx, err) => console.error(`server_error: ${err.stack || err}`));
provider.on('grant.error', (ctx, err) => console.log(`grant.error: ${err.name}: ${err.error_description || err.message}`));

const server = config.tls
  ? createHttpsServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, handler)
  : createHttpServer(handler);
server.listen(config.port, config.host, () => {
  const kids = loadKeys().map((k) => k.kid).join(',');
  console.log(`oidc-provider listening on ${config.issuer} (keys ${kids})`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
