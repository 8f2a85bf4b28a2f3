/**
 * Starts and controls a private Sentinel deployment (a master, one replica, three sentinels) on free
 * loopback ports, so tests can kill or hang the master and watch the sentinels promote the replica.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { answersPing, freePortExcept, parseInfo, pollUntil, redisCommand, redisText, RedisProcess, type RespReply } from './cluster.js'

export interface RedisSentinelGroupOptions {
  /** The master group name clients pass as `name`. */
  name?: string
  /** down-after-milliseconds: how long the master may be silent before a sentinel calls it down. */
  downAfterMs?: number
  /**
   * failover-timeout: also how long the sentinels wait (twice this) before retrying a failover
   * whose leader election split, so keep it small in tests.
   */
  failoverTimeoutMs?: number
  sentinelCount?: number
  /** How long start() waits for every sentinel to know the master, the replica and each other. */
  startTimeoutMs?: number
}

export interface SentinelAddress {
  host: string
  port: number
}

export type SentinelNodeKind = 'redis' | 'sentinel'

export interface SentinelNodeState {
  port: number
  pid: number | undefined
  kind: SentinelNodeKind
  alive: boolean
}

/** SENTINEL replicas / sentinels answer arrays of flat [field, value, ...] arrays. */
function records(reply: RespReply): Array<Map<string, string>> {
  if (!Array.isArray(reply)) return []
  return reply.filter(Array.isArray).map((flat) => {
    const fields = new Map<string, string>()
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]))
    return fields
  })
}

/** A flag in a SENTINEL record that means the sentinel does not (yet) trust that instance. */
function healthy(record: Map<string, string>): boolean {
  const flags = (record.get('flags') ?? '').split(',')
  return !flags.some((flag) => flag === 's_down' || flag === 'o_down' || flag === 'disconnected')
}

export class RedisSentinelGroup {
  readonly name: string
  private readonly dir: string
  private readonly redisNodes: RedisProcess[]
  private readonly sentinelNodes: RedisProcess[]

  private constructor(name: string, dir: string, redisNodes: RedisProcess[], sentinelNodes: RedisProcess[]) {
    this.name = name
    this.dir = dir
    this.redisNodes = redisNodes
    this.sentinelNodes = sentinelNodes
  }

