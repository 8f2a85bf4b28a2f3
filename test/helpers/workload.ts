/**
 * A concurrent workload that remembers exactly what the kit acknowledged, so a fault test can
 * compare it with what Redis holds afterwards:
 *
 * - client loops: each owns a counter (increments), a value (sets) and a key it sets and deletes;
 * - HTTP loops through kit.session(), kit.rateLimit() and kit.cache(): logins, reads, logouts,
 *   counted requests and cached pages.
 *
 * Increments and rate-limit hits whose outcome the kit reports as in doubt (its `inDoubt` event:
 * sent when the connection failed) are the only writes allowed to differ, and only by that amount.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import express, { type NextFunction, type Request, type Response } from 'express'
import type { Cluster, Redis } from 'ioredis'
import type { InDoubtWrite, Kit } from '../../lib/index.js'
import { eventually } from './kit.js'
import { TEST_SECRET } from './session-app.js'

export interface WorkloadOptions {
  clientLoops: number
  httpLoops: number
}

interface ClientTally {
  increments: number
  value: number | undefined
  /** The last acknowledged write of the set-and-delete key: its value, or null once deleted. */
  toggled: number | null | undefined
}

interface HttpTally {
  /** Session ids this loop logged into and has not logged out of, with their user. */
  live: Map<string, string>
  /** Session ids this loop logged out of. */
  ended: Set<string>
  hits: number
}

export interface WorkloadResult {
  failures: unknown[]
  calls: number
  requests: number
  inDoubt: InDoubtWrite[]
  /** The longest one client call waited for its answer, in ms. */
  slowestCallMs: number
  /** The longest one HTTP request waited for its status and headers, in ms. */
  slowestRequestMs: number
}

/** The real clock, bound before a test can fake the kit's (helpers/clock.ts). */
const realNow: () => number = performance.now.bind(performance)

/** An app with every feature, for the HTTP loops. */
function appFor(kit: Kit): express.Express {
  const app = express()
  app.use(kit.session({ secret: TEST_SECRET }))
  const limiter = kit.rateLimit({ name: 'load', windowMs: 600_000, limit: 1_000_000, keyGenerator: (req) => String(req.headers['x-client']) })
  app.post('/login', (req, res) => { req.session.user = typeof req.query.user === 'string' ? req.query.user : ''; res.json({ sid: req.sessionID }) })
  app.get('/me', (req, res) => { res.status(req.session.user ? 200 : 401).json({ user: req.session.user ?? null }) })
  app.post('/logout', (req, res, next) => { req.session.destroy((error) => { if (error) next(error); else res.json({ ok: true }) }) })
  app.get('/limited', limiter, (_req, res) => { res.json({ ok: true }) })
  app.get('/page/:n', kit.cache({ ttl: 60 }), (req, res) => { res.json({ page: req.params.n, at: Date.now() }) })
  app.post('/page/:n/invalidate', async (req, res, next) => {
    try { await kit.invalidate({ key: `/page/${req.params.n}` }); res.json({ ok: true }) } catch (error) { next(error) }
  })
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => { res.status(500).json({ error: String(error) }) })
  return app
}

export class Workload {
  private running = false
  private readonly clients: ClientTally[] = []
  private readonly http: HttpTally[] = []
  private readonly failures: unknown[] = []
  private readonly inDoubt: InDoubtWrite[] = []
  private calls = 0
  private requests = 0
  private slowestCallMs = 0
  private slowestRequestMs = 0
  private loops: Promise<void>[] = []
  private server: Server | undefined
  private base = ''
  private readonly onDoubt = (write: InDoubtWrite): void => { this.inDoubt.push(write) }

  constructor(private readonly kit: Kit, private readonly options: WorkloadOptions, private readonly tag = 'w') {}

  async start(): Promise<void> {
    this.kit.on('inDoubt', this.onDoubt)
    if (this.options.httpLoops > 0) {
      const server = appFor(this.kit).listen(0, '127.0.0.1')
      await new Promise((resolve) => server.once('listening', resolve))
      this.server = server
      this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    }
    this.running = true
    for (let i = 0; i < this.options.clientLoops; i++) {
      const tally: ClientTally = { increments: 0, value: undefined, toggled: undefined }
      this.clients.push(tally)
      this.loops.push(this.clientLoop(i, tally))
    }
    for (let i = 0; i < this.options.httpLoops; i++) {
      const tally: HttpTally = { live: new Map(), ended: new Set(), hits: 0 }
      this.http.push(tally)
      this.loops.push(this.httpLoop(i, tally))
    }
  }

  /**
   * Resolves once the load has made at least `calls` more client calls and `requests` more HTTP
   * requests than when called: it is running (on Redis or memory, whichever serves now).
   */
  async advance(calls: number, requests: number, ms = 10_000): Promise<void> {
    const from = { calls: this.calls, requests: this.requests }
    await eventually(() => this.calls - from.calls >= calls && this.requests - from.requests >= requests, ms,
      `${calls} more calls and ${requests} more requests (made ${this.calls - from.calls} and ${this.requests - from.requests})`)
  }

  async stop(): Promise<WorkloadResult> {
    this.running = false
    await Promise.all(this.loops)
    this.kit.off('inDoubt', this.onDoubt)
    await new Promise<void>((resolve) => { if (this.server) this.server.close(() => resolve()); else resolve() })
    return {
      failures: this.failures, calls: this.calls, requests: this.requests, inDoubt: this.inDoubt,
      slowestCallMs: this.slowestCallMs, slowestRequestMs: this.slowestRequestMs,
    }
  }

