// oidc-provider's development adapter keeps at most 1,000 entries (an LRU): past about 150 signed-in
// users it forgets grants and refresh tokens, and refreshes fail with invalid_grant. The same adapter
// on an unbounded Map whose entries expire, so that load tests with 1,000 users see a working IAM.
const storage = new Map();
const epoch = () => Math.floor(Date.now() / 1000);
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

function get(key) {
  const entry = storage.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt && entry.expiresAt <= Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return entry.value;
}

function set(key, value, expiresIn) {
  storage.set(key, { value, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
}

setInterval(() => { for (const key of storage.keys()) get(key); }, 60_000).unref();

// The development IAM's `end_sign_ins_of`: forget an account's refresh tokens, as an IAM does when
// they expire or an administrator revokes them. Their holders' next refresh fails with invalid_grant.
export function forgetRefreshTokens(accountId) {
  let forgotten = 0;
  for (const [key, entry] of storage) {
    if (key.startsWith('RefreshToken:') && entry.value?.accountId === accountId) {
      storage.delete(key);
      forgotten += 1;
    }
  }
  return forgotten;
}

export default class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async destroy(id) { storage.delete(this.key(id)); }

  async consume(id) {
    const payload = get(this.key(id));
    if (payload) payload.consumed = epoch();
  }

  async find(id) { return get(this.key(id)); }

  async findByUid(uid) { return this.find(get(`sessionUid:${uid}`)); }

  async findByUserCode(userCode) { return this.find(get(`userCode:${userCode}`)); }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') set(`sessionUid:${payload.uid}`, id, expiresIn);
    const { grantId, userCode } = payload;
    if (grantable.has(this.model) && grantId) {
      const grant = get(`grant:${grantId}`);
      if (grant) grant.push(key); else set(`grant:${grantId}`, [key]);
    }
    if (userCode) set(`userCode:${userCode}`, id, expiresIn);
    set(key, payload, expiresIn);
  }

  async revokeByGrantId(grantId) {
    const grant = get(`grant:${grantId}`);
    if (grant) grant.forEach((key) => storage.delete(key));
    storage.delete(`grant:${grantId}`);
  }
}
