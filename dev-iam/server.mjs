// The development IAM: a real OpenID provider (oidc-provider, OpenID Certified) that behaves like
// INDIGO IAM where dlaas-hub depends on it: a trailing-slash issuer, PKCE, refresh tokens, groups in
// `groups` and `wlcg.groups`, and RFC 8693 token exchange with IAM's rules (mandatory scope, no
// offline_access, JWT access tokens restricted to the requested audience).
//
// For tests and the local demo only: keys live in memory, users come from a JSON seed file.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT } from 'jose';
import Provider, { errors } from 'oidc-provider';

import MemoryAdapter, { forgetRefreshTokens } from './memory_adapter.mjs';

const EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8180' },
    issuer: { type: 'string' },
    'client-id': { type: 'string', default: 'dlaas-hub' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    // Where the hub may send a browser back after RP-initiated logout; by default the login page
    // beside each redirect URI (/hub/oauth_callback -> /hub/login).
    'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
    users: { type: 'string', default: new URL('./users.json', import.meta.url).pathname },
    'access-token-ttl': { type: 'string', default: '3600' },
    'id-token-ttl': { type: 'string', default: '600' },
    'refresh-token-ttl': { type: 'string', default: String(30 * 24 * 3600) },
    'exchange-token-ttl': { type: 'string' },
    // A lifetime per audience for exchanged tokens (AUDIENCE=SECONDS, repeatable), as an IAM whose
    // storage clients set their own token validity (ESCAPE's EOS tokens live 20 minutes).
    'audience-token-ttl': { type: 'string', multiple: true, default: [] },
    'rotate-refresh-tokens': { type: 'boolean', default: false },
    'delay-ms': { type: 'string', default: '0' },
    'fail-mode': { type: 'string', default: 'none' },
  },
});

const port = Number(opts.port);
const redirectUris = opts['redirect-uri'].length ? opts['redirect-uri'] : ['http://127.0.0.1:8000/hub/oauth_callback'];
const postLogoutRedirectUris = opts['post-logout-redirect-uri'].length
  ? opts['post-logout-redirect-uri']
  : redirectUris.map((uri) => uri.replace(/\/oauth_callback$/, '/login'));
const issuer = opts.issuer ?? `http://${opts.host}:${port}/`;
const ttl = {
  access: Number(opts['access-token-ttl']),
  id: Number(opts['id-token-ttl']),
  refresh: Number(opts['refresh-token-ttl']),
};
ttl.exchange = Number(opts['exchange-token-ttl'] ?? ttl.access);
ttl.byAudience = new Map(opts['audience-token-ttl'].map((entry) => {
  const at = entry.lastIndexOf('=');
  const seconds = Number(entry.slice(at + 1));
  if (at < 1 || !Number.isInteger(seconds) || seconds <= 0) {
    console.error(`--audience-token-ttl ${entry}: expected AUDIENCE=SECONDS`);
    process.exit(2);
  }
  return [entry.slice(0, at), seconds];
}));

// Fault injection, changeable at run time through POST /_dev/control.
const faults = {
  delayMs: Number(opts['delay-ms']),
  failMode: opts['fail-mode'], // none | 500 | hang
  failPaths: [], // path prefixes the failure applies to; empty means every OIDC path
};
const freshStats = () => ({ requests: {}, grants: {}, grantErrors: {}, in_flight: 0, peak_in_flight: 0,
  first_request_ms: null, last_answer_ms: null });
// in_flight / peak_in_flight: requests being answered at once; first_request_ms / last_answer_ms: the
// span in which the IAM was busy (epoch milliseconds), for the load benchmarks.
const stats = freshStats();

const users = new Map();
for (const user of JSON.parse(readFileSync(opts.users, 'utf8')).users) {
  users.set(user.sub, user);
}
const findUserByName = (name) => [...users.values()].find((u) => u.username === name);

// Storage scopes follow the WLCG profile (storage.read:/path ...); the rest are OIDC scopes a
// client may also ask for in an exchange.
const EXCHANGE_SCOPE = /^(openid|profile|email|wlcg|wlcg\.groups|storage\.(read|modify|create|stage):\/\S*)$/;

const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
const signingKey = await importJWK(signingJwk, 'RS256');

