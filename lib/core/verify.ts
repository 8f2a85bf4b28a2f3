/**
 * Before the kit uses a server, it checks that it is one it can use — on every comeback, since a
 * failover or an ACL change can make a good server unusable:
 *
 * - what it is (HELLO): a Sentinel or a Cluster node behind a plain URL, or a read-only replica,
 *   would fail every write with a confusing error; the kit says what to configure instead.
 * - on a Cluster, that every master answers and the cluster says all slots are served: a shard
 *   that just died must keep the whole kit on memory until its replica took over, or the kit
 *   would flap between Redis and memory with every call to that shard.
 * - that its ACL user may run what the kit runs, on keys under its prefix: a missing right is a
 *   configuration error, reported with the fix, never a write silently lost later.
 */
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Topology } from './topology.js'
import { isCluster, type RedisClient } from './redis-types.js'
import { replyCode } from './outage.js'
import { within } from './watchdog.js'

/** The server cannot be used as configured; `message` names the fix. Not an outage of Redis. */
export class ServerRejected extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ServerRejected'
  }
}

type Reply = Map<string, unknown> | Record<string, unknown> | unknown[]

/** A HELLO reply (a map in RESP3, a flat list in RESP2) as a lookup. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString() : typeof value === 'number' ? String(value) : undefined
}

function helloField(reply: Reply, field: string): string | undefined {
  if (reply instanceof Map) return text(reply.get(field))
  if (Array.isArray(reply)) {
    const at = reply.findIndex((item) => text(item) === field)
    return at === -1 ? undefined : text(reply[at + 1])
  }
  return text((reply)[field])
}

/** What one server is, as far as it will say (HELLO works for every ACL user that can log in). */
export interface ServerRole {
  mode: 'standalone' | 'cluster' | 'sentinel' | 'unknown'
  role: 'master' | 'replica' | 'sentinel' | 'unknown'
  version: string | undefined
  /** A sentinel: the master names it monitors, with their addresses. */
  monitors?: { name: string; address: string }[]
  /** A replica: its master's address, when INFO is allowed. */
  masterAddress?: string
}

function fields(flat: unknown): Map<string, string> {
  const map = new Map<string, string>()
  if (flat instanceof Map) for (const [k, v] of flat) map.set(String(k), text(v) ?? '')
  else if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) map.set(text(flat[i]) ?? '', text(flat[i + 1]) ?? '')
  return map
}

/** HELLO, then what a sentinel monitors or whose replica this is; undefined when HELLO is refused. */
export async function describeServer(client: Redis, timeoutMs: number): Promise<ServerRole | undefined> {
  let reply: Reply
  try {
    reply = await within(client.call('HELLO') as Promise<Reply>, timeoutMs, 'HELLO')
  } catch (error) {
    if (replyCode(error) === 'NOPERM' || replyCode(error) === 'ERR') return undefined
    throw error
  }
  const mode = helloField(reply, 'mode')
  const role = helloField(reply, 'role')
  const described: ServerRole = {
    mode: mode === 'standalone' || mode === 'cluster' || mode === 'sentinel' ? mode : 'unknown',
    role: mode === 'sentinel' ? 'sentinel' : role === 'master' ? 'master' : role === 'replica' || role === 'slave' ? 'replica' : 'unknown',
    version: helloField(reply, 'version'),
  }
  if (described.mode === 'sentinel') {
    const masters = await within(client.call('SENTINEL', 'MASTERS') as Promise<unknown[]>, timeoutMs, 'SENTINEL MASTERS').catch(() => [])
    described.monitors = (Array.isArray(masters) ? masters : []).map(fields)
      .map((m) => ({ name: m.get('name') ?? '?', address: `${m.get('ip') ?? '?'}:${m.get('port') ?? '?'}` }))
  } else if (described.role === 'replica') {
    const info = await within(client.call('INFO', 'replication') as Promise<string>, timeoutMs, 'INFO').catch(() => '')
    const host = /master_host:(\S+)/.exec(String(info))?.[1]
    const port = /master_port:(\d+)/.exec(String(info))?.[1]
    if (host && port) described.masterAddress = `${host}:${port}`
  }
  return described
}

