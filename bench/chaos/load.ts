/**
 * The load side of the chaos benchmark, run in the orchestrator process: autocannon (programmatic
 * API) recording every response, timeout and socket error with its time, plus a health poller on
 * its own keep-alive agent. Times are `performance.now()` milliseconds.
 */
import { Agent, request as httpRequest } from 'node:http'

export type Route = 'scan' | 'visits' | 'me'

/** One request's outcome. `start` is derived: completion time minus latency. */
export interface Sample {
  readonly start: number
  readonly end: number
  readonly latencyMs: number
  /** HTTP status; 0 for a socket error or a request autocannon gave up on. */
  readonly status: number
  /** 'timeout': answered later than the client timeout (a real client would have given up). */
  readonly kind: 'response' | 'timeout' | 'error'
  readonly route: Route | 'unknown'
  /** The latency is a lower bound: autocannon's backstop timeout fired, no answer was seen. */
  readonly censored?: boolean
  readonly error?: string
}

export interface HttpResult {
  readonly status: number
  readonly body: unknown
  readonly headers: Record<string, string | string[] | undefined>
}

function send(port: number, method: string, path: string, timeoutMs: number,
  options: { body?: string; headers?: Record<string, string>; agent?: Agent } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1', port, path, method, agent: options.agent,
      headers: { ...options.headers, ...(options.body ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        clearTimeout(timer)
        let body: unknown = text
        try { body = JSON.parse(text) } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers })
      })
      res.on('error', reject)
    })
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    req.on('error', (error) => { clearTimeout(timer); reject(error) })
    req.end(options.body)
  })
}

export function getJson(port: number, path: string, timeoutMs: number, agent?: Agent, cookie?: string): Promise<HttpResult> {
  return send(port, 'GET', path, timeoutMs, { ...(agent ? { agent } : {}), ...(cookie ? { headers: { cookie } } : {}) })
}

/** POST /login once; returns the session cookie (name=value) the load then sends on every request. */
export async function login(port: number, username: string): Promise<string> {
  const res = await send(port, 'POST', '/login', 5000, { body: JSON.stringify({ username }) })
  const setCookie = res.headers['set-cookie']
  const first = Array.isArray(setCookie) ? setCookie[0] : setCookie
  if (res.status !== 200 || !first) throw new Error(`login answered ${res.status} without a cookie: ${JSON.stringify(res.body)}`)
  const cookie = first.split(';')[0] ?? ''
  const me = await getJson(port, '/me', 5000, undefined, cookie)
  if (me.status !== 200) throw new Error(`/me with the login cookie answered ${me.status}`)
  return cookie
}

// ---------------------------------------------------------------- health poller

export interface HealthPoll {
  readonly sent: number
  readonly at: number
  /** HTTP status, 'timeout' (no answer within the poll timeout) or 'error' (socket error). */
  readonly status: number | 'timeout' | 'error'
  /** The kit's `redis.state` from `GET /health`. */
  readonly state?: string
  /** The kit's `journal.pending` from `GET /health` (journal entries and replay batches not yet in Redis). */
  readonly pending?: number
}

/**
 * Polls one path back to back (the next poll `intervalMs` after the previous answer), each
 * poll bounded by `timeoutMs`, on a keep-alive agent of its own so it never waits behind the load.
 */
export function pollHealth(port: number, path: string, intervalMs: number, timeoutMs: number): { readonly polls: readonly HealthPoll[]; stop(): Promise<HealthPoll[]> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const polls: HealthPoll[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const sent = performance.now()
      try {
        const res = await getJson(port, path, timeoutMs, agent)
        const body = res.body as { redis?: { state?: string }; journal?: { pending?: number } } | undefined
        const state = body?.redis?.state
        const pending = body?.journal?.pending
        polls.push({ sent, at: performance.now(), status: res.status, ...(state ? { state } : {}), ...(typeof pending === 'number' ? { pending } : {}) })
      } catch (error) {
        const timedOut = error instanceof Error && error.message.startsWith('no answer')
        polls.push({ sent, at: performance.now(), status: timedOut ? 'timeout' : 'error' })
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    polls,
    async stop() {
      running = false
      await loop
      agent.destroy()
      return polls
    },
  }
}

// ---------------------------------------------------------------- autocannon

interface AutocannonRequest {
  method: string
  path: string
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest
  /** Ours, not autocannon's: carried along so a response can name its route. */
  route: Route
}

/** The part of autocannon's per-connection client that tells which request is in flight. */
interface AutocannonClient {
  requestIterator?: { currentRequest?: { route?: Route } }
}

interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, latencyMs: number) => void): void
  on(event: 'reqError', listener: (error: Error) => void): void
  on(event: 'done', listener: (result: unknown) => void): void
  on(event: 'error', listener: (error: Error) => void): void
  stop(): void
}

type Autocannon = (options: Record<string, unknown>) => AutocannonInstance

export interface LoadOptions {
  readonly port: number
  readonly cookie: string
  readonly connections: number
  readonly durationS: number
  readonly timeoutS: number
  readonly targets: number
}

export interface LoadRun {
  /** performance.now() when the load started; every sample time is on the same clock. */
  readonly t0: number
  readonly done: Promise<LoadResult>
  stop(): void
}

