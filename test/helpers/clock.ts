/**
 * Fake clocks for tests that wait on one of the kit's own time windows (cache ttl and stale
 * windows, memory-twin TTLs, session touch windows), so they jump ahead instead of sleeping.
 *
 * Only the clocks the kit's time arithmetic READS are faked, never a timer: setTimeout, setInterval,
 * setImmediate and nextTick drive ioredis, the sockets, supertest and the kit's watchdog, and a
 * faked one would stop them. So:
 * - `Date` for wall-clock windows (cache freshness, lock expiry, session touch, journal expiry);
 * - `performance` as well for the memory twin's TTLs (lru-cache reads performance.now()), and only
 *   where the kit watches no live Redis connection: its watchdog and probes time calls with
 *   performance.now(), and a jump would look like a hung Redis.
 * The clock starts at the real time and by default keeps moving with it (shouldAdvanceTime), so
 * code that polls the clock (a lock wait) still ends; `tickAsync(ms)` jumps ahead. Root hooks (test/setup.ts)
 * uninstall every clock after its test, also when the test failed.
 */
import { install, type Clock as InstalledClock } from '@sinonjs/fake-timers'

export type ReadClock = 'Date' | 'performance'

const installed: InstalledClock[] = []

/**
 * Installs a fake clock for `toFake` (see above for which to choose); uninstalled after the test.
 * `advance: false` stops it between ticks, for exact "not yet / now" checks where nothing polls it.
 */
export function fakeClock(toFake: readonly ReadClock[] = ['Date'], { advance = true }: { advance?: boolean } = {}): InstalledClock {
  if (installed.length > 0) throw new Error('a fake clock is already installed in this test')
  const clock = install({ now: Date.now(), toFake: [...toFake], shouldAdvanceTime: advance, advanceTimeDelta: 5 })
  installed.push(clock)
  // A fake performance.now() starts at 0, which lru-cache takes for "no start time" (never expires).
  clock.tick(1)
  return clock
}

/** Uninstalls the clocks the test left installed (called by the root hooks). */
export function restoreClocks(): void {
  for (const clock of installed.splice(0)) clock.uninstall()
}
