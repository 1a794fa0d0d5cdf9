// oidc-provider's storage on Redis: the peer's production shape for `make bench-compare`.
//
// Written after the adapter interface oidc-provider documents (example/my_adapter.js in its
// repository): one adapter per model, with upsert, find, findByUid, findByUserCode, consume,
// destroy and revokeByGrantId. The Redis client (ioredis) is handed in, so tests can give it a
// private server.
//
// Keys, each under the client's keyPrefix:
//   <Model>:<id>        a hash: "payload" (the provider's JSON) and, once consumed, "consumed"
//                       (epoch seconds); it expires with the entry
//   sessionUid:<uid>    the id of the Session with that fixed uid (its id changes on login)
//   userCode:<code>     the id of the DeviceCode with that user code
//   grant:<grantId>     a sorted set of the keys of the grant's tokens, scored by when each
//                       expires: revokeByGrantId deletes them all, and members past their expiry
//                       are dropped on every write, so a grant refreshed for a month does not
//                       collect every rotated token it ever had
//
// Every write is one MULTI/EXEC (one round trip, applied whole or not at all); a read is one
// command, two for the look-ups through an index.

// The models whose entries belong to a grant (the ones revokeByGrantId must reach).
const GRANT_MEMBERS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

// Marks an entry consumed only while it exists: a plain HSET on an entry that has just expired or
// been destroyed would create a hash without an expiry that nothing ever deletes.
const CONSUME_IF_PRESENT = `
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], 'consumed', ARGV[1])
  return 1
end
return 0`;

const epochSeconds = () => Math.floor(Date.now() / 1000);

async function applied(transaction) {
  const replies = await transaction.exec();
  const failed = replies.find(([error]) => error);
  if (failed) throw failed[0];
  return replies;
}

class RedisAdapter {
  constructor(client, model, clockTolerance) {
    this.client = client;
    this.model = model;
    this.clockTolerance = clockTolerance;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    // Kept as long past its expiry as the provider's clock tolerance, as the built-in adapter
    // does: a token the provider still accepts is still found.
    const ttl = typeof expiresIn === 'number' ? expiresIn + this.clockTolerance : undefined;
    const transaction = this.client.multi();
    // An upsert replaces the entry whole: a consumed mark the new payload lacks must not survive.
    transaction.del(key);
    transaction.hset(key, 'payload', JSON.stringify(payload));
    const indexes = [];
    if (this.model === 'Session' && payload.uid) indexes.push(`sessionUid:${payload.uid}`);
    if (payload.userCode) indexes.push(`userCode:${payload.userCode}`);
    for (const index of indexes) transaction.set(index, id);
    if (ttl) {
      for (const name of [key, ...indexes]) transaction.expire(name, ttl);
    }
    if (GRANT_MEMBERS.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const now = epochSeconds();
      transaction.zadd(grantKey, ttl ? now + ttl : '+inf', key);
      transaction.zremrangebyscore(grantKey, '-inf', `(${now}`);
      if (ttl) {
        // The set lives as long as its longest-lived member: NX gives a new set its first
        // expiry, GT only ever lengthens it.
        transaction.expire(grantKey, ttl, 'NX');
        transaction.expire(grantKey, ttl, 'GT');
      } else {
        transaction.persist(grantKey);
      }
    }
    await applied(transaction);
  }

  async find(id) {
    if (!id) return undefined;
    const stored = await this.client.hgetall(this.key(id));
    if (!stored || !stored.payload) return undefined;
    const entry = JSON.parse(stored.payload);
    if (stored.consumed) entry.consumed = Number(stored.consumed);
    return entry;
  }

  async findByUid(uid) {
    return this.find(await this.client.get(`sessionUid:${uid}`));
  }

  async findByUserCode(userCode) {
    return this.find(await this.client.get(`userCode:${userCode}`));
  }

  async consume(id) {
    await this.client.consumeIfPresent(this.key(id), epochSeconds());
  }

  async destroy(id) {
    // An index left pointing here finds nothing; a grant's member is dropped at its expiry.
    await this.client.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    const members = await this.client.zrange(grantKey, 0, -1);
    if (members.length === 0) return;
    // ZREM rather than DEL of the set: a token issued on the grant meanwhile stays listed.
    await applied(this.client.multi().del(...members).zrem(grantKey, ...members));
  }
}

// The `adapter` option of oidc-provider: a factory it calls once per model.
export function redisAdapter(client, { clockTolerance = 0 } = {}) {
  if (!client.consumeIfPresent) {
    client.defineCommand('consumeIfPresent', { numberOfKeys: 1, lua: CONSUME_IF_PRESENT });
  }
  return (model) => new RedisAdapter(client, model, clockTolerance);
}
