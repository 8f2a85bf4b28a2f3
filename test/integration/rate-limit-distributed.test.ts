/**
 * Two real app processes (test/helpers/rate-limit-child.ts) on one redis-server enforce ONE limit
 * between them; during an outage each enforces its share, and both write their hits back.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import type { Redis } from 'ioredis'
import type { KitState } from '../../lib/index.js'
import { eventually } from '../helpers/kit.js'
import { hit, tally } from '../helpers/rate-limit-app.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

interface AppProcess {
  child: ChildProcess
  url: string
  states: KitState[]
  waitFor(state: KitState, ms?: number): Promise<void>
}

async function spawnApp(env: Record<string, string>): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/rate-limit-child.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const states: KitState[] = []
  const waiters: (() => void)[] = []
  let resolveUrl: (url: string) => void = () => {}
  const url = new Promise<string>((resolve) => { resolveUrl = resolve })
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as { url?: string; state: KitState }
    states.push(message.state)
    if (message.url) resolveUrl(message.url)
    for (const waiter of waiters.splice(0)) waiter()
  })
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`app process exited early (${String(code)})`) })
  const app: AppProcess = {
    child,
    url: await Promise.race([url, exited]),
    states,
    waitFor(state, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`app did not reach ${state} (states: ${states.join(', ')})`)), ms)
        const check = (): void => {
          if (states.at(-1) === state) { clearTimeout(timer); resolve() } else waiters.push(check)
        }
        check()
      })
    },
  }
  exited.catch(() => {})
  return app
}

async function stopApp(app: AppProcess | undefined): Promise<void> {
  if (!app || app.child.exitCode !== null || app.child.signalCode !== null) return
  const exited = once(app.child, 'exit')
  app.child.kill('SIGTERM')
  await exited
}

/** `count` requests as one client, spread over the apps in turn, `parallel` at a time. */
async function spread(apps: readonly AppProcess[], client: string, count: number, parallel = 8): Promise<{ statuses: number[]; ok: number[] }> {
  const statuses: number[] = []
  const ok = apps.map(() => 0)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++ % apps.length
      const { status } = await hit(apps[index]!.url, client)
      statuses.push(status)
      if (status === 200) ok[index]!++
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  return { statuses, ok }
}

describe('kit.rateLimit() across two app processes', function () {
  this.timeout(60_000)
  let redis: RedisServer
  let inspect: Redis
  let apps: AppProcess[] = []

  before(async () => {
    redis = await RedisServer.start()
    inspect = testClient(redis, { maxRetriesPerRequest: 1 })
  })

  afterEach(async () => {
    await Promise.all(apps.map(stopApp))
    apps = []
    if (!redis.pid) await redis.start()
    await inspect.flushall()
  })

  after(async () => {
    inspect.disconnect()
    await redis.stop()
  })

  it('share one limit: 50 allowed in total, not 50 each', async () => {
    apps = await Promise.all([0, 1].map(() => spawnApp({ RL_REDIS_URL: redis.url, RL_LIMIT: '50' })))
    assert.deepEqual(apps.map((a) => a.states[0]), ['ready', 'ready'])
    const { statuses, ok } = await spread(apps, 'walter', 150)
    assert.deepEqual(tally(statuses), { 200: 50, 429: 100 })
    assert.ok(ok[0]! > 0 && ok[1]! > 0, `each process allowed some requests (${ok.join(' + ')})`)
    assert.equal(await inspect.get('rate:shared:walter'), '150')
  })

  it('during an outage each of 2 instances allows its share, and both write their hits back', async () => {
    apps = await Promise.all([0, 1].map(() => spawnApp({ RL_REDIS_URL: redis.url, RL_LIMIT: '10', RL_INSTANCES: '2' })))
    await redis.kill()
    await Promise.all(apps.map((a) => a.waitFor('degraded')))
    const { statuses, ok } = await spread(apps, 'xavier', 30)
    assert.deepEqual(tally(statuses), { 200: 10, 429: 20 })
    assert.deepEqual(ok, [5, 5])
    await redis.start()
    await Promise.all(apps.map((a) => a.waitFor('ready')))
    // Each process reports 'ready' as soon as its replay is written; the replies follow.
    let count: string | null = null
    await eventually(async () => (count = await inspect.get('rate:shared:xavier')) === '30', 5000, 'rate:shared:xavier at 30')
    assert.equal(count, '30')
    const after = await spread(apps, 'xavier', 4)
    assert.deepEqual(tally(after.statuses), { 429: 4 })
  })
})