  /** Awaits one client call, keeping the longest wait. */
  private async timedCall<T>(call: Promise<T>, started = realNow()): Promise<T> {
    const value = await call
    this.slowestCallMs = Math.max(this.slowestCallMs, realNow() - started)
    return value
  }

  private async clientLoop(i: number, tally: ClientTally): Promise<void> {
    const client = this.kit.client
    for (let n = 1; this.running; n++) {
      try {
        await this.timedCall(client.increment(`${this.tag}:c:${i}`))
        tally.increments += 1
        await this.timedCall(client.set(`${this.tag}:s:${i}`, n, 3600))
        tally.value = n
        if (n % 2 === 0) {
          await this.timedCall(client.set(`${this.tag}:d:${i}`, n, 3600))
          tally.toggled = n
        } else {
          await this.timedCall(client.delete(`${this.tag}:d:${i}`))
          tally.toggled = null
        }
        this.calls += 4
      } catch (error) {
        this.failures.push(error)
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private async send(method: string, path: string, headers: Record<string, string> = {}): Promise<globalThis.Response> {
    const started = realNow()
    const res = await fetch(`${this.base}${path}`, { method, headers })
    // Until the status and headers arrived: the app answers only once every kit call has.
    this.slowestRequestMs = Math.max(this.slowestRequestMs, realNow() - started)
    this.requests += 1
    if (res.status >= 400 && !(path === '/me' && res.status === 401)) this.failures.push(new Error(`${method} ${path} answered ${res.status}: ${await res.text()}`))
    return res
  }

  private async httpLoop(i: number, tally: HttpTally): Promise<void> {
    const user = `${this.tag}-u${i}`
    let cookie: string | undefined
    let sid: string | undefined
    for (let n = 1; this.running; n++) {
      try {
        if (cookie === undefined) {
          const res = await this.send('POST', `/login?user=${user}`)
          const set = res.headers.get('set-cookie')
          if (res.ok && set) {
            cookie = set.split(';')[0]
            sid = ((await res.json()) as { sid: string }).sid
            tally.live.set(sid, user)
          }
        } else if (n % 7 === 0) {
          const res = await this.send('POST', '/logout', { cookie })
          if (res.ok && sid) { tally.live.delete(sid); tally.ended.add(sid) }
          await res.arrayBuffer()
          cookie = undefined
        } else {
          const res = await this.send('GET', '/me', { cookie })
          const body = await res.json() as { user: string | null }
          if (body.user !== user) this.failures.push(new Error(`${user} was logged out: /me answered ${res.status} ${JSON.stringify(body)}`))
        }
        const limited = await this.send('GET', '/limited', { 'x-client': `${this.tag}-${i}` })
        if (limited.ok) tally.hits += 1
        await limited.arrayBuffer()
        await (await this.send('GET', `/page/${n % 5}`)).arrayBuffer()
        if (n % 11 === 0) await (await this.send('POST', `/page/${n % 5}/invalidate`)).arrayBuffer()
      } catch (error) {
        this.failures.push(error)
      }
    }
  }

  /** Asserts Redis holds exactly what was acknowledged (in-doubt increments and hits excepted, by their amount). */
  async verify(redis: Redis | Cluster, keyPrefix = ''): Promise<{ inDoubt: number }> {
    const doubt = new Map<string, number>()
    for (const write of this.inDoubt) doubt.set(write.key, (doubt.get(write.key) ?? 0) + Math.abs(write.amount))
    for (const [i, tally] of this.clients.entries()) {
      const counter = `${keyPrefix}${this.tag}:c:${i}`
      const inRedis = Number(await redis.get(counter) ?? 0)
      const slack = doubt.get(counter) ?? 0
      assert.ok(inRedis <= tally.increments && inRedis >= tally.increments - slack,
        `${counter}: Redis holds ${inRedis}, the kit acknowledged ${tally.increments} (in doubt: ${slack})`)
      if (tally.value !== undefined) assert.equal(await redis.get(`${keyPrefix}${this.tag}:s:${i}`), String(tally.value), `${this.tag}:s:${i}`)
      if (tally.toggled !== undefined) {
        assert.equal(await redis.get(`${keyPrefix}${this.tag}:d:${i}`), tally.toggled === null ? null : String(tally.toggled), `${this.tag}:d:${i}`)
      }
    }
    for (const [i, tally] of this.http.entries()) {
      for (const [sid, user] of tally.live) {
        const raw = await redis.get(`${keyPrefix}session:${sid}`)
        assert.ok(raw, `the live session of ${user} (${sid}) is in Redis`)
        assert.equal((JSON.parse(raw) as { user?: string }).user, user)
      }
      for (const sid of tally.ended) assert.equal(await redis.exists(`${keyPrefix}session:${sid}`), 0, `logged-out session ${sid} stays gone`)
      const key = `${keyPrefix}rate:load:${this.tag}-${i}`
      const hits = Number(await redis.get(key) ?? 0)
      const slack = doubt.get(key) ?? 0
      assert.ok(hits <= tally.hits && hits >= tally.hits - slack, `${key}: Redis counted ${hits}, the kit acknowledged ${tally.hits} (in doubt: ${slack})`)
    }
    return { inDoubt: this.inDoubt.length }
  }
}
