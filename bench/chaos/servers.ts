/**
 * Starting and always stopping what the chaos benchmark runs: private redis-servers, a latency
 * proxy in front of one (scenario C) and the server under test, both as child processes.
 * Everything started here is tracked, so `cleanup()` (from a finally block or the SIGINT handler)
 * stops exactly those processes, by their PID.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { RedisServer, freePort } from '../../test/helpers/redis-server.js'
import { getJson } from './load.js'

export type Contender = 'kit' | 'peer'

const SCRIPTS: Record<Contender, string> = {
  kit: join(__dirname, 'kit-server.ts'),
  peer: join(__dirname, '..', 'peer-server.ts'),
}

/** Preloaded into both servers: prints the app's event-loop delay (see eld-preload.ts). */
const ELD_PRELOAD = join(__dirname, 'eld-preload.ts')
const PROXY_SCRIPT = join(__dirname, 'proxy-child.ts')

const children = new Set<ChildProcess>()
const redisServers = new Set<RedisServer>()
/** Redis starts still waiting for PING: cleanup waits for them, then stops them too. */
const startingRedis = new Set<Promise<RedisServer>>()
let closing = false

function refuseWhenClosing(): void {
  if (closing) throw new Error('chaos benchmark is shutting down')
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  refuseWhenClosing()
  // persist: append-only file with fsync on every write, so data survives kill -9 as in production.
  const starting = RedisServer.start({ persist: true, port })
  startingRedis.add(starting)
  try {
    const server = await starting
    redisServers.add(server)
    refuseWhenClosing()
    return server
  } finally {
    startingRedis.delete(starting)
  }
}

/** Restarts a killed server on its port; `start()` spawns synchronously, so cleanup always sees it. */
export async function restartRedis(server: RedisServer): Promise<void> {
  refuseWhenClosing()
  await server.start()
}

export async function stopRedis(server: RedisServer): Promise<void> {
  await server.stop()
  redisServers.delete(server)
}

/** A LatencyProxy (test/helpers) in front of a redis-server, run in a child process of its own (proxy-child.ts). */
export interface ProxyProcess {
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
  /** Sets the added reply latency; resolves once the proxy applies it. */
  setLatency(ms: number): Promise<void>
}

export async function startProxy(redisPort: number): Promise<ProxyProcess> {
  refuseWhenClosing()
  const child = spawn(process.execPath, ['--import', 'tsx', PROXY_SCRIPT, String(redisPort)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const port = await new Promise<number>((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error('latency proxy did not start within 10 s')), 10_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`latency proxy exited (${String(code)}) during start-up`)) })
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const match = /port (\d+)\n/.exec(text)
      if (match) { clearTimeout(timer); resolve(Number(match[1])) }
    })
  })
  const setLatency = (ms: number): Promise<void> => new Promise((resolve, reject) => {
    const onMessage = (message: { ok?: boolean; latencyMs?: number }): void => {
      if (message.ok && message.latencyMs === ms) { child.off('message', onMessage); resolve() }
    }
    child.on('message', onMessage)
    child.send({ latencyMs: ms }, (error) => { if (error) { child.off('message', onMessage); reject(error) } })
  })
  return { port, url: `redis://127.0.0.1:${port}`, child, setLatency }
}

