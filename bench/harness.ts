/**
 * What the feature benchmarks share: autocannon's typed slice, starting an app in its own child
 * process (the bench file itself with `--serve`, printing `PORT n`), stopping it, and statistics.
 */
import { spawn, type ChildProcess } from 'node:child_process'

export interface AutocannonResult {
  requests: { average: number; total: number }
  latency: { average: number; p50: number; p99: number }
  non2xx: number
  errors: number
  timeouts: number
}
export type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>

/** autocannon ships no types; this is the slice the benchmarks use. */
export function loadAutocannon(): Autocannon {
  return require('autocannon') as Autocannon
}

/** Runs `file --serve ...args` under tsx and resolves with the port it prints. */
export function startApp(file: string, label: string, args: readonly string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, '--serve', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /PORT (\d+)/.exec(out)
      if (match) resolve({ child, port: Number(match[1]) })
    })
    child.once('exit', (code) => reject(new Error(`${label} app exited with ${String(code)}`)))
  })
}

/** SIGTERM, then waits for the exit; rejects when the app exited with an error (it failed its own checks). */
export function stopApp(child: ChildProcess, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => { if (code === 0 || code === null) resolve(); else reject(new Error(`${label} app exited with ${String(code)}`)) })
    child.kill('SIGTERM')
  })
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)
}