/** Why a server of this kind cannot be used as configured, with the fix; undefined when it can. */
export function wrongKind(server: ServerRole, topology: Topology, address = '<host:port>'): string | undefined {
  const source = topology.kind === 'sentinel' ? `the master the sentinels named (${topology.name})` : 'the configured server'
  if (server.mode === 'sentinel') {
    const names = server.monitors?.map((m) => m.name) ?? []
    const name = names.length === 1 ? names[0] : '<master name>'
    const monitors = names.length > 0 ? ` (it monitors ${server.monitors?.map((m) => `'${m.name}' at ${m.address}`).join(', ')})` : ''
    return `${source} is a Redis Sentinel, not a data server${monitors}: configure REDIS_SENTINELS=${address} and REDIS_SENTINEL_NAME=${name} `
      + '(or the `sentinel` option) instead of REDIS_URL'
  }
  if (server.mode === 'cluster') {
    return `${source} is a Redis Cluster node: configure REDIS_CLUSTER_NODES=${address},… (or the \`cluster\` option) instead of REDIS_URL`
  }
  if (server.role === 'replica') {
    const of = server.masterAddress ? ` of ${server.masterAddress}` : ''
    return `${source} is a read-only replica${of}: point REDIS_URL at the master, or use Sentinel (REDIS_SENTINELS) to follow the master through failovers`
  }
  return undefined
}

/** What a plain (non-Cluster) connection is connected to. */
async function checkRole(client: Redis, topology: Topology, timeoutMs: number): Promise<void> {
  const server = await describeServer(client, timeoutMs)
  if (server === undefined) return // cannot tell; the rights check follows
  const options = client.options as { host?: string; port?: number }
  const problem = wrongKind(server, topology, topology.kind === 'standalone' ? `${options.host ?? 'localhost'}:${options.port ?? 6379}` : undefined)
  if (problem !== undefined) throw new ServerRejected(problem)
}

/** Every master answers PING, and the cluster says all slots are served. */
async function checkCluster(client: RedisClient, timeoutMs: number): Promise<void> {
  if (!isCluster(client)) return
  // After a failover ioredis may still list the dead master until its slot map is refreshed.
  await within(new Promise<void>((resolve, reject) => client.refreshSlotsCache((error) => (error ? reject(error) : resolve()))), timeoutMs, 'CLUSTER SLOTS')
  const masters = client.nodes('master')
  if (masters.length === 0) throw new Error('the cluster has no reachable master yet')
  await within(Promise.all(masters.map((node) => node.ping())), timeoutMs, 'Cluster PING')
  const info = await within(masters[0]!.call('CLUSTER', 'INFO') as Promise<string>, timeoutMs, 'CLUSTER INFO')
  if (!/cluster_state:ok/.test(String(info))) {
    // A master died and its replica has not taken over yet: some slots are not served.
    throw new Error('the cluster reports cluster_state:fail (some slots are not served, e.g. during a failover)')
  }
}

/**
 * The commands each feature sends, by the key namespace it writes under ('' is `kit.client`, and
 * the outage journal's replay, which every feature shares). Commands run inside the kit's Lua
 * scripts are listed too: ACLs apply to them as well.
 */
const FEATURE_RIGHTS: Readonly<Record<string, { feature: string; commands: readonly string[] }>> = {
  '': { feature: 'kit.client and the outage journal of every feature', commands: ['SET', 'GET', 'EXISTS', 'DEL', 'UNLINK', 'INCRBY', 'PEXPIRE', 'PEXPIREAT', 'PTTL', 'EVAL', 'EVALSHA'] },
  'session:': { feature: 'kit.session()', commands: ['MGET', 'EXPIRE', 'SCAN'] },
  'rate:': { feature: 'kit.rateLimit()', commands: ['SCRIPT LOAD', 'INCR', 'DECR'] },
  'cache:': { feature: 'kit.cache()', commands: ['HSET', 'HGET', 'HDEL', 'HKEYS', 'SADD', 'SREM', 'SMEMBERS', 'SCAN', 'ZADD', 'ZREM', 'ZCARD', 'ZPOPMIN'] },
}

