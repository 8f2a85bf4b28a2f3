/**
 * The test harness itself, end to end with ioredis against real redis-server processes: the cluster,
 * sentinel, TLS, ACL and latency-proxy helpers start, serve, hang and fail over as they promise, so
 * tests built on them fail for the kit's reasons, never the harness's.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { createAclUser, deleteAclUsers, noScriptingUser, prefixLimitedUser, restrictedKeysUser } from '../helpers/acl.js'
import { RedisCluster } from '../helpers/cluster.js'
import { LatencyProxy } from '../helpers/latency-proxy.js'
import { RedisServer } from '../helpers/redis-server.js'
import { RedisSentinelGroup } from '../helpers/sentinel.js'
import { makeCertificates, RedisTlsServer, type TestCertificates } from '../helpers/tls.js'

/** Polls `check` until it passes (never a fixed sleep); the last failure explains a timeout. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      if (await check()) return
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms${last instanceof Error ? ` (last: ${last.message})` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Resolves with 'pending' if `promise` has not settled within `ms`; clears its timer either way. */
async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<'pending'>((resolve) => { timer = setTimeout(() => resolve('pending'), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

describe('test harness: cluster, sentinel, TLS, ACL and latency helpers', function () {
  /** Every client a test makes, disconnected after it; every error they emit, for the TLS assertions. */
  const clients: Array<Redis | Cluster> = []
  let clientErrors: Error[] = []

  function track<T extends Redis | Cluster>(client: T): T {
    // A listener on 'error' is what keeps ioredis from printing "[ioredis] Unhandled error event"
    // (which fails the run: test/setup.ts).
    client.on('error', (error: Error) => clientErrors.push(error))
    if (client instanceof Cluster) client.on('node error', (error: Error) => clientErrors.push(error))
    clients.push(client)
    return client
  }

  function redis(options: RedisOptions): Redis {
    // Reconnect fast: a failover test should wait on Redis, not on ioredis' back-off.
    return track(new Redis({ host: '127.0.0.1', retryStrategy: (times) => Math.min(times * 50, 300), ...options }))
  }

  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect()
    clientErrors = []
  })

  describe('RedisCluster', function () {
    this.timeout(30_000)
    let cluster: RedisCluster | undefined

    /**
     * A Cluster client that has loaded the slot map. Waiting for 'ready' matters: a keyless command
     * (CLUSTER KEYSLOT) sent before it goes to a random startup node, and if that is a replica the
     * first slot refresh drops its connection and the command fails with "Connection is closed.".
     */
    async function clusterClient(options: ClusterOptions = {}): Promise<Cluster> {
      const client = track(new Cluster(live().startupNodes, {
        clusterRetryStrategy: () => 100,
        // A dead master's slots are retried after a refresh rather than failing the command at once.
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        slotsRefreshTimeout: 500,
        redisOptions: { connectTimeout: 500, maxRetriesPerRequest: 2 },
        ...options,
      }))
      await new Promise<void>((resolve) => client.once('ready', () => resolve()))
      return client
    }

    function live(): RedisCluster {
      assert.ok(cluster, 'cluster started')
      return cluster
    }

    /** A key per master, found by asking the cluster which slot each candidate hashes to. */
    async function keyPerMaster(client: Cluster): Promise<Map<number, { key: string; slot: number }>> {
      const byMaster = new Map<number, { key: string; slot: number }>()
      const masters = await live().masters()
      for (let i = 0; byMaster.size < masters.length && i < 100; i++) {
        const key = `harness:${i}`
        const slot = Number(await client.cluster('KEYSLOT', key))
        const owner = masters.find((master) => master.slots.some(([first, last]) => slot >= first && slot <= last))
        if (owner && !byMaster.has(owner.port)) byMaster.set(owner.port, { key, slot })
      }
      return byMaster
    }

    before(async () => {
      // About 2 s: redis-cli waits 1 s after its MEETs, and a new master turns ok no sooner than 2 s after start.
      cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 })
    })

    after(async () => {
      await cluster?.stop()
    })

    it('starts 3 masters with one replica each, serving all 16384 slots', async () => {
      const { nodes } = live()
      assert.equal(nodes.length, 6)
      assert.equal(nodes.filter((node) => node.role === 'master').length, 3)
      assert.ok(nodes.every((node) => node.alive && typeof node.pid === 'number'))
      const masters = await live().masters()
      assert.equal(masters.length, 3)
      const slots = masters.flatMap((master) => master.slots).reduce((sum, [first, last]) => sum + last - first + 1, 0)
      assert.equal(slots, 16384)
    })

    it('an ioredis Cluster client sets and gets keys in different slots, each on its own master', async () => {
      const client = await clusterClient()
      const keys = await keyPerMaster(client)
      assert.equal(keys.size, 3, 'one key for each master')
      assert.equal(new Set([...keys.values()].map(({ slot }) => slot)).size, 3, 'three different slots')
      for (const [port, { key }] of keys) {
        assert.equal(await client.set(key, `on ${port}`), 'OK')
        assert.equal(await client.get(key), `on ${port}`)
        // A plain connection to that master reads it without a MOVED: the key really lives there.
        const direct = redis({ port })
        assert.equal(await direct.get(key), `on ${port}`)
      }
    })

    it('killing a master promotes its replica; the client serves its slots again; the old master rejoins as a replica', async () => {
      const client = await clusterClient()
      const [port, entry] = [...(await keyPerMaster(client))][0] ?? []
      assert.ok(port !== undefined && entry)
      // Written on the master and acknowledged by its replica, so the promoted replica has it.
      const direct = redis({ port, maxRetriesPerRequest: 0 })
      await direct.set(entry.key, 'before failover')
      assert.equal(await direct.wait(1, 2000), 1, 'the replica acknowledged the write')
      direct.disconnect()

      await live().kill(port)
      const promoted = await live().waitForFailover(port)
      assert.notEqual(promoted.port, port)
      assert.ok(promoted.slots.some(([first, last]) => entry.slot >= first && entry.slot <= last), 'the new master owns the slot')
      assert.equal(live().nodes.find((node) => node.port === promoted.port)?.role, 'master')
      assert.equal(live().nodes.find((node) => node.port === port)?.alive, false)

      await eventually(async () => (await client.get(entry.key)) === 'before failover', 10_000, 'the client reading the key from the new master')
      await client.set(entry.key, 'after failover')
      assert.equal(await client.get(entry.key), 'after failover')

      await live().restart(port)
      assert.equal(live().nodes.find((node) => node.port === port)?.role, 'replica')
      assert.equal((await live().masters()).length, 3)
    })
  })

  describe('RedisSentinelGroup', function () {
    this.timeout(40_000)
    let group: RedisSentinelGroup | undefined

    function live(): RedisSentinelGroup {
      assert.ok(group, 'sentinel group started')
      return group
    }

    function sentinelClient(): Redis {
      return redis({ sentinels: live().sentinels, name: 'mymaster', sentinelRetryStrategy: () => 100 })
    }

    /** The port of the server a client is talking to, as that server reports it. */
    async function servedBy(client: Redis): Promise<number> {
      const info = String(await client.call('INFO', 'server'))
      return Number(/tcp_port:(\d+)/.exec(info)?.[1])
    }

    before(async () => {
      // About 2 s: mostly the sentinels finding each other through hello messages (every 2 s).
      group = await RedisSentinelGroup.start({ name: 'mymaster', downAfterMs: 1000, failoverTimeoutMs: 3000 })
    })

    after(async () => {
      await group?.stop()
    })

    it('an ioredis client with sentinels + name connects to the master', async () => {
      const client = sentinelClient()
      assert.equal(await client.set('harness:sentinel', 'hello'), 'OK')
      assert.equal(await client.get('harness:sentinel'), 'hello')
      assert.equal(await servedBy(client), await live().masterPort())
      assert.equal(live().sentinels.length, 3)
    })

    it('master killed: the sentinels promote the replica and the client follows', async () => {
      const client = sentinelClient()
      const oldPort = await live().masterPort()
      await client.set('harness:sentinel', 'before failover')
      assert.equal(await client.wait(1, 2000), 1, 'the replica acknowledged the write')

      await live().kill(oldPort)
      const newPort = await live().waitForNewMaster(oldPort)
      assert.notEqual(newPort, oldPort)
      assert.equal(await live().masterPort(), newPort)

      await eventually(async () => (await servedBy(client)) === newPort, 10_000, 'the client reconnecting to the new master')
      assert.equal(await client.get('harness:sentinel'), 'before failover')
      assert.equal(await client.set('harness:sentinel', 'after failover'), 'OK')
    })
  })

  describe('TLS', function () {
    let dir: string
    let certs: TestCertificates
    let serverOnly: RedisTlsServer | undefined
    let mutual: RedisTlsServer | undefined

    /** Connects once (no retry) and resolves with the first error, or undefined when the client got ready. */
    async function firstError(options: RedisOptions): Promise<(Error & { code?: string }) | undefined> {
      const client = redis({ ...options, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      const errored = new Promise<Error>((resolve) => client.once('error', resolve))
      try {
        await client.connect()
        // TLS 1.3: the client finishes its handshake before the server checks the certificate,
        // so a refusal arrives as an alert on the first read; a PING makes sure one happens.
        await client.ping()
        return undefined
      } catch {
        return settledWithin(errored, 2000).then((error) => (error === 'pending' ? new Error('closed without an error event') : error))
      }
    }

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'erk-certs-'))
      certs = await makeCertificates(dir)
      serverOnly = await RedisTlsServer.start({ mutual: false, certs })
      mutual = await RedisTlsServer.start({ mutual: true, certs })
    })

    after(async () => {
      await serverOnly?.stop()
      await mutual?.stop()
      rmSync(dir, { recursive: true, force: true })
    })

    it('server-only TLS: connects trusting the CA, by IP (IP subjectAltName) and with servername localhost', async () => {
      assert.ok(serverOnly)
      const byIp = redis({ port: serverOnly.port, tls: { ca: certs.ca.cert } })
      assert.equal(await byIp.ping(), 'PONG')
      const byName = redis({ port: serverOnly.port, tls: { ca: certs.ca.cert, servername: 'localhost' } })
      assert.equal(await byName.ping(), 'PONG')
      assert.deepEqual(serverOnly.tlsOptions(), { ca: certs.ca.cert })
    })

    it('server-only TLS: trusting the wrong CA fails with a certificate error', async () => {
      assert.ok(serverOnly)
      const error = await firstError({ port: serverOnly.port, tls: { ca: certs.otherCa.cert } })
      // Not UNABLE_TO_VERIFY_LEAF_SIGNATURE: OpenSSL in redis-server completes the chain it sends
      // from tls-ca-cert-file, so the client sees our (to it, unknown) self-signed CA in the chain.
      assert.equal(error?.code, 'SELF_SIGNED_CERT_IN_CHAIN', String(error))
    })

    it('mutual TLS: connects with the client certificate', async () => {
      assert.ok(mutual)
      const client = redis({ port: mutual.port, tls: mutual.tlsOptions() })
      assert.equal(await client.ping(), 'PONG')
    })

    it('mutual TLS: no client certificate, or one from another CA, is refused', async () => {
      assert.ok(mutual)
      // TLS 1.3 refuses a client certificate after the client's handshake is done: the client sees
      // the server's alert, or, when its first write (ioredis' INFO) races the server's close, a reset.
      const missing = await firstError({ port: mutual.port, tls: { ca: certs.ca.cert } })
      assert.ok(['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ECONNRESET', 'EPIPE'].includes(missing?.code ?? ''), String(missing))
      const foreign = await firstError({ port: mutual.port, tls: { ca: certs.ca.cert, cert: certs.otherClient.cert, key: certs.otherClient.key } })
      assert.ok(['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ECONNRESET', 'EPIPE'].includes(foreign?.code ?? ''), String(foreign))
    })

    it('pause hangs the TLS server, resume brings it back', async () => {
      assert.ok(serverOnly)
      const client = redis({ port: serverOnly.port, tls: serverOnly.tlsOptions() })
      assert.equal(await client.ping(), 'PONG')
      serverOnly.pause()
      try {
        const reply = client.ping()
        assert.equal(await settledWithin(reply, 300), 'pending', 'no answer while paused')
        serverOnly.resume()
        assert.equal(await reply, 'PONG')
      } finally {
        serverOnly.resume()
      }
    })
  })

  describe('ACL users', function () {
    let server: RedisServer | undefined
    let admin: Redis

    function as(user: { name: string; password: string }): Redis {
      assert.ok(server)
      return redis({ port: server.port, username: user.name, password: user.password })
    }

    before(async () => {
      server = await RedisServer.start()
    })

    beforeEach(() => {
      assert.ok(server)
      admin = redis({ port: server.port })
    })

    after(async () => {
      await server?.stop()
    })

    it('a prefix-limited user reaches its prefix only', async () => {
      const user = await createAclUser(admin, prefixLimitedUser('app:'))
      const client = as(user)
      assert.equal(await client.set('app:greeting', 'hi'), 'OK')
      assert.equal(await client.get('app:greeting'), 'hi')
      await assert.rejects(client.get('other:greeting'), /NOPERM/)
      await assert.rejects(client.flushall(), /NOPERM/)
      await deleteAclUsers(admin, user.name)
    })

    it('a user without @scripting gets NOPERM for EVAL, and may use every key', async () => {
      const user = await createAclUser(admin, noScriptingUser())
      const client = as(user)
      assert.equal(await client.set('any:key', '1'), 'OK')
      await assert.rejects(client.eval('return 1', 0), /NOPERM/)
      await deleteAclUsers(admin, user.name)
    })

    it('a user denied some keys: read-write where granted, read-only where granted so, NOPERM elsewhere', async () => {
      await admin.set('config:flag', 'on')
      const user = await createAclUser(admin, restrictedKeysUser(['cache:*'], ['config:*']))
      const client = as(user)
      assert.equal(await client.set('cache:a', '1'), 'OK')
      assert.equal(await client.get('config:flag'), 'on')
      await assert.rejects(client.set('config:flag', 'off'), /NOPERM/)
      await assert.rejects(client.incr('rl:a'), /NOPERM/)
      await deleteAclUsers(admin, user.name)
    })
  })

  describe('LatencyProxy', function () {
    let server: RedisServer | undefined
    let proxy: LatencyProxy | undefined

    function live(): LatencyProxy {
      assert.ok(proxy, 'proxy started')
      return proxy
    }

    before(async () => {
      server = await RedisServer.start()
      proxy = await LatencyProxy.start(server.port)
    })

    afterEach(() => {
      // Each test leaves the proxy as it found it, even when an assertion failed midway.
      proxy?.resume()
      proxy?.setLatency(0)
    })

    after(async () => {
      await proxy?.stop()
      await server?.stop()
    })

    it('passes traffic through by default', async () => {
      const client = redis({ port: live().port })
      assert.equal(await client.ping(), 'PONG')
      assert.equal(live().connections, 1)
    })

    it('adds at least the configured delay to every reply and keeps pipelined replies in order', async () => {
      const client = redis({ port: live().port })
      await client.ping()
      live().setLatency(200)
      for (let i = 0; i < 3; i++) {
        const started = performance.now()
        assert.equal(await client.ping(), 'PONG')
        const ms = performance.now() - started
        assert.ok(ms >= 200, `PING took ${ms.toFixed(1)} ms, at least the 200 ms latency`)
      }
      await client.del('harness:counter')
      const replies = await Promise.all(Array.from({ length: 50 }, () => client.incr('harness:counter')))
      assert.deepEqual(replies, Array.from({ length: 50 }, (_, i) => i + 1))
      live().setLatency(0)
      assert.equal(await client.ping(), 'PONG')
    })

    it('pause makes a PING go unanswered on an open socket; resume delivers the reply', async () => {
      const client = redis({ port: live().port })
      await client.ping()
      live().pause()
      const reply = client.ping()
      assert.equal(await settledWithin(reply, 300), 'pending', 'no answer while paused')
      assert.equal(client.status, 'ready', 'the socket stays open: a hang, not a disconnect')
      live().resume()
      assert.equal(await reply, 'PONG')
    })

    it('cutAll drops every connection; the client reconnects through the proxy', async () => {
      const client = redis({ port: live().port })
      await client.ping()
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      live().cutAll()
      await closed
      await eventually(async () => (await client.ping()) === 'PONG', 5000, 'the client reconnecting')
    })
  })
})