/** SIGTERM (the proxy cuts its connections and exits), SIGKILL after 5 s. */
export async function stopProxy(proxy: ProxyProcess): Promise<void> {
  const { child } = proxy
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** One line the app wrote, stamped with the orchestrator's performance.now() when it arrived. */
export interface OutputLine {
  readonly at: number
  readonly text: string
}

/** One 100 ms window of the app's event-loop delay (eld-preload.ts), on the orchestrator's clock. */
export interface EldWindow {
  /** End of the window (performance.now() of this process). */
  readonly at: number
  readonly maxMs: number
  readonly p99Ms: number
}

export interface AppProcess {
  readonly contender: Contender
  readonly port: number
  readonly child: ChildProcess
  /** Lines the app wrote (event-loop lines excluded), for counting peer errors and reading the kit's state log. */
  readonly output: string[]
  /** The same lines with their arrival time. */
  readonly lines: OutputLine[]
  /** The app's event-loop delay, per 100 ms window. */
  readonly eld: EldWindow[]
}

/** How long one background scan job takes in both servers (the example defaults to 2000 ms; short here, so the stream's jobs finish within the run). */
export const SCAN_JOB_MS = Number(process.env.CHAOS_JOB_MS ?? 200)

/** Only the variables this run means to set reach the app; stray REDIS_* and PEER_* from the shell do not. */
function appEnv(port: number, redis: string | Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(REDIS_|PEER_|ENABLE_REDIS|SESSION_|RATE_LIMIT|SCAN_|PORT$|NODE_ENV$)/.test(name)) env[name] = value
  }
  return { ...env, PORT: String(port), ...(typeof redis === 'string' ? { REDIS_URL: redis } : redis), RATE_LIMIT: '1000000000', SCAN_JOB_MS: String(SCAN_JOB_MS) }
}

/**
 * Starts the server under test and waits until it serves from Redis. `redis` is a REDIS_URL, or
 * the variables that point the server at a Cluster or Sentinel instead (bench/chaos/topologies.ts).
 */
export async function startApp(contender: Contender, redis: string | Readonly<Record<string, string>>): Promise<AppProcess> {
  const port = await freePort()
  refuseWhenClosing()
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', ELD_PRELOAD, SCRIPTS[contender]], {
    env: appEnv(port, redis), stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const output: string[] = []
  const lines: OutputLine[] = []
  const eld: EldWindow[] = []
  const take = (text: string, at: number): void => {
    if (!text.trim()) return
    const match = /^\[chaos-eld\] ([\d.]+) ([\d.]+) ([\d.]+)$/.exec(text)
    if (match) {
      eld.push({ at: Number(match[1]) - performance.timeOrigin, maxMs: Number(match[2]), p99Ms: Number(match[3]) })
      return
    }
    output.push(text)
    lines.push({ at, text })
  }
  // A chunk can end inside a line: keep the tail until the rest arrives.
  const collector = (): ((chunk: Buffer) => void) => {
    let tail = ''
    return (chunk) => {
      const at = performance.now()
      const parts = (tail + chunk.toString()).split('\n')
      tail = parts.pop() ?? ''
      for (const part of parts) take(part, at)
    }
  }
  child.stdout?.on('data', collector())
  child.stderr?.on('data', collector())
  const app: AppProcess = { contender, port, child, output, lines, eld }
  await waitUntilOnRedis(app)
  return app
}

/** Polls (never a fixed sleep) until the kit says `ready` / the peer's PING answers. */
async function waitUntilOnRedis(app: AppProcess, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    if (app.child.exitCode !== null || app.child.signalCode !== null) {
      throw new Error(`${app.contender} server exited during start-up:\n${app.output.join('\n')}`)
    }
    try {
      if (app.contender === 'kit') {
        const health = await getJson(app.port, '/health', 1000)
        if ((health.body as { redis?: { state?: string } }).redis?.state === 'ready') return
      } else {
        const health = await getJson(app.port, '/health/redis', 1000)
        if (health.status === 200) return
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${app.contender} server did not reach Redis:\n${app.output.join('\n')}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** SIGTERM (graceful), then SIGKILL if it has not exited within 5 s. */
export async function stopApp(app: AppProcess): Promise<void> {
  const { child } = app
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** Last resort for an exit that skipped `cleanup()` (it must be synchronous): SIGKILL by PID. */
export function killAllNow(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const server of redisServers) {
    if (server.pid !== undefined) {
      try { process.kill(server.pid, 'SIGKILL') } catch { /* already gone */ }
    }
  }
}

/** Stops every child and redis-server this process started (each by its own PID). */
export async function cleanup(): Promise<void> {
  closing = true
  // Wait for each exit so Node reaps the child (no zombie left behind when this process exits).
  await Promise.all([...children].map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return }
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })))
  children.clear()
  for (const started of await Promise.allSettled([...startingRedis])) {
    if (started.status === 'fulfilled') redisServers.add(started.value)
  }
  await Promise.allSettled([...redisServers].map((server) => server.stop()))
  redisServers.clear()
}
