/** Behaviour only a separate process shows: the exports map, exiting by itself, stray error output. */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, RedisServer } from '../helpers/redis-server.js'

const root = join(__dirname, '..', '..')
const fixture = (name: string) => join(root, 'test', 'fixtures', name)

/** Runs node on a fixture; resolves its output and exit code, or rejects if it does not exit by itself. */
function run(file: string, env: Record<string, string>, limitMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${file} did not exit by itself; stdout: ${stdout}; stderr: ${stderr}`)) }, limitMs)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

describe('built package', () => {
  before(function () {
    this.timeout(120_000)
    if (!existsSync(join(root, 'dist', 'cjs', 'index.js')) || !existsSync(join(root, 'dist', 'esm', 'index.js'))) {
      execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' })
    }
  })

  it('is importable with import (ESM) through the exports map', async () => {
    const { code, stdout, stderr } = await run(fixture('exports.mjs'), {})
    assert.equal(code, 0, stderr)
    assert.deepEqual(JSON.parse(stdout), { value: 'esm', state: 'disabled', kitError: 'function' })
  })

  it('is requirable with require (CommonJS) through the exports map', async () => {
    const { code, stdout, stderr } = await run(fixture('exports.cjs'), {})
    assert.equal(code, 0, stderr)
    assert.deepEqual(JSON.parse(stdout), { value: 'cjs', state: 'disabled', kitError: 'function' })
  })

  it('a process that created a kit and closed it exits by itself (Redis up)', async () => {
    const server = await RedisServer.start()
    try {
      const { code, stdout, stderr } = await run(fixture('create-and-close.mjs'), { REDIS_URL: server.url })
      assert.equal(code, 0, stderr)
      assert.match(stdout, /state=ready/)
    } finally {
      await server.stop()
    }
  })

  it('a process whose Redis is unreachable exits by itself after close, with no "Unhandled error event"', async () => {
    const port = await freePort()
    const { code, stdout, stderr } = await run(fixture('create-and-close.mjs'), { REDIS_URL: `redis://127.0.0.1:${port}` })
    assert.equal(code, 0, stderr)
    assert.match(stdout, /state=degraded/)
    assert.doesNotMatch(stdout + stderr, /Unhandled error event/)
    assert.equal(stderr.trim().split('\n').filter(Boolean).length, 1, `one log line for the state change, got: ${stderr}`)
  })
})
