/** Builders shared by the tests: silent kits with a log recorder, small waits on events, and the one SLACK. */
import { createKit, type Kit, type KitOptions, type KitState, type Logger } from '../../lib/index.js'
import type { ConnectionManager } from '../../lib/core/manager.js'
import { INTERNALS } from '../../lib/kit.js'

/** The kit's connection manager, which the package entry does not expose: for assertions on its insides. */
export function internals(kit: Kit): ConnectionManager {
  return kit[INTERNALS]
}

/**
 * The one allowance, in ms, on top of a bound the kit promises (commandTimeoutMs, connectTimeoutMs,
 * healthTimeoutMs, "back within about half a second") for a loaded 2-core machine, HTTP round trip
 * included. Tests assert "bounded", never "fast": speed comparisons belong in bench/.
 */
export const SLACK = 500

/**
 * The real monotonic clock, bound before any test can install a fake one (helpers/clock.ts), so
 * timings and polling deadlines stay real while the kit's clocks are faked.
 */
const realNow: () => number = performance.now.bind(performance)

export interface RecordingLogger extends Logger {
  lines: string[]
}

export function recordingLogger(): RecordingLogger {
  const lines: string[] = []
  return {
    lines,
    info: (m) => { lines.push(`info ${m}`) },
    warn: (m) => { lines.push(`warn ${m}`) },
    error: (m) => { lines.push(`error ${m}`) },
  }
}

/** A kit with an empty environment (tests never read the developer's REDIS_URL) and a recorder. */
export function testKit(options: Partial<KitOptions> = {}): Kit & { logger: RecordingLogger } {
  const logger = recordingLogger()
  const kit = createKit({ env: {}, logger, ...options }) as Kit & { logger: RecordingLogger }
  kit.logger = logger
  return kit
}

/**
 * Resolves when the kit reaches `state` (immediately if it is there), or rejects after `ms`.
 * For 'ready' it also waits until the journal replay has been run by Redis: the kit switches to
 * ready as soon as the replay is written, so a test reading Redis on another connection could
 * otherwise overtake it. One command on the kit's own connection is queued behind the replay.
 */
export async function waitForState(kit: Kit, state: KitState, ms = 10_000): Promise<void> {
  await reachState(kit, state, ms)
  if (state === 'ready') await kit.client.exists('test:replay-barrier')
}

/**
 * Resolves once the kit is on Redis with nothing left to replay (no journal entry, no batch in
 * doubt): after a fault that can strike again during the recovery, 'ready' alone is not the end.
 */
export async function waitForReplay(kit: Kit, ms = 15_000): Promise<void> {
  await eventually(() => kit.state === 'ready' && internals(kit).pending === 0, ms, 'ready with nothing left to replay')
  await kit.client.exists('test:replay-barrier')
}

function reachState(kit: Kit, state: KitState, ms: number): Promise<void> {
  if (kit.state === state) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { kit.off('stateChange', listener); reject(new Error(`kit did not reach ${state} within ${ms} ms (is ${kit.state})`)) }, ms)
    const listener = (to: KitState): void => {
      if (to !== state) return
      clearTimeout(timer)
      kit.off('stateChange', listener)
      resolve()
    }
    kit.on('stateChange', listener)
  })
}

/** Measures how long an async call takes, in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = realNow()
  const value = await fn()
  return { value, ms: realNow() - started }
}

/** Polls `check` every 20 ms until it returns true, or throws after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = realNow() + ms
  for (;;) {
    if (await check()) return
    if (realNow() > deadline) throw new Error(`${what} not reached within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