export interface LoadResult {
  readonly samples: Sample[]
  /** Requests sent but neither answered nor failed when the load stopped (not in `samples`). */
  readonly inFlightAtEnd: number
  /**
   * The same requests by route, read from each connection's current request when the load
   * stopped; undefined when that does not add up to `inFlightAtEnd` (then the split is unknown).
   */
  readonly inFlightByRoute: Readonly<Record<Route, number>> | undefined
}

/** The scan targets every run uses (and warms once before the load starts). */
export function targetPath(index: number): string {
  return `/api/scans/host${index}.example`
}

/**
 * Each connection cycles scan → visits → me, scans spread round-robin over `targets` hosts, all
 * with the session cookie. With one request in flight per connection (no pipelining), the
 * connection's current request definition when 'response' fires is the one answered: that is
 * how a response learns its route (a per-request `onResponse` would make autocannon buffer
 * every body just for that).
 */
export function startLoad(options: LoadOptions): LoadRun {
   
  const autocannon = require('autocannon') as Autocannon
  const samples: Sample[] = []
  let nextTarget = 0
  const requests: AutocannonRequest[] = [
    {
      method: 'GET', path: targetPath(0), route: 'scan',
      setupRequest: (request) => ({ ...request, path: targetPath(nextTarget++ % options.targets) }),
    },
    { method: 'GET', path: '/api/visits', route: 'visits' },
    { method: 'GET', path: '/me', route: 'me' },
  ]
  const timeoutMs = options.timeoutS * 1000
  // autocannon's own timeout is only a backstop that cannot fire within the run: its
  // reconnect-after-timeout path, hit while the server still hangs, misreads the next responses
  // (status undefined, then bogus timeouts). The client timeout is applied to the latencies instead.
  const backstopS = options.durationS + 10
  const t0 = performance.now()
  // Every connection answered at least once; its current request at the end is the one in flight.
  const clients = new Set<AutocannonClient>()
  const instance = autocannon({
    url: `http://127.0.0.1:${options.port}`,
    connections: options.connections,
    duration: options.durationS,
    timeout: backstopS,
    headers: { cookie: options.cookie },
    requests,
  })
  instance.on('response', (client, status, _bytes, latencyMs) => {
    const end = performance.now()
    clients.add(client as AutocannonClient)
    const route = (client as AutocannonClient).requestIterator?.currentRequest?.route ?? 'unknown'
    samples.push({ start: end - latencyMs, end, latencyMs, status, kind: latencyMs > timeoutMs ? 'timeout' : 'response', route })
  })
  instance.on('reqError', (error) => {
    const end = performance.now()
    const timedOut = error.message === 'request timed out'
    samples.push({
      start: timedOut ? end - backstopS * 1000 : end, end, latencyMs: timedOut ? backstopS * 1000 : 0, status: 0,
      kind: timedOut ? 'timeout' : 'error', route: 'unknown', error: error.message, ...(timedOut ? { censored: true } : {}),
    })
  })
  const done = new Promise<LoadResult>((resolve, reject) => {
    instance.on('done', (result) => {
      const sent = (result as { requests?: { sent?: number } }).requests?.sent ?? samples.length
      const inFlightAtEnd = Math.max(0, sent - samples.length)
      const byRoute: Record<Route, number> = { scan: 0, visits: 0, me: 0 }
      let known = 0
      for (const client of clients) {
        const route = client.requestIterator?.currentRequest?.route
        if (route) { byRoute[route] += 1; known += 1 }
      }
      resolve({ samples, inFlightAtEnd, inFlightByRoute: known === inFlightAtEnd ? byRoute : undefined })
    })
    instance.on('error', reject)
  })
  // Awaited later; until then a rejection must not count as unhandled (and end the process).
  done.catch(() => undefined)
  return { t0, done, stop: () => instance.stop() }
}

// ---------------------------------------------------------------- bursts (scenario D)

export interface BurstResult {
  /** Requests sent (each path at most once, in order). */
  readonly sent: number
  /** Paths never sent: sending stopped at `stopSendingAt`. */
  readonly notSent: number
  /** Per sent path (same order as `paths`, `sent` long): HTTP status, or 0 for no answer within the timeout / a socket error. */
  readonly statuses: readonly number[]
  /** performance.now() when the first request was sent and when the last one settled. */
  readonly startedAt: number
  readonly endedAt: number
}

/**
 * Sends `method path` for each path, `concurrency` at a time on a keep-alive agent of its own,
 * each bounded by `timeoutMs`; no new request starts at or after `stopSendingAt` (performance.now()).
 */
export async function burst(options: {
  port: number
  method: string
  paths: readonly string[]
  concurrency: number
  timeoutMs: number
  stopSendingAt?: number
  /** Called when request `index` is answered or given up on. */
  onSettled?: (index: number) => void
}): Promise<BurstResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency })
  const statuses: number[] = []
  let next = 0
  const startedAt = performance.now()
  const worker = async (): Promise<void> => {
    for (;;) {
      if (next >= options.paths.length || performance.now() >= (options.stopSendingAt ?? Infinity)) return
      const index = next++
      try {
        statuses[index] = (await send(options.port, options.method, options.paths[index] as string, options.timeoutMs, { agent })).status
      } catch {
        statuses[index] = 0
      }
      options.onSettled?.(index)
    }
  }
  try {
    await Promise.all(Array.from({ length: options.concurrency }, worker))
  } finally {
    agent.destroy()
  }
  return { sent: next, notSent: options.paths.length - next, statuses, startedAt, endedAt: performance.now() }
}