  /**
   * Starts the master, then the replica (and waits until it is in sync, so the sentinels' first
   * INFO of the master already lists it: otherwise they learn of it only at the next 10 s INFO),
   * then the sentinels, and polls until every sentinel reports the master and knows the replica
   * and the other sentinels (found through hello messages, every 2 s).
   */
  static async start(options: RedisSentinelGroupOptions = {}): Promise<RedisSentinelGroup> {
    const name = options.name ?? 'mymaster'
    const downAfterMs = options.downAfterMs ?? 1000
    const failoverTimeoutMs = options.failoverTimeoutMs ?? 3000
    const sentinelCount = options.sentinelCount ?? 3
    const dir = mkdtempSync(join(tmpdir(), 'erk-sentinel-'))
    const taken = new Set<number>()
    const masterPort = await freePortExcept(taken)
    const replicaPort = await freePortExcept(taken)
    const dataArgs = (port: number): string[] => {
      const nodeDir = join(dir, String(port))
      mkdirSync(nodeDir)
      return ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--loglevel', 'warning',
        '--appendonly', 'no', '--save', '',
        // The default makes the master wait 5 s for more replicas before a diskless full sync.
        '--repl-diskless-sync-delay', '0',
        // Its own dir: the replica writes the full-sync RDB there.
        '--dir', nodeDir]
    }
    const master = new RedisProcess(masterPort, dataArgs(masterPort), answersPing)
    const replica = new RedisProcess(replicaPort, [...dataArgs(replicaPort), '--replicaof', '127.0.0.1', String(masterPort)], answersPing)
    const sentinels: RedisProcess[] = []
    for (let i = 0; i < sentinelCount; i++) {
      const port = await freePortExcept(taken)
      // Sentinel rewrites its config file (its id, the current master, known peers): one writable file each.
      const file = join(dir, `sentinel-${port}.conf`)
      writeFileSync(file, [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        'loglevel warning',
        `dir ${dir}`,
        // Before `monitor`: addresses are IPs, never looked up.
        'sentinel resolve-hostnames no',
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} ${Math.min(2, sentinelCount)}`,
        `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
        `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'))
      sentinels.push(new RedisProcess(port, [file, '--sentinel'], answersPing))
    }
    const group = new RedisSentinelGroup(name, dir, [master, replica], sentinels)
    try {
      await master.start()
      await replica.start()
      await pollUntil(async () => {
        const replication = parseInfo(await redisText(replicaPort, ['INFO', 'replication']))
        return replication.get('master_link_status') === 'up' ? true : undefined
      }, 10_000, `replica ${replicaPort} in sync with ${masterPort}`)
      await Promise.all(sentinels.map((sentinel) => sentinel.start()))
      await pollUntil(async () => {
        for (const sentinel of sentinels) {
          const address = await redisCommand(sentinel.port, ['SENTINEL', 'get-master-addr-by-name', name])
          if (!Array.isArray(address) || Number(address[1]) !== masterPort) return undefined
          const knownReplicas = records(await redisCommand(sentinel.port, ['SENTINEL', 'replicas', name]))
          if (!knownReplicas.some((record) => Number(record.get('port')) === replicaPort && healthy(record))) return undefined
          const peers = records(await redisCommand(sentinel.port, ['SENTINEL', 'sentinels', name]))
          if (peers.filter(healthy).length !== sentinelCount - 1) return undefined
        }
        return true
      }, options.startTimeoutMs ?? 20_000, 'every sentinel knowing the master, the replica and its peers')
      return group
    } catch (error) {
      await group.stop()
      throw error
    }
  }

  /** What an ioredis client is given as `sentinels`. */
  get sentinels(): SentinelAddress[] {
    return this.sentinelNodes.map((sentinel) => ({ host: '127.0.0.1', port: sentinel.port }))
  }

  /** Every process of the group: the two data nodes first (initial master, replica), then the sentinels. */
  get nodes(): SentinelNodeState[] {
    return [
      ...this.redisNodes.map((node) => ({ port: node.port, pid: node.pid, kind: 'redis' as const, alive: node.alive })),
      ...this.sentinelNodes.map((node) => ({ port: node.port, pid: node.pid, kind: 'sentinel' as const, alive: node.alive })),
    ]
  }

  /** The master's port as the first answering sentinel reports it. */
  async masterPort(): Promise<number> {
    let lastError: unknown = new Error('no sentinel is answering')
    for (const sentinel of this.sentinelNodes.filter((node) => node.answering)) {
      try {
        const address = await redisCommand(sentinel.port, ['SENTINEL', 'get-master-addr-by-name', this.name])
        if (Array.isArray(address)) return Number(address[1])
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }

  private process(port: number): RedisProcess {
    const node = [...this.redisNodes, ...this.sentinelNodes].find((candidate) => candidate.port === port)
    if (!node) throw new Error(`no process of the sentinel group on port ${port}`)
    return node
  }

  /** kill -9 a data node or a sentinel. */
  async kill(port: number): Promise<void> {
    await this.process(port).kill()
  }

  /** SIGSTOP a data node or a sentinel: its sockets stay open, it answers nothing. */
  pause(port: number): void {
    this.process(port).pause()
  }

  resume(port: number): void {
    this.process(port).resume()
  }

  /**
   * Starts a killed process again on its port. A data node comes back with its command-line role
   * (the old master as a master) until the sentinels reconfigure it as a replica of the new one.
   */
  async restart(port: number): Promise<void> {
    const node = this.process(port)
    await node.kill()
    await node.start()
  }

  /**
   * After the master on `oldPort` was killed or paused: polls until every answering sentinel reports
   * the same other master and that master says ROLE master. Resolves with its port.
   */
  async waitForNewMaster(oldPort: number, timeoutMs = 30_000): Promise<number> {
    return pollUntil(async () => {
      let agreed: number | undefined
      for (const sentinel of this.sentinelNodes.filter((node) => node.answering)) {
        const address = await redisCommand(sentinel.port, ['SENTINEL', 'get-master-addr-by-name', this.name])
        const port = Array.isArray(address) ? Number(address[1]) : undefined
        if (port === undefined || port === oldPort || (agreed !== undefined && port !== agreed)) return undefined
        agreed = port
      }
      if (agreed === undefined) return undefined
      const role = await redisCommand(agreed, ['ROLE'])
      return Array.isArray(role) && role[0] === 'master' ? agreed : undefined
    }, timeoutMs, `a new master replacing ${oldPort}`)
  }

  /** Kills every process and removes the group's directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.redisNodes, ...this.sentinelNodes].map((node) => node.kill()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
