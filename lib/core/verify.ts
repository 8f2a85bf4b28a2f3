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

/** What a plain (non-Cluster) connection is connected to. */
async function checkRole(client: Redis, topology: Topology, timeoutMs: number): Promise<void> {
  let reply: Reply
  try {
    reply = await within(client.call('HELLO') as Promise<Reply>, timeoutMs, 'HELLO')
  } catch (error) {
    if (replyCode(error) === 'NOPERM' || replyCode(error) === 'ERR') return // cannot tell; the rights check follows
    throw error
  }
  const mode = helloField(reply, 'mode')
  const role = helloField(reply, 'role')
  const source = topology.kind === 'sentinel' ? `the master the sentinels named (${topology.name})` : 'the configured server'
  if (mode === 'sentinel') {
    throw new ServerRejected(`${source} is a Redis Sentinel, not a data server: configure REDIS_SENTINELS=<host:port,…> and REDIS_SENTINEL_NAME=<master name> (or the \`sentinel\` option) instead of REDIS_URL`)
  }
  if (mode === 'cluster') {
    throw new ServerRejected(`${source} is a Redis Cluster node: configure REDIS_CLUSTER_NODES=<host:port,…> (or the \`cluster\` option) instead of REDIS_URL`)
  }
  if (role === 'replica' || role === 'slave') {
    throw new ServerRejected(`${source} is a read-only replica: point REDIS_URL at the master, or use Sentinel (REDIS_SENTINELS) to follow the master through failovers`)
  }
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

/** The commands the kit sends, each tried once on a scratch key under the prefix. */
function rightsCheck(client: RedisClient, keyPrefix: string): { commands: string[]; run: Promise<[Error | null, unknown][] | null> } {
  // One hash tag, so a Cluster routes every scratch key to one slot.
  const tag = `${keyPrefix}kit:check:{${randomBytes(6).toString('base64url')}}`
  const [a, b, c] = [`${tag}:a`, `${tag}:b`, `${tag}:c`]
  const at = String(Date.now() + 1000)
  const pipeline = client.pipeline()
  const commands: string[] = []
  const add = (name: string, args: (string | number)[]): void => {
    commands.push(name)
    pipeline.call(name, ...args)
  }
  add('SET', [a, '1', 'PX', 1000]); add('GET', [a]); add('EXISTS', [a]); add('PEXPIRE', [a, 1000]); add('PEXPIREAT', [a, at])
  add('PTTL', [a]); add('MGET', [a, b]); add('INCRBY', [b, 1]); add('HSET', [c, 'f', '1']); add('HGET', [c, 'f'])
  add('SADD', [`${tag}:s`, a]); add('SMEMBERS', [`${tag}:s`]); add('DEL', [b]); add('UNLINK', [a, c, `${tag}:s`])
  add('SCRIPT', ['LOAD', 'return 1']); add('EVALSHA', ['e0e1f9fabfc9d4800c877a703b823ac0578ff8db', 0])
  if (!isCluster(client)) add('SCAN', ['0', 'MATCH', `${keyPrefix}kit:check:*`, 'COUNT', 10])
  return { commands, run: pipeline.exec() }
}

/** Runs every check; throws ServerRejected (with the fix) or the outage error that stopped it. */
export async function verifyServer(client: RedisClient, topology: Topology, keyPrefix: string, timeoutMs: number): Promise<void> {
  if (isCluster(client)) await checkCluster(client, timeoutMs)
  else await checkRole(client, topology, timeoutMs)
  const { commands, run } = rightsCheck(client, keyPrefix)
  const replies = await within(run, timeoutMs, 'ACL check') ?? []
  const denied = commands.filter((_, i) => replyCode(replies[i]?.[0]) === 'NOPERM')
  if (denied.length > 0) {
    const first = replies.find(([error]) => replyCode(error) === 'NOPERM')?.[0]?.message ?? ''
    throw new ServerRejected(`the Redis user may not run ${denied.join(', ')} on keys under '${keyPrefix}' (${first}). `
      + `Grant the kit's ACL (see the README, "ACL"), e.g. ACL SETUSER <user> ~${keyPrefix}* +@read +@write +@keyspace +@scripting +@connection`)
  }
}
