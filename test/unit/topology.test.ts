/**
 * Where the kit connects, from options or the environment: one server, a Cluster or a Sentinel,
 * with TLS and an ACL user — and clear errors for everything that cannot work.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveConfig } from '../../lib/core/config.js'
import { KitError } from '../../lib/index.js'

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KitError, String(error))
    assert.equal(error.code, 'ERR_KIT_INVALID_OPTION')
    assert.match(error.message, pattern)
    return true
  })
}

describe('topology: one server, Cluster or Sentinel, from options or the environment', () => {
  it('reads a Cluster from REDIS_CLUSTER_NODES or `cluster`, names it without secrets', () => {
    const config = resolveConfig({ env: { REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002', REDIS_PASSWORD: 's3cret', REDIS_USERNAME: 'app' } })
    assert.deepEqual(config.topology, { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: '::1', port: 7002 }] })
    assert.equal(config.username, 'app')
    assert.equal(config.server, 'cluster 10.0.0.1:7000,10.0.0.2:7001,[::1]:7002')
    const fromOptions = resolveConfig({ env: {}, cluster: { nodes: ['redis-a', { host: 'redis-b', port: 6380 }] } })
    assert.deepEqual(fromOptions.topology, { kind: 'cluster', nodes: [{ host: 'redis-a', port: 6379 }, { host: 'redis-b', port: 6380 }] })
  })

  it('reads a Sentinel from REDIS_SENTINELS + REDIS_SENTINEL_NAME, with its own password kept out of every message', () => {
    const config = resolveConfig({ env: { REDIS_SENTINELS: 's1:26379,s2', REDIS_SENTINEL_NAME: 'mymaster', REDIS_SENTINEL_PASSWORD: 'sentinel-pw', REDIS_DB: '2' } })
    assert.deepEqual(config.topology, { kind: 'sentinel', nodes: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }], name: 'mymaster', password: 'sentinel-pw', username: undefined })
    assert.equal(config.db, 2)
    assert.equal(config.server, "sentinel master 'mymaster' via s1:26379,s2:26379")
    rejects(() => resolveConfig({ env: { REDIS_SENTINELS: 's1:26379' } }), /REDIS_SENTINEL_NAME is missing.*sentinel monitor/)
  })

  it('refuses two forms at once, a Cluster with a database, and malformed nodes', () => {
    rejects(() => resolveConfig({ env: { REDIS_URL: 'redis://a', REDIS_CLUSTER_NODES: 'b:1' } }), /REDIS_URL and REDIS_CLUSTER_NODES are both set/)
    rejects(() => resolveConfig({ env: {}, url: 'redis://a', sentinel: { nodes: ['s'], name: 'm' } }), /`url` and `sentinel` are both set/)
    rejects(() => resolveConfig({ env: { REDIS_CLUSTER_NODES: 'a:7000', REDIS_DB: '3' } }), /REDIS_DB.*is 3 with a Redis Cluster.*database 0 only/)
    rejects(() => resolveConfig({ env: { REDIS_CLUSTER_NODES: 'a:notaport' } }), /REDIS_CLUSTER_NODES.*not host:port/)
    rejects(() => resolveConfig({ env: {}, cluster: { nodes: [] } }), /`cluster.nodes`.*at least one node/)
    rejects(() => resolveConfig({ env: {}, cluster: { node: ['a'] } as never }), /`cluster.node` is not an option. Did you mean `cluster.nodes`/)
  })

  describe('TLS', () => {
    let dir: string
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'erk-tls-config-'))
      writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n')
    })
    after(() => rmSync(dir, { recursive: true, force: true }))

    it('is off by default, on for rediss://, and reads the CA, client pair and server name from files named in the environment', () => {
      assert.equal(resolveConfig({ env: {} }).tls, undefined)
      assert.deepEqual(resolveConfig({ env: { REDIS_URL: 'rediss://h:6380' } }).tls, {})
      const config = resolveConfig({ env: { REDIS_URL: 'redis://h', REDIS_TLS_CA_FILE: join(dir, 'ca.pem'), REDIS_TLS_SERVERNAME: 'redis.internal' } })
      assert.match(String(config.tls?.ca), /BEGIN CERTIFICATE/)
      assert.equal(config.tls?.servername, 'redis.internal')
      assert.equal(resolveConfig({ env: { REDIS_URL: 'rediss://h' }, tls: false }).tls, undefined, 'tls: false wins')
    })

    it('names the variable and the path of a file it cannot read, refuses half a client pair and an IP as server name', () => {
      rejects(() => resolveConfig({ env: { REDIS_TLS_CA_FILE: join(dir, 'missing.pem') } }), /REDIS_TLS_CA_FILE names .*missing\.pem.*cannot be read \(ENOENT\)/)
      rejects(() => resolveConfig({ env: {}, tls: { cert: 'x' } }), /`tls.key` \(or REDIS_TLS_KEY_FILE\) is set without its pair|`tls.cert`/)
      rejects(() => resolveConfig({ env: {}, tls: { servername: '10.0.0.1' } }), /servername.*not an IP address/)
      rejects(() => resolveConfig({ env: {}, tls: { ca: 42 } as never }), /`tls.ca` is `42`/)
      rejects(() => resolveConfig({ env: {}, tls: { rejectUnauthorised: false } as never }), /`tls.rejectUnauthorised` is not an option. Did you mean `tls.rejectUnauthorized`/)
    })
  })
})
