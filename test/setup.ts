/**
 * Root hooks for every test file (a mocha root-hook plugin, required in .mocharc.json).
 *
 * - No leaked ioredis clients: ioredis prints "[ioredis] Unhandled error event" (console.error)
 *   when a client has no 'error' listener — typically a test's own client that outlived its
 *   server, which then prints on every reconnection attempt for the rest of the run. Any such line
 *   fails the run, naming the test that was running when it was printed.
 * - Clients made with helpers/redis-client.ts are disconnected when their test ends, and fake
 *   clocks (helpers/clock.ts) uninstalled, also when the test failed midway.
 */
import { Redis } from 'ioredis'
import type { Context, RootHookObject } from 'mocha'
import { restoreClocks } from './helpers/clock.js'
import { disconnectTestClients, testRunning } from './helpers/redis-client.js'

const MARK = '[ioredis] Unhandled error event'

/** Where the run is, for naming the culprit: the test running, or the last one that ran. */
let current: { title: string; running: boolean } | undefined
let finished = false
const offences: string[] = []

function whereWeAre(): string {
  if (current === undefined) return 'before the first test (in a before hook of its file)'
  if (current.running) return `while "${current.title}" was running`
  return `after "${current.title}" had ended (in an after hook, or from a client or timer it left behind)`
}

/**
 * The line names the test that was running; it also names the test that made the client when
 * ioredis lets us see it (a leaked client usually prints during a later, innocent test).
 */
const madeIn = new WeakMap<object, string>()
let culprit: string | undefined
type Hookable = { connect?: (...args: unknown[]) => unknown; silentEmit?: (event: string, ...args: unknown[]) => unknown }
const proto = Redis.prototype as unknown as Hookable
const { connect, silentEmit } = proto
if (typeof connect === 'function' && typeof silentEmit === 'function') {
  proto.connect = function noteMaker(this: Redis, ...args: unknown[]) {
    if (!madeIn.has(this)) madeIn.set(this, current?.running ? `"${current.title}"` : whereWeAre())
    return connect.apply(this, args)
  }
  proto.silentEmit = function noteCulprit(this: Redis, event: string, ...args: unknown[]) {
    culprit = event === 'error' && this.listenerCount('error') === 0 ? madeIn.get(this) : undefined
    try {
      return silentEmit.call(this, event, ...args)
    } finally {
      culprit = undefined
    }
  }
}

function report(text: string): void {
  const maker = culprit === undefined ? '' : ` by a client made ${culprit.startsWith('"') ? `in ${culprit}` : culprit}`
  const line = `${MARK} printed ${whereWeAre()}${maker}: ${text.split('\n')[0]?.replace(MARK, '').replace(/^[:\s]+/, '') ?? ''}`
  offences.push(line)
  if (finished) process.exitCode = 1 // printed after the last hook: nothing is left to fail
}

// Watching the stream, not console.error alone, catches any way of printing it.
const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean
process.stderr.write = function watchedWrite(chunk: unknown, ...rest: unknown[]): boolean {
  const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : ''
  if (text.includes(MARK)) report(text)
  const written = write(chunk, ...rest)
  if (finished && text.includes(MARK)) write(`\n${offences.at(-1) ?? ''} — this fails the run\n`)
  return written
}

export const mochaHooks: RootHookObject = {
  beforeEach(this: Context) {
    current = { title: this.currentTest?.fullTitle() ?? '?', running: true }
    testRunning(true)
  },

  afterEach() {
    restoreClocks()
    disconnectTestClients('test')
    testRunning(false)
    if (current) current.running = false
  },

  afterAll() {
    disconnectTestClients('all')
    finished = true
    if (offences.length > 0) {
      const distinct = [...new Set(offences)]
      throw new Error(`"${MARK}" was printed ${offences.length} time(s): an ioredis client had no 'error' listener.\n${distinct.slice(0, 20).join('\n')}`)
    }
  },
}