function accountClaims(user) {
  return {
    sub: user.sub,
    preferred_username: user.username,
    name: user.name,
    email: user.email,
    email_verified: true,
    groups: user.groups,
    'wlcg.groups': user.groups.map((g) => `/${g}`),
  };
}

// The claims each scope releases, in the id_token and at userinfo.
const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['preferred_username', 'name', 'groups'],
  email: ['email', 'email_verified'],
  'wlcg.groups': ['wlcg.groups'],
};

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients: [
    {
      client_id: opts['client-id'],
      // From the environment, not argv: process arguments are visible to every local user.
      client_secret: process.env.DEV_IAM_CLIENT_SECRET ?? 'dlaas-hub-dev-secret',
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutRedirectUris,
      grant_types: ['authorization_code', 'refresh_token', EXCHANGE_GRANT],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'wlcg.groups'],
  claims: SCOPE_CLAIMS,
  // IAM puts the requested claims in the id_token too.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    // Like IAM, ending the session asks the person to confirm; then back to the client.
    rpInitiatedLogout: {
      enabled: true,
      logoutSource(ctx, form) {
        ctx.body = page('Development IAM: sign out', `${form}
<p>Sign out of the development IAM on this browser?</p>
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      postLogoutSuccessSource(ctx) {
        ctx.body = page('Development IAM: signed out', '<p>You are signed out of the development IAM.</p>');
      },
    },
  },
  ttl: {
    AccessToken: ttl.access,
    IdToken: ttl.id,
    RefreshToken: ttl.refresh,
    Grant: ttl.refresh,
    Session: ttl.refresh,
  },
  // IAM issues a refresh token whenever the client may use the refresh_token grant.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => opts['rotate-refresh-tokens'],
  async findAccount(_ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return { accountId: id, claims: async () => accountClaims(user) };
  },
  // No consent screen: every client of the development IAM is first-party.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    grant.addOIDCClaims(['preferred_username', 'name', 'groups', 'email', 'email_verified', 'wlcg.groups']);
    await grant.save();
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p>${escapeHtml(out.error)}: ${escapeHtml(out.error_description ?? '')}</p>`);
  },
});
provider.proxy = false;

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  if (!params.scope) {
    throw new errors.InvalidRequest('scope is mandatory for token exchange');
  }
  const scopes = params.scope.split(' ').filter(Boolean);
  if (scopes.includes('offline_access')) {
    throw new errors.InvalidScope('offline_access is not allowed in a token exchange', 'offline_access');
  }
  const bad = scopes.find((s) => !EXCHANGE_SCOPE.test(s));
  if (bad) {
    throw new errors.InvalidScope('scope not allowed for this client', bad);
  }
  const subject = await provider.AccessToken.find(params.subject_token);
  if (!subject || subject.isExpired || !users.has(subject.accountId)) {
    throw new errors.InvalidGrant();
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: subject.accountId,
    scope: scopes.join(' '),
    client_id: client.clientId,
    act: { sub: client.clientId },
    jti: randomUUID(),
  };
  if (params.audience) claims.aud = params.audience;
  const lifetime = ttl.byAudience.get(params.audience) ?? ttl.exchange;
  const accessToken = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: signingJwk.kid, typ: 'at+jwt' })
    .setIssuer(issuer)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + lifetime)
    .sign(signingKey);
  ctx.body = {
    access_token: accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: lifetime,
    scope: claims.scope,
  };
}
provider.registerGrantType(EXCHANGE_GRANT, tokenExchange, [
  'subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type', 'resource',
]);

// INDIGO IAM's userinfo answers any unexpired access token it issued that carries `openid`, whatever
// its audience: EOS maps an `oauth2:<jwt>:<userinfo>` token that way. oidc-provider's own userinfo
// knows only the tokens it stored, so the exchanged JWTs are answered here, the same way.
const USERINFO_PATH = '/me';

function bearerJwt(req) {
  const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

function refuse(res, status, error, description) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'www-authenticate': `Bearer error="${error}", error_description="${description}"`,
  });
  res.end(JSON.stringify({ error, error_description: description }));
}