/** The namespaces of every feature, for a check that does not know which ones an app uses (the doctor). */
export const ALL_NAMESPACES: readonly string[] = Object.keys(FEATURE_RIGHTS)

/** A right the kit needs and the user lacks. */
export interface Denial {
  /** `run SCRIPT LOAD`, `read keys under 'app:session:'`, `write keys under …`. */
  what: string
  /** Who needs it: `kit.session()` … */
  feature: string
  /** Redis's NOPERM text. */
  reply: string
}

/**
 * The scratch keys' hash tag: one per process, so a user whose rights leave some of them behind
 * (say it may INCR but not DEL) leaves a few keys, not a few per comeback attempt.
 */
const CHECK_TAG = `{${randomBytes(6).toString('base64url')}}`

/**
 * The probe of one right: a harmless command on scratch keys under the prefix, then what keeps
 * the keys it creates expiring (INCRBY on a key SET with PX keeps its TTL; HSET and SADD get one).
 */
function probe(name: string, tag: string): (string | number)[][] {
  const [a, b, c, set, zset] = [`${tag}:a`, `${tag}:b`, `${tag}:c`, `${tag}:s`, `${tag}:z`]
  switch (name) {
    case 'SET': return [['SET', a, '1', 'PX', 1000], ['SET', b, '0', 'PX', 1000]]
    case 'GET': case 'EXISTS': case 'PTTL': return [[name, a]]
    case 'INCR': case 'DECR': return [[name, b]]
    case 'INCRBY': return [['INCRBY', b, 1]]
    case 'PEXPIRE': return [['PEXPIRE', a, 1000]]
    case 'PEXPIREAT': return [['PEXPIREAT', a, String(Date.now() + 1000)]]
    case 'EXPIRE': return [['EXPIRE', a, 1]]
    case 'MGET': return [['MGET', a, b]]
    case 'EVAL': return [['EVAL', 'return 1', 0]]
    // The SHA-1 of 'return 1', cached by the EVAL before it: NOSCRIPT would be fine too.
    case 'EVALSHA': return [['EVALSHA', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db', 0]]
    case 'SCRIPT LOAD': return [['SCRIPT', 'LOAD', 'return 1']]
    case 'HSET': return [['HSET', c, 'f', '1'], ['PEXPIRE', c, 1000]]
    case 'HGET': case 'HDEL': return [[name, c, 'f']]
    case 'HKEYS': return [['HKEYS', c]]
    case 'ZADD': return [['ZADD', zset, 1, a], ['PEXPIRE', zset, 1000]]
    case 'ZCARD': return [['ZCARD', zset]]
    case 'ZREM': return [['ZREM', zset, b]]
    case 'ZPOPMIN': return [['ZPOPMIN', zset, 1]]
    case 'SADD': return [['SADD', set, a], ['PEXPIRE', set, 1000]]
    case 'SREM': return [['SREM', set, a]]
    case 'SMEMBERS': return [['SMEMBERS', set]]
    // Deletions last (the order below), of keys that exist by then.
    case 'DEL': return [['DEL', b]]
    case 'UNLINK': return [['UNLINK', a, c, set, zset]]
    default: throw new Error(`no probe for ${name}`)
  }
}

/** Creating probes first, deletions last: DEL and UNLINK clean up what the others made. */
const LAST = new Set(['DEL', 'UNLINK'])

/**
 * Tries every right the features in `namespaces` need, once, in one pipeline: each command on
 * scratch keys `<keyPrefix>kit:check:{…}` (expiring within a second, deleted at the end), and
 * read and delete access to a key under each feature's namespace (EXISTS and UNLINK of a key that
 * does not exist: ACLs are checked before a command runs, so a denied key answers NOPERM, an
 * allowed one nothing).
 */
export async function checkRights(client: RedisClient, keyPrefix: string, timeoutMs: number, namespaces: readonly string[] = ['']): Promise<Denial[]> {
  // One hash tag, so a Cluster routes every scratch key to one slot.
  const tag = `${keyPrefix}kit:check:${CHECK_TAG}`
  const checks: (Omit<Denial, 'reply'> | undefined)[] = []
  const pipeline = client.pipeline()
  const commands = new Map<string, string>()
  for (const namespace of new Set(['', ...namespaces])) {
    for (const command of FEATURE_RIGHTS[namespace]?.commands ?? []) if (!commands.has(command)) commands.set(command, FEATURE_RIGHTS[namespace]?.feature ?? namespace)
  }
  if (isCluster(client)) commands.delete('SCAN') // per node; a Cluster client has no one node to ask
  const ordered = [...commands].sort(([x], [y]) => Number(LAST.has(x)) - Number(LAST.has(y)))
  for (const [command, feature] of ordered) {
    const sent = command === 'SCAN' ? [['SCAN', '0', 'MATCH', `${keyPrefix}kit:check:*`, 'COUNT', 10]] : probe(command, tag)
    sent.forEach(([name, ...args], i) => {
      checks.push(i === 0 ? { what: `run ${command}`, feature } : undefined)
      pipeline.call(String(name), ...args)
    })
  }
  for (const namespace of new Set(namespaces)) {
    if (namespace === '') continue
    const key = `${keyPrefix}${namespace}kit:check:${CHECK_TAG}`
    const feature = FEATURE_RIGHTS[namespace]?.feature ?? `the keys under '${keyPrefix}${namespace}'`
    checks.push({ what: `read keys under '${keyPrefix}${namespace}'`, feature })
    pipeline.call('EXISTS', key)
    checks.push({ what: `write keys under '${keyPrefix}${namespace}'`, feature })
    pipeline.call('UNLINK', key)
  }
  const replies = await within(pipeline.exec(), timeoutMs, 'ACL check') ?? []
  const denials: Denial[] = []
  checks.forEach((check, i) => {
    const error = replies[i]?.[0]
    if (check !== undefined && replyCode(error) === 'NOPERM') denials.push({ ...check, reply: error?.message ?? 'NOPERM' })
  })
  return denials
}

/**
 * checkRights on the server, or on every master of a Cluster: ACLs live on each server (Redis
 * checks them before the slot, so there a key of another slot answers MOVED, a denied one NOPERM).
 */
export async function deniedRights(client: RedisClient, keyPrefix: string, timeoutMs: number, namespaces: readonly string[] = ['']): Promise<Denial[]> {
  const targets = isCluster(client) ? client.nodes('master') : [client]
  const found = (await Promise.all(targets.map((target) => checkRights(target, keyPrefix, timeoutMs, namespaces)))).flat()
  return [...new Map(found.map((denial) => [`${denial.what}\0${denial.feature}`, denial])).values()]
}

/** One sentence naming what is denied, to whom it matters, and the fix. */
export function describeDenials(denials: readonly Denial[], keyPrefix: string): string {
  const byFeature = new Map<string, string[]>()
  for (const denial of denials) byFeature.set(denial.feature, [...(byFeature.get(denial.feature) ?? []), denial.what])
  const parts = [...byFeature].map(([feature, what]) => `${what.join(', ').replace(/, run /g, ', ')} (needed by ${feature})`)
  const where = keyPrefix === '' ? '' : ` under the key prefix '${keyPrefix}'`
  return `the Redis user lacks rights the kit needs${where}: it may not ${parts.join('; ')} (${denials[0]?.reply ?? 'NOPERM'}). `
    + `Grant the kit's ACL (README, "ACL"), e.g. ACL SETUSER <user> ~${keyPrefix}* +@read +@write +@keyspace +@scripting +@connection -@dangerous +info`
}

/** Runs every check; throws ServerRejected (with the fix) or the outage error that stopped it. */
export async function verifyServer(client: RedisClient, topology: Topology, keyPrefix: string, timeoutMs: number,
  namespaces: readonly string[] = ['']): Promise<void> {
  if (isCluster(client)) await checkCluster(client, timeoutMs)
  else await checkRole(client, topology, timeoutMs)
  const denials = await deniedRights(client, keyPrefix, timeoutMs, namespaces)
  if (denials.length > 0) throw new ServerRejected(describeDenials(denials, keyPrefix))
}
