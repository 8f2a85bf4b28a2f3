/**
 * Preloaded into each server under test (`node --import tsx --import <this file>`), kit and peer
 * alike, so neither server's code changes: measures the event-loop delay of the app process with
 * `perf_hooks.monitorEventLoopDelay` and prints one line per 100 ms window on stdout:
 *
 *   [chaos-eld] <epoch ms at the window's end> <max ms> <p99 ms>
 *
 * The epoch time (`performance.timeOrigin + performance.now()`) lets the orchestrator place each
 * window on its own clock. The histogram samples every 5 ms; a window without a sample (the loop
 * was blocked for all of it) shows up in the next one as a long delay.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'

const WINDOW_MS = 100
const histogram = monitorEventLoopDelay({ resolution: 5 })
histogram.enable()
const timer = setInterval(() => {
  const max = histogram.count > 0 ? histogram.max / 1e6 : 0
  const p99 = histogram.count > 0 ? histogram.percentile(99) / 1e6 : 0
  histogram.reset()
  process.stdout.write(`[chaos-eld] ${(performance.timeOrigin + performance.now()).toFixed(1)} ${max.toFixed(2)} ${p99.toFixed(2)}\n`)
}, WINDOW_MS)
timer.unref()
