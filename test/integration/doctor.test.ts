/** The doctor CLI, run as a subprocess of the BUILT package against real servers. */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, RedisServer } from '../helpers/redis-server.js'

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

describe('doctor CLI', () => {
  before(function () {
    this.timeout(120_000)
    if (!existsSync(cli)) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
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
})
