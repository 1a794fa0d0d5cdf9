// The Redis adapter keeps the promises of oidc-provider's adapter interface (example/my_adapter.js).
//
//   REDIS_URL=redis://127.0.0.1:PORT/0 node --test bench/peer/redis_adapter.test.mjs
//
// tests/bench/test_peer_redis_adapter.py runs it against a private redis-server. Every run writes
// under a key prefix of its own, so a shared server is left as it was found (its keys expire).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { Redis } from 'ioredis';

import { redisAdapter } from './redis_adapter.mjs';

const prefix = `adapter-test:${randomBytes(6).toString('hex')}:`;
let client;
let raw; // the same server without the prefix, to look at what was stored
let adapterFor;

before(async () => {
  const url = process.env.REDIS_URL;
  assert.ok(url, 'REDIS_URL must name a redis-server to test against');
  client = new Redis(url, { keyPrefix: prefix });
  raw = new Redis(url);
  adapterFor = redisAdapter(client, { clockTolerance: 15 });
});

after(async () => {
  const keys = await raw.keys(`${prefix}*`);
  if (keys.length) await raw.del(...keys);
  await Promise.all([client.quit(), raw.quit()]);
});

const token = (grantId, extra = {}) => ({ kind: 'AccessToken', jti: randomBytes(8).toString('hex'), grantId, ...extra });

test('find returns what upsert stored, and nothing for an id never stored', async () => {
  const codes = adapterFor('AuthorizationCode');
  const payload = { jti: 'code-1', kind: 'AuthorizationCode', nonce: 'n', scope: 'openid email', claims: { a: [1] } };
  await codes.upsert('code-1', payload, 60);
  assert.deepEqual(await codes.find('code-1'), payload);
  assert.equal(await codes.find('never-stored'), undefined);
  // One model's id is not another's.
  assert.equal(await adapterFor('AccessToken').find('code-1'), undefined);
});

test('an entry and its index expire with expiresIn plus the clock tolerance', async () => {
  const sessions = adapterFor('Session');
  await sessions.upsert('sess-ttl', { jti: 'sess-ttl', uid: 'uid-ttl', kind: 'Session' }, 100);
  for (const key of ['Session:sess-ttl', 'sessionUid:uid-ttl']) {
    const ttl = await raw.ttl(prefix + key);
    assert.ok(ttl > 100 && ttl <= 115, `${key} ttl ${ttl}`);
  }
});

test('consume marks the entry consumed, keeping it until it expires', async () => {
  const refresh = adapterFor('RefreshToken');
  await refresh.upsert('rt-1', { jti: 'rt-1', kind: 'RefreshToken' }, 60);
  const before = Math.floor(Date.now() / 1000);
  await refresh.consume('rt-1');
  const found = await refresh.find('rt-1');
  assert.equal(found.jti, 'rt-1');
  assert.ok(found.consumed >= before, 'consumed is a timestamp');
  assert.ok((await raw.ttl(`${prefix}RefreshToken:rt-1`)) > 0, 'consume keeps the expiry');
});

test('consume of an entry that is gone stores nothing', async () => {
  await adapterFor('AuthorizationCode').consume('gone');
  assert.equal(await raw.exists(`${prefix}AuthorizationCode:gone`), 0);
});

test('upsert replaces the entry whole, a consumed mark included', async () => {
  const codes = adapterFor('AuthorizationCode');
  await codes.upsert('code-2', { jti: 'code-2', scope: 'openid' }, 60);
  await codes.consume('code-2');
  await codes.upsert('code-2', { jti: 'code-2', scope: 'openid email' }, 60);
  assert.deepEqual(await codes.find('code-2'), { jti: 'code-2', scope: 'openid email' });
});

test('findByUid finds the session by its fixed uid, also after its id changed', async () => {
  const sessions = adapterFor('Session');
  await sessions.upsert('sess-a', { jti: 'sess-a', uid: 'uid-1', accountId: 'sub-1' }, 60);
  assert.equal((await sessions.findByUid('uid-1')).jti, 'sess-a');
  await sessions.upsert('sess-b', { jti: 'sess-b', uid: 'uid-1', accountId: 'sub-1' }, 60);
  await sessions.destroy('sess-a');
  assert.equal((await sessions.findByUid('uid-1')).jti, 'sess-b');
  assert.equal(await sessions.findByUid('no-such-uid'), undefined);
});

test('findByUserCode finds the device code by its user code', async () => {
  const devices = adapterFor('DeviceCode');
  await devices.upsert('dc-1', { jti: 'dc-1', userCode: 'ABCD-EFGH', grantId: 'g-device' }, 60);
  assert.equal((await devices.findByUserCode('ABCD-EFGH')).jti, 'dc-1');
  assert.equal(await devices.findByUserCode('ZZZZ-ZZZZ'), undefined);
});

test('destroy makes find and the index look-ups find nothing', async () => {
  const sessions = adapterFor('Session');
  await sessions.upsert('sess-x', { jti: 'sess-x', uid: 'uid-x' }, 60);
  await sessions.destroy('sess-x');
  assert.equal(await sessions.find('sess-x'), undefined);
  assert.equal(await sessions.findByUid('uid-x'), undefined);
});

test('revokeByGrantId removes every token of the grant, of every model, and no other grant\'s', async () => {
  const access = adapterFor('AccessToken');
  const refresh = adapterFor('RefreshToken');
  const codes = adapterFor('AuthorizationCode');
  await access.upsert('at-g1', token('g1'), 60);
  await refresh.upsert('rt-g1', token('g1', { kind: 'RefreshToken' }), 3600);
  await codes.upsert('ac-g1', token('g1', { kind: 'AuthorizationCode' }), 60);
  await access.upsert('at-g2', token('g2'), 60);

  await refresh.revokeByGrantId('g1'); // the provider calls it on each model's adapter in turn
  await access.revokeByGrantId('g1');

  assert.equal(await access.find('at-g1'), undefined);
  assert.equal(await refresh.find('rt-g1'), undefined);
  assert.equal(await codes.find('ac-g1'), undefined);
  assert.ok(await access.find('at-g2'), 'another grant keeps its tokens');
});

test('a grant\'s index lives as long as its longest-lived token and drops expired ones', async () => {
  const access = adapterFor('AccessToken');
  const refresh = adapterFor('RefreshToken');
  const grantKey = `${prefix}grant:g3`;
  await raw.zadd(grantKey, Math.floor(Date.now() / 1000) - 10, 'AccessToken:long-expired');
  await refresh.upsert('rt-g3', token('g3'), 3600);
  await access.upsert('at-g3', token('g3'), 60);
  const ttl = await raw.ttl(grantKey);
  assert.ok(ttl > 3600 && ttl <= 3615, `grant ttl ${ttl} follows the refresh token, not the later access token`);
  assert.deepEqual((await raw.zrange(grantKey, 0, -1)).sort(), ['AccessToken:at-g3', 'RefreshToken:rt-g3']);
});

test('an entry without expiresIn does not expire', async () => {
  const grants = adapterFor('Grant');
  await grants.upsert('grant-forever', { jti: 'grant-forever', kind: 'Grant' });
  assert.equal(await raw.ttl(`${prefix}Grant:grant-forever`), -1);
});
