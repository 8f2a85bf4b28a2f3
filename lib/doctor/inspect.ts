/**
 * What the doctor reads from a server it reached: what it is (HELLO), latency, memory, databases
 * and its slowest commands. INFO, CONFIG and SLOWLOG are in `@dangerous`, which an app's ACL user
 * often lacks while the kit works fine: a refusal is reported as "not allowed", never a failure.
 */
import type { Redis } from 'ioredis'
import { replyCode } from '../core/outage.js'
import { describeServer, type ServerRole } from '../core/verify.js'
import { within } from '../core/watchdog.js'
import { slowestEntries, type SlowlogEntry } from './slowlog.js'

export const MEMORY_FIELDS = ['used_memory_human', 'used_memory_peak_human', 'maxmemory_human', 'maxmemory_policy', 'mem_fragmentation_ratio']

export interface ServerFacts {
  role: ServerRole | undefined
  pingMs: number
  memory?: Record<string, string>
  databases?: number
  slowlog?: SlowlogEntry[]
  /** Commands the user may not run (INFO, CONFIG GET, SLOWLOG): their part of the report is left out. */
  notAllowed: string[]
}

export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':')
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1).trim()
  }
  return fields
}

/** Runs `read`; a NOPERM becomes a "not allowed" note instead of a failure. */
async function allowed<T>(name: string, notAllowed: string[], read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read()
  } catch (error) {
    if (replyCode(error) !== 'NOPERM') throw error
    notAllowed.push(name)
    return undefined
  }
}

/** PING, HELLO, INFO memory, CONFIG GET databases and SLOWLOG of one server. `node`: its address, for a Cluster. */
export async function inspectServer(client: Redis, timeoutMs: number, node?: string): Promise<ServerFacts> {
  const started = process.hrtime.bigint()
  await within(client.ping(), timeoutMs, 'PING')
  const pingMs = Number(process.hrtime.bigint() - started) / 1e6
  const notAllowed: string[] = []
  const role = await describeServer(client, timeoutMs)
  const facts: ServerFacts = { role, pingMs, notAllowed }
  if (role?.mode === 'sentinel') return facts // a sentinel has no data, memory or slowlog worth reading
  const memory = await allowed('INFO', notAllowed, () => within(client.info('memory'), timeoutMs, 'INFO'))
  if (memory !== undefined) {
    const fields = parseInfo(memory)
    facts.memory = Object.fromEntries(MEMORY_FIELDS.filter((f) => fields[f] !== undefined).map((f) => [f, fields[f] as string]))
  }
  const databases = await allowed('CONFIG GET', notAllowed, () => within(client.config('GET', 'databases') as Promise<unknown>, timeoutMs, 'CONFIG'))
  const count = Array.isArray(databases) ? Number(databases[1]) : databases instanceof Map ? Number(databases.get('databases')) : Number.NaN
  if (Number.isInteger(count) && count > 0) facts.databases = count
  facts.slowlog = await allowed('SLOWLOG', notAllowed, () => slowestEntries(client, timeoutMs, node))
  return facts
}
