/**
 * SLOWLOG for a report someone may paste into a ticket: the slowest entries first (SLOWLOG GET
 * returns the most recent), and never a value. Arguments are replaced by what they are — `set
 * <key> <value>`, `mget <3 keys>`, `evalsha <sha> <2 keys> <4 values>` — so session JSON or an
 * API token stored under a key never leaves the server through the doctor.
 */
import type { Redis } from 'ioredis'
import { within } from '../core/watchdog.js'

export interface SlowlogEntry {
  id: number
  durationMicros: number
  /** The command with its arguments replaced by placeholders. */
  command: string
  /** host:port of the server it ran on (set for a Cluster, whose masters each have a log). */
  node?: string
}

/** How many entries to read (Redis keeps 128 by default) and how many to show. */
const READ = 128
export const SHOWN = 5

/** Commands whose first argument is a subcommand name (`client setname`, `config get`). */
const CONTAINERS = new Set(['acl', 'client', 'cluster', 'command', 'config', 'debug', 'function', 'latency', 'memory', 'module',
  'object', 'pubsub', 'script', 'sentinel', 'slowlog', 'xgroup', 'xinfo'])
/** Scripts: `<script|sha> <numkeys> keys… args…`. */
const SCRIPTS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])

/** Where a command's keys are (COMMAND INFO: first, last, step; 0 = none, negative last counts from the end). */
export interface KeyPositions {
  first: number
  last: number
  step: number
}

function placeholders(kind: 'key' | 'value', count: number): string[] {
  if (count === 0) return []
  if (count >= 3) return [`<${count} ${kind}s>`]
  return Array.from({ length: count }, () => `<${kind}>`)
}

/** One SLOWLOG command line with every argument replaced by `<key>` / `<value>` placeholders. */
export function redactCommand(args: readonly string[], positions?: KeyPositions): string {
  const raw = args[0] ?? ''
  const name = /^[a-z][a-z0-9_.|-]*$/i.test(raw) ? raw.toLowerCase() : '<command>'
  const words = [name]
  let at = 1
  if (CONTAINERS.has(name) && /^[a-z][a-z-]*$/i.test(args[1] ?? '')) {
    words.push((args[1] as string).toLowerCase())
    at = 2
  }
  const keys = new Set<number>()
  if (SCRIPTS.has(name)) {
    words.push(name.startsWith('fcall') ? '<function>' : name.startsWith('evalsha') ? '<sha>' : '<script>')
    const count = Number(args[2])
    at = 3
    if (Number.isInteger(count) && count > 0) for (let i = 3; i < 3 + count && i < args.length; i++) keys.add(i)
  } else if (positions && positions.first > 0 && !CONTAINERS.has(name)) {
    const last = positions.last < 0 ? args.length + positions.last : positions.last
    for (let i = positions.first; i <= last && i < args.length; i += Math.max(1, positions.step)) keys.add(i)
  }
  // Runs of the same kind collapse: `<key> <3 values>`, never one word per argument.
  let run: { kind: 'key' | 'value'; count: number } | undefined
  for (let i = at; i < args.length; i++) {
    const kind = keys.has(i) ? 'key' : 'value'
    if (run?.kind === kind) run.count += 1
    else {
      if (run) words.push(...placeholders(run.kind, run.count))
      run = { kind, count: 1 }
    }
  }
  if (run) words.push(...placeholders(run.kind, run.count))
  return words.join(' ')
}

/** COMMAND INFO for the names in the log; an empty map when COMMAND is not allowed (then all arguments are values). */
async function keyPositions(client: Redis, names: string[], timeoutMs: number): Promise<Map<string, KeyPositions>> {
  const found = new Map<string, KeyPositions>()
  if (names.length === 0) return found
  const reply = await within(client.call('COMMAND', 'INFO', ...names) as Promise<unknown[]>, timeoutMs, 'COMMAND INFO').catch(() => [])
  for (const entry of Array.isArray(reply) ? reply : []) {
    if (!Array.isArray(entry)) continue
    const [name, , , first, last, step] = entry as unknown[]
    if (typeof name === 'string') found.set(name.toLowerCase(), { first: Number(first), last: Number(last), step: Number(step) })
  }
  return found
}

/** The slowest entries of one server's SLOWLOG, redacted; throws what SLOWLOG GET threw (e.g. NOPERM). */
export async function slowestEntries(client: Redis, timeoutMs: number, node?: string): Promise<SlowlogEntry[]> {
  const reply = await within(client.call('SLOWLOG', 'GET', String(READ)) as Promise<unknown[]>, timeoutMs, 'SLOWLOG')
  const rows = (Array.isArray(reply) ? reply : []).filter(Array.isArray) as unknown[][]
  const entries = rows.map(([id, , duration, args]) => ({
    id: Number(id), durationMicros: Number(duration), args: Array.isArray(args) ? args.map(String) : [],
  })).sort((a, b) => b.durationMicros - a.durationMicros || b.id - a.id).slice(0, SHOWN)
  const names = [...new Set(entries.map((entry) => (entry.args[0] ?? '').toLowerCase()).filter((name) => /^[a-z][a-z0-9_.|-]*$/.test(name)))]
  const positions = await keyPositions(client, names, timeoutMs)
  return entries.map((entry) => ({
    id: entry.id,
    durationMicros: entry.durationMicros,
    command: redactCommand(entry.args, positions.get((entry.args[0] ?? '').toLowerCase())),
    ...(node === undefined ? {} : { node }),
  }))
}

/** Several servers' slowest entries as one list, slowest first. */
export function slowestOf(lists: readonly SlowlogEntry[][]): SlowlogEntry[] {
  return lists.flat().sort((a, b) => b.durationMicros - a.durationMicros).slice(0, SHOWN)
}
