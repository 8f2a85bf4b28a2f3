/** The doctor CLI, run as a subprocess of the BUILT package against real servers. */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { createAclUser, noScriptingUser, type AclUser } from '../helpers/acl.js'
import { RedisCluster } from '../helpers/cluster.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'
import { RedisSentinelGroup } from '../helpers/sentinel.js'
import { makeCertificates, RedisTlsServer, type TestCertificates } from '../helpers/tls.js'

const root = join(__dirname, '..', '..')
const cli = join(root, 'dist', 'cjs', 'doctor', 'cli.js')

function doctor(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'doctor', ...args], { env: { PATH: process.env.PATH ?? '', ...env } })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`doctor did not exit: ${out}`)) }, 15_000)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }) })
  })
}

/** The newest modification time of the files under `dir`. */
function newest(dir: string): number {
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? newest(path) : statSync(path).mtimeMs
  }))
}

describe('doctor CLI', () => {
  before(function () {
    this.timeout(120_000)
    // The built CLI is what users run: rebuild it when lib/ changed since the last build.
    if (!existsSync(cli) || statSync(cli).mtimeMs < newest(join(root, 'lib'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
  })

  it('reports a healthy server: PING latency, version, TLS off, memory, exit 0', async () => {
    const server = await RedisServer.start()
    try {
      const { code, out } = await doctor([], { REDIS_URL: server.url })
      assert.equal(code, 0, out)
      assert.match(out, /ping\s+\d+\.\d+ ms/)
      assert.match(out, /server\s+Redis \d+\.\d+\.\d+/)
      assert.match(out, /tls\s+off/)
      assert.match(out, /used_memory_human/)
      assert.match(out, /^OK$/m)
    } finally {
      await server.stop()
    }
  })

  it('prints JSON with --json', async () => {
    const server = await RedisServer.start()
    try {
      const { code, out } = await doctor(['--url', server.url, '--json'])
      assert.equal(code, 0, out)
      const report = JSON.parse(out) as { ok: boolean; pingMs: number; server: { version: string } }
      assert.equal(report.ok, true)
      assert.equal(typeof report.pingMs, 'number')
    } finally {
      await server.stop()
    }
  })

  it('explains a refused connection and exits 1', async () => {
    const port = await freePort()
    const { code, out } = await doctor(['--url', `redis://127.0.0.1:${port}`])
    assert.equal(code, 1, out)
    assert.match(out, /Nothing accepts connections on 127\.0\.0\.1:\d+/)
  })

  it('explains a wrong password without printing it, and exits 1', async () => {
    const server = await RedisServer.start({ password: 'the-real-one' })
    try {
      const { code, out } = await doctor([], { REDIS_URL: server.url, REDIS_PASSWORD: 'not-the-password' })
      assert.equal(code, 1, out)
      assert.match(out, /Authentication failed/)
      assert.match(out, /password\s+set/)
      assert.ok(!out.includes('not-the-password') && !out.includes('the-real-one'), out)
    } finally {
      await server.stop()
    }
  })

  it('explains a missing password', async () => {
    const server = await RedisServer.start({ password: 'needed' })
    try {
      const { code, out } = await doctor(['--url', server.url])
      assert.equal(code, 1, out)
      assert.match(out, /requires a password and none was sent/)
    } finally {
      await server.stop()
    }
  })

  it('explains a database index the server does not have', async () => {
    const server = await RedisServer.start()
    try {
      const { code, out } = await doctor(['--url', server.url, '--db', '99'])
      assert.equal(code, 1, out)
      assert.match(out, /Database 99 does not exist/)
    } finally {
      await server.stop()
    }
  })

  it('explains a TLS mismatch (rediss:// against a plain server)', async () => {
    const server = await RedisServer.start()
    try {
      const { code, out } = await doctor(['--url', `rediss://127.0.0.1:${server.port}`, '--timeout', '1000'])
      assert.equal(code, 1, out)
      assert.match(out, /TLS handshake failed/)
      assert.match(out, /tls\s+on/)
    } finally {
      await server.stop()
    }
  })

  it('rejects bad configuration with exit 2 and the option named', async () => {
    const { code, out } = await doctor([], { REDIS_DB: 'abc' })
    assert.equal(code, 2)
    assert.match(out, /REDIS_DB is `abc`/)
  })

  it('prints the slowest SLOWLOG entries first, with every argument hidden', async () => {
    const server = await RedisServer.start({ debug: true })
    const redis = testClient(server)
    try {
      await redis.config('SET', 'slowlog-log-slower-than', '0')
      await redis.set('dr:api-token', 'tok_live_4f9a8b7c6d5e')
      await redis.set('session:abc', JSON.stringify({ user: 'alice', email: 'alice@example.com' }), 'EX', 60)
      await redis.call('DEBUG', 'SLEEP', '0.05')
      for (let i = 0; i < 20; i++) await redis.mget('a', 'b', 'c', `k${i}`)
      const { code, out } = await doctor(['--url', server.url])
      assert.equal(code, 0, out)
      const listed = out.split('\n').filter((line) => /^ {4}#\d+ \d+ µs/.test(line))
      assert.equal(listed.length, 5, out)
      assert.match(listed[0] ?? '', /µs {2}debug sleep <value>$/, 'the slowest entry first, though it is not the most recent')
      const durations = listed.map((line) => Number(/#\d+ (\d+) µs/.exec(line)?.[1]))
      assert.deepEqual(durations, [...durations].sort((a, b) => b - a), 'slowest first')
      const { out: json } = await doctor(['--url', server.url, '--json'])
      const report = JSON.parse(json) as { slowlog: { command: string }[] }
      assert.ok(report.slowlog.length > 0)
      for (const text of [out, json]) {
        assert.ok(!text.includes('tok_live') && !text.includes('dr:api-token') && !text.includes('alice'), text)
      }
      await redis.call('SLOWLOG', 'RESET')
      await redis.set('dr:api-token', 'tok_live_4f9a8b7c6d5e')
      await redis.set('session:abc', '{"user":"alice"}', 'EX', 60)
      await redis.mget('a', 'b', 'c')
      await redis.config('SET', 'slowlog-log-slower-than', '1000000') // the doctor's own commands stay out
      const fresh = await doctor(['--url', server.url])
      assert.match(fresh.out, /µs {2}set <key> <value>$/m)
      assert.match(fresh.out, /µs {2}set <key> <3 values>$/m)
      assert.match(fresh.out, /µs {2}mget <3 keys>$/m)
    } finally {
      redis.disconnect()
      await server.stop()
    }
  })

  describe('ACL users', () => {
    let server: RedisServer
    let admin: Redis

    before(async () => {
      server = await RedisServer.start()
      admin = testClient(server)
    })

    after(async () => {
      admin.disconnect()
      await server.stop()
    })

    function as(user: AclUser, args: string[] = []): Promise<{ code: number | null; out: string }> {
      return doctor(args, { REDIS_URL: server.url, REDIS_USERNAME: user.name, REDIS_PASSWORD: user.password })
    }

    it('a user without INFO, CONFIG and SLOWLOG (an app user the kit works with): says "not allowed" and exits 0', async () => {
      const user = await createAclUser(admin, { name: 'app', password: 'app-password', keys: ['app:*'], commands: ['+@all', '-@dangerous'] })
      const { code, out } = await as(user, ['--key-prefix', 'app:'])
      assert.equal(code, 0, out)
      assert.match(out, /not allowed for this user: INFO, CONFIG GET, SLOWLOG/)
      assert.match(out, /The kit does not need them/)
      assert.match(out, /rights\s+every feature/)
      assert.match(out, /user\s+app/)
      assert.ok(!out.includes('app-password'), out)
      assert.ok(!out.includes('Skipping the ready check'), 'no ioredis warning in the report')
    })

    it('the same user without --key-prefix: names the keys it may not use and suggests --key-prefix', async () => {
      const user = await createAclUser(admin, { name: 'app', password: 'app-password', keys: ['app:*'], commands: ['+@all', '-@dangerous'] })
      const { code, out } = await as(user)
      assert.equal(code, 1, out)
      assert.match(out, /run the doctor with --key-prefix/)
    })

    it('a user without @scripting: names EVAL, EVALSHA and SCRIPT LOAD, the features that need them, and exits 1', async () => {
      const { code, out } = await as(await createAclUser(admin, noScriptingUser()))
      assert.equal(code, 1, out)
      assert.match(out, /may not run EVAL, EVALSHA \(needed by kit\.client and the outage journal of every feature\); run SCRIPT LOAD \(needed by kit\.rateLimit\(\)\)/)
      assert.match(out, /Grant the kit's ACL/)
    })
  })

  describe('TLS', () => {
    let certs: TestCertificates
    let server: RedisTlsServer

    before(async function () {
      this.timeout(60_000)
      certs = await makeCertificates(mkdtempSync(join(tmpdir(), 'erk-doctor-certs-')))
      server = await RedisTlsServer.start({ mutual: true, certs })
    })

    after(async () => {
      await server?.stop()
      if (certs) rmSync(certs.dir, { recursive: true, force: true })
    })

    it('mutual TLS configured with the files: OK over TLS', async () => {
      const { code, out } = await doctor([], { REDIS_URL: server.url, REDIS_TLS_CA_FILE: certs.ca.certPath, REDIS_TLS_CERT_FILE: certs.client.certPath, REDIS_TLS_KEY_FILE: certs.client.keyPath })
      assert.equal(code, 0, out)
      assert.match(out, /answers in \d+\.\d+ ms over TLS; the kit will use it/)
    })

    it('a CA the kit does not trust: names the certificate problem and REDIS_TLS_CA_FILE', async () => {
      const { code, out } = await doctor([], { REDIS_URL: server.url })
      assert.equal(code, 1, out)
      assert.match(out, /TLS handshake failed with 127\.0\.0\.1:\d+: the server's certificate is signed by a CA the kit does not trust: set REDIS_TLS_CA_FILE/)
    })

    it('no client certificate for a server that requires one: says so, not "does not speak TLS"', async () => {
      const { code, out } = await doctor([], { REDIS_URL: server.url, REDIS_TLS_CA_FILE: certs.ca.certPath })
      assert.equal(code, 1, out)
      assert.match(out, /requires a client certificate .*set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE/)
      assert.ok(!out.includes('does not speak TLS'), out)
    })
  })

  describe('Sentinel', () => {
    let group: RedisSentinelGroup

    before(async function () {
      this.timeout(60_000)
      group = await RedisSentinelGroup.start()
    })

    after(async () => {
      await group?.stop()
    })

    const sentinels = (): string => group.sentinels.map((s) => `${s.host}:${s.port}`).join(',')

    it('REDIS_SENTINELS: shows each sentinel\'s view of the master, checks the master, exit 0', async () => {
      const master = await group.masterPort()
      const { code, out } = await doctor([], { REDIS_SENTINELS: sentinels(), REDIS_SENTINEL_NAME: group.name })
      assert.equal(code, 0, out)
      assert.match(out, /topology\s+sentinel/)
      assert.equal(out.match(new RegExp(`sentinel {2}127\\.0\\.0\\.1:\\d+ {2}master 127\\.0\\.0\\.1:${master}`, 'g'))?.length, 3, out)
      assert.match(out, new RegExp(`The sentinels name 127\\.0\\.0\\.1:${master} as the master of 'mymaster'`))
      assert.match(out, /server\s+Redis [\d.]+ \(standalone, master\)/)
    })

    it('a name no sentinel monitors: lists the names they do, exit 1', async () => {
      const { code, out } = await doctor([], { REDIS_SENTINELS: sentinels(), REDIS_SENTINEL_NAME: 'nope' })
      assert.equal(code, 1, out)
      assert.match(out, /No sentinel knows a master named 'nope' \(they monitor 'mymaster'\): set REDIS_SENTINEL_NAME/)
    })

    it('REDIS_URL pointing at a sentinel: says it is a Sentinel and what to set, exit 1', async () => {
      const port = group.sentinels[0]?.port
      const { code, out } = await doctor(['--url', `redis://127.0.0.1:${port}`])
      assert.equal(code, 1, out)
      assert.match(out, new RegExp(`is a Redis Sentinel, not a data server \\(it monitors 'mymaster' at 127\\.0\\.0\\.1:\\d+\\): configure REDIS_SENTINELS=127\\.0\\.0\\.1:${port} and REDIS_SENTINEL_NAME=mymaster`))
    })

    it('REDIS_URL pointing at the replica: says it is a read-only replica of the master, exit 1', async () => {
      const master = await group.masterPort()
      const replica = group.nodes.find((node) => node.kind === 'redis' && node.port !== master)
      const { code, out } = await doctor(['--url', `redis://127.0.0.1:${replica?.port}`])
      assert.equal(code, 1, out)
      assert.match(out, new RegExp(`is a read-only replica of 127\\.0\\.0\\.1:${master}: point REDIS_URL at the master`))
      assert.match(out, /server\s+Redis [\d.]+ \(standalone, replica\)/)
    })
  })

  describe('Cluster', () => {
    let cluster: RedisCluster

    before(async function () {
      this.timeout(60_000)
      cluster = await RedisCluster.start({ replicasPerMaster: 0 })
    })

    after(async () => {
      await cluster?.stop()
    })

    it('REDIS_CLUSTER_NODES: checks every master and the cluster state, exit 0', async () => {
      const nodes = cluster.startupNodes.map((n) => `${n.host}:${n.port}`).join(',')
      const { code, out } = await doctor([], { REDIS_CLUSTER_NODES: nodes })
      assert.equal(code, 0, out)
      assert.equal(out.match(/ {2}master {4}127\.0\.0\.1:\d+ {2}\d+\.\d+ ms {2}Redis /g)?.length, 3, out)
      assert.match(out, /cluster_state:ok/)
      assert.match(out, /all 3 masters answer/)
    })

    it('REDIS_URL pointing at a cluster node: says it is a Cluster node and to set REDIS_CLUSTER_NODES, exit 1', async () => {
      const port = cluster.startupNodes[0]?.port
      const { code, out } = await doctor(['--url', `redis://127.0.0.1:${port}`])
      assert.equal(code, 1, out)
      assert.match(out, new RegExp(`is a Redis Cluster node: configure REDIS_CLUSTER_NODES=127\\.0\\.0\\.1:${port}`))
    })
  })
})