async function exchangedUserinfo(req, res, token) {
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, publicKey, { issuer, algorithms: ['RS256'] }));
  } catch (err) {
    return refuse(res, 401, 'invalid_token', err.code === 'ERR_JWT_EXPIRED' ? 'access token expired' : 'invalid access token');
  }
  const scopes = String(claims.scope ?? '').split(' ');
  if (!scopes.includes('openid')) {
    return refuse(res, 403, 'insufficient_scope', 'access token missing openid scope');
  }
  const user = users.get(claims.sub);
  if (!user) return refuse(res, 401, 'invalid_token', 'unknown subject');
  const account = accountClaims(user);
  const body = {};
  for (const scope of scopes) {
    for (const claim of SCOPE_CLAIMS[scope] ?? []) body[claim] = account[claim];
  }
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  return res.end(JSON.stringify(body));
}

const count = (table, key) => { table[key] = (table[key] ?? 0) + 1; };
provider.on('grant.success', (ctx) => count(stats.grants, ctx.oidc.params.grant_type));
provider.on('grant.error', (ctx) => count(stats.grantErrors, ctx.oidc.params?.grant_type ?? 'unknown'));

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label{display:block;margin:.6em 0}
input{width:100%;padding:.3em}button{margin-top:1em;padding:.4em 1.2em}.error{color:#a00}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginForm(uid, error = '') {
  const demo = [...users.values()].map((u) => `<li><code>${escapeHtml(u.username)}</code> (${escapeHtml(u.groups.join(', '))})</li>`).join('');
  return page('Development IAM: sign in', `
${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label>Username <input name="username" required autofocus></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button></form>
<p>Demo users (see dev-iam/users.json for passwords):</p><ul>${demo}</ul>`);
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

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginForm(details.uid));
    return;
  }
  const form = await readForm(req);
  const user = findUserByName(form.get('username'));
  if (!user || user.password !== form.get('password')) {
    res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginForm(details.uid, 'Invalid username or password.'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
}

const oidc = provider.callback();
const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  try {
    if (path === '/_dev/control') return await controlHandler(req, res);
    count(stats.requests, path);
    stats.in_flight += 1;
    stats.peak_in_flight = Math.max(stats.peak_in_flight, stats.in_flight);
    stats.first_request_ms ??= Date.now();
    const counted = stats;
    res.once('close', () => { counted.in_flight -= 1; counted.last_answer_ms = Date.now(); });
    if (faults.delayMs > 0) await new Promise((r) => setTimeout(r, faults.delayMs));
    const faulty = faults.failMode !== 'none'
      && (faults.failPaths.length === 0 || faults.failPaths.some((p) => path.startsWith(p)));
    if (faulty && faults.failMode === 'hang') return undefined; // never answers
    if (faulty) {
      res.writeHead(500, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'server_error', error_description: 'injected failure' }));
    }
    if (path.startsWith('/interaction/')) return await interaction(req, res);
    if (path === USERINFO_PATH && bearerJwt(req)) return await exchangedUserinfo(req, res, bearerJwt(req));
    return oidc(req, res);
  } catch (err) {
    console.error(`dev-iam: ${req.method} ${path}: ${err.name}`);
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page('Error', `<p>${escapeHtml(err.message)}</p>`));
  }
});

async function controlHandler(req, res) {
  let ended = 0; // refresh tokens forgotten by end_sign_ins_of
  if (req.method === 'POST') {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const update = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    if ('fail_mode' in update) faults.failMode = update.fail_mode;
    if ('fail_paths' in update) faults.failPaths = update.fail_paths;
    if ('delay_ms' in update) faults.delayMs = Number(update.delay_ms);
    if (update.reset_stats) Object.assign(stats, freshStats());
    if ('end_sign_ins_of' in update) {
      const user = findUserByName(update.end_sign_ins_of);
      if (!user) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: `no user named ${update.end_sign_ins_of}` }));
      }
      ended = forgetRefreshTokens(user.sub);
    }
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ faults: { fail_mode: faults.failMode, fail_paths: faults.failPaths, delay_ms: faults.delayMs }, stats,
    refresh_tokens_ended: ended }));
}

server.listen(port, opts.host, () => {
  console.log(`dev-iam: issuer ${issuer} listening on http://${opts.host}:${port}`);
  console.log(`dev-iam: client ${opts['client-id']} may redirect to ${redirectUris.join(' ')}`);
  console.log(`dev-iam: and back after sign-out to ${postLogoutRedirectUris.join(' ')}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 500).unref());
