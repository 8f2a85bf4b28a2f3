/**
 * Starts and controls a private Redis Cluster (real redis-server processes on free loopback ports),
 * so tests can kill, hang and restart masters and watch replicas take over, without ever touching
 * the shared server on 6379.
 *
 * Also home of the small pieces the sentinel and TLS helpers share (a one-shot RESP command, a
 * tracked redis-server process): they would deserve a file of their own, but this change may only
 * add the helper files it was asked for.
 */
import { stripVTControlCharacters } from 'node:util'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './redis-server.js'

// ---------------------------------------------------------------------------------------------
// Shared: one-shot RESP commands
// ---------------------------------------------------------------------------------------------

/** A RESP2 reply; errors are thrown as RespError rather than returned. */
export type RespReply = string | number | null | RespReply[]

export class RespError extends Error {
  override readonly name = 'RespError'
}

/** Parses one complete RESP2 value at `offset`; undefined while more bytes are needed. */
function parseReply(buffer: Buffer, offset: number): { value: RespReply | RespError; next: number } | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset)
  if (lineEnd < 0) return undefined
  const type = buffer.toString('latin1', offset, offset + 1)
  const line = buffer.toString('utf8', offset + 1, lineEnd)
  const afterLine = lineEnd + 2
  switch (type) {
    case '+': return { value: line, next: afterLine }
    case '-': return { value: new RespError(line), next: afterLine }
    case ':': return { value: Number(line), next: afterLine }
    case '$': {
      const length = Number(line)
      if (length < 0) return { value: null, next: afterLine }
      const end = afterLine + length
      // The payload is followed by its own CRLF: wait for both.
      if (buffer.length < end + 2) return undefined
      return { value: buffer.toString('utf8', afterLine, end), next: end + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, next: afterLine }
      const items: RespReply[] = []
      let next = afterLine
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next)
        if (!item) return undefined
        // An error nested in an array (EXEC) is kept as its message; none of our callers send one.
        items.push(item.value instanceof RespError ? item.value.message : item.value)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

function encodeCommand(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
}

/** Opens the connection a command travels on; plain TCP unless a caller (TLS) says otherwise. */
export type Connect = (port: number) => Socket

const plainConnect: Connect = (port) => new Socket().connect(port, '127.0.0.1')

/**
 * Sends one command on a fresh connection and resolves with its complete reply (unlike a single
 * 'data' event, which may hold only part of a CLUSTER NODES reply). Rejects on a Redis error, a
 * socket error or the timeout, so pollers can treat every failure alike.
 */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 1000, connect: Connect = plainConnect): Promise<RespReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port)
    let buffer = Buffer.alloc(0)
    const finish = (error: Error | undefined, value?: RespReply): void => {
      clearTimeout(timer)
      socket.destroy()
      if (error) reject(error)
      else resolve(value ?? null)
    }
    const timer = setTimeout(() => finish(new Error(`no reply to ${args[0] ?? '?'} from ${port} within ${timeoutMs} ms`)), timeoutMs)
    socket.on('error', (error) => finish(error))
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      let parsed
      try {
        parsed = parseReply(buffer, 0)
      } catch (error) {
        finish(error as Error)
        return
      }
      if (!parsed) return
      if (parsed.value instanceof RespError) finish(parsed.value)
      else finish(undefined, parsed.value)
    })
    // Written before the connection is up: node buffers it, and TLS sockets send it after the handshake.
    socket.write(encodeCommand(args))
  })
}

/** A bulk-string reply, or a clear error when the server answered something else. */
export async function redisText(port: number, args: readonly string[], timeoutMs = 1000, connect: Connect = plainConnect): Promise<string> {
  const reply = await redisCommand(port, args, timeoutMs, connect)
  if (typeof reply !== 'string') throw new Error(`${args.join(' ')} on ${port}: expected text, got ${JSON.stringify(reply)}`)
  return reply
}

/** `field:value` lines of INFO / CLUSTER INFO as a map. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return fields
}

/** Polls `check` until it returns a value (not undefined); never a fixed sleep. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      // Servers are expected to refuse or time out while they start or fail over; report the last one.
      lastError = error
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new Error(`${what} not reached within ${timeoutMs} ms${why}`)
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

// ---------------------------------------------------------------------------------------------
// Shared: one tracked redis-server process
// ---------------------------------------------------------------------------------------------

/** Every process these helpers started: killed when the test process exits, even after a crash. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
})

/** A free port not in `taken` (the kernel may hand out a port it just gave us, since we closed it). */
export async function freePortExcept(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await freePort()
    if (port !== 0 && !taken.has(port)) {
      taken.add(port)
      return port
    }
  }
  throw new Error('no free loopback port')
}

/**
 * One redis-server (or sentinel) process with fixed arguments, so it can be killed, hung and started
 * again on the same port. Keeps the tail of its output: when redis-server refuses a flag, the
 * reason is in it, and "exited during start-up" alone would not say which.
 */
export class RedisProcess {
  readonly port: number
  private readonly args: readonly string[]
  private readonly ready: (port: number) => Promise<boolean>
  private child: ChildProcess | undefined
  private output = ''
  private paused = false

  /** `ready` is one probe (e.g. a PING); start() repeats it until it says yes. */
  constructor(port: number, args: readonly string[], ready: (port: number) => Promise<boolean>) {
    this.port = port
    this.args = args
    this.ready = ready
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get alive(): boolean {
    return this.child !== undefined
  }

  /** Alive and not SIGSTOPped: the processes whose answers a poll can wait for. */
  get answering(): boolean {
    return this.child !== undefined && !this.paused
  }

  /** Spawns the process and polls `ready` until it passes (never a fixed sleep). */
  async start(deadlineMs = 10_000): Promise<void> {
    if (this.child) throw new Error(`redis-server on ${this.port} already running`)
    this.output = ''
    this.paused = false
    const child = spawn('redis-server', [...this.args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    running.add(child)
    const keep = (chunk: Buffer): void => { this.output = (this.output + chunk.toString()).slice(-2000) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    child.once('exit', () => {
      running.delete(child)
      if (this.child === child) this.child = undefined
    })
    const deadline = Date.now() + deadlineMs
    for (;;) {
      if (this.child !== child) throw new Error(`redis-server on ${this.port} exited during start-up: ${this.output.trim()}`)
      if (await this.ready(this.port).catch(() => false)) return
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not become ready: ${this.output.trim()}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** kill -9: the server dies without closing connections gracefully. */
  async kill(): Promise<void> {
    const child = this.child
    if (!child) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    // SIGKILL ends a SIGSTOPped process too, so a paused node needs no resume first.
    child.kill('SIGKILL')
    await exited
    this.paused = false
  }

  /** SIGSTOP: the server keeps its sockets open but answers nothing (a hang). */
  pause(): void {
    if (!this.child) return
    this.child.kill('SIGSTOP')
    this.paused = true
  }

  /** SIGCONT: the hung server resumes. */
  resume(): void {
    if (!this.child) return
    this.child.kill('SIGCONT')
    this.paused = false
  }
}

/** The readiness probe most servers need: a plain PING answered with PONG. */
export async function answersPing(port: number): Promise<boolean> {
  return (await redisCommand(port, ['PING'], 500)) === 'PONG'
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

export interface RedisClusterOptions {
  /** At least 3: redis-cli refuses to create a cluster with fewer masters. */
  masters?: number
  replicasPerMaster?: number
  /** cluster-node-timeout: how long a silent node takes to be failed (and its replica promoted). */
  nodeTimeoutMs?: number
  /** How long start() waits for the cluster to be created and agreed on. */
  startTimeoutMs?: number
}

export type ClusterRole = 'master' | 'replica'

export interface ClusterNodeState {
  port: number
  /** Undefined while the node is killed. */
  pid: number | undefined
  /** As of the last topology read (start, masters(), waitForFailover(), restart()); 'master' only while serving slots. */
  role: ClusterRole
  alive: boolean
}

/** One line of CLUSTER NODES. */
export interface ClusterNodeEntry {
  id: string
  host: string
  port: number
  flags: string[]
  role: ClusterRole
  /** For a replica, its master's id. */
  masterId: string | undefined
  /** Slot ranges as [first, last], inclusive. */
  slots: Array<[number, number]>
  /** Flagged `fail` (not merely `fail?`): the cluster has agreed it is down. */
  failed: boolean
}

export interface ClusterMaster {
  host: string
  port: number
  id: string
  slots: Array<[number, number]>
}

/** Parses CLUSTER NODES; skips migrating/importing markers (`[slot->-id]`), which we never create. */
export function parseClusterNodes(text: string): ClusterNodeEntry[] {
  const entries: ClusterNodeEntry[] = []
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ')
    const [id, address, flagText, master] = fields
    if (!id || !address || !flagText || master === undefined) continue
    // ip:port@cport[,hostname]
    const hostPort = address.split('@')[0] ?? ''
    const colon = hostPort.lastIndexOf(':')
    const flags = flagText.split(',')
    const slots: Array<[number, number]> = []
    for (const slot of fields.slice(8)) {
      if (slot.startsWith('[')) continue
      const [first, last] = slot.split('-')
      slots.push([Number(first), Number(last ?? first)])
    }
    entries.push({
      id,
      host: hostPort.slice(0, colon),
      port: Number(hostPort.slice(colon + 1)),
      flags,
      role: flags.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? undefined : master,
      slots,
      failed: flags.includes('fail'),
    })
  }
  return entries
}

/** A node's view reduced to what every node must agree on: who serves which slots, who replicates whom. */
function topologyKey(entries: ClusterNodeEntry[]): string {
  return entries
    .filter((entry) => !entry.failed)
    .map((entry) => `${entry.port}:${entry.role}:${entry.masterId === undefined ? '' : portOf(entries, entry.masterId)}:${entry.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
    .sort()
    .join(' ')
}

function portOf(entries: ClusterNodeEntry[], id: string): number | undefined {
  return entries.find((entry) => entry.id === id)?.port
}

interface ClusterNode {
  process: RedisProcess
  /** From the last topology read: */
  role: ClusterRole
  id: string
  masterId: string | undefined
  slots: Array<[number, number]>
}

export class RedisCluster {
  private readonly dir: string
  private readonly nodeList: ClusterNode[]
  private readonly nodeTimeoutMs: number

  private constructor(dir: string, nodes: ClusterNode[], nodeTimeoutMs: number) {
    this.dir = dir
    this.nodeList = nodes
    this.nodeTimeoutMs = nodeTimeoutMs
  }

  /**
   * Starts masters × (1 + replicasPerMaster) nodes, creates the cluster with redis-cli and waits
   * until every node reports `cluster_state:ok`, all 16384 slots, the same topology, and every
   * replica's link to its master is up (so a failover test can rely on the replica).
   */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3
    const replicasPerMaster = options.replicasPerMaster ?? 1
    const nodeTimeoutMs = options.nodeTimeoutMs ?? 1500
    const count = masters * (1 + replicasPerMaster)
    const dir = mkdtempSync(join(tmpdir(), 'erk-cluster-'))
    const taken = new Set<number>()
    const nodes: ClusterNode[] = []
    const cluster = new RedisCluster(dir, nodes, nodeTimeoutMs)
    try {
      // Ports are picked one after the other (so no two collide), processes started together.
      for (let i = 0; i < count; i++) {
        const port = await freePortExcept(taken)
        // An explicit cluster-port (Redis 7.0+) from the kernel too, rather than port + 10000,
        // which can be taken or above 65535 when the kernel hands out ports above 55535.
        const busPort = await freePortExcept(taken)
        nodes.push({ process: new RedisProcess(port, cluster.nodeArgs(port, busPort), answersPing), role: 'master', id: '', masterId: undefined, slots: [] })
      }
      await Promise.all(nodes.map((node) => node.process.start()))
      await cluster.create(replicasPerMaster, options.startTimeoutMs ?? 30_000)
      return cluster
    } catch (error) {
      await cluster.stop()
      throw error
    }
  }

  private nodeArgs(port: number, busPort: number): string[] {
    const nodeDir = join(this.dir, String(port))
    mkdirSync(nodeDir)
    return ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--loglevel', 'warning',
      '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
      '--cluster-config-file', join(this.dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', String(this.nodeTimeoutMs),
      // 0: a replica always tries to take over, however long since it heard from its master;
      // the default (10) can refuse a failover after a pause longer than 10 × node timeout.
      '--cluster-replica-validity-factor', '0',
      // The default makes a master wait 5 s for more replicas before a diskless full sync.
      '--repl-diskless-sync-delay', '0',
      '--appendonly', 'no', '--save', '',
      // Each node has its own dir: replicas write the full-sync RDB there, and must not share one.
      '--dir', nodeDir]
  }

  private async create(replicasPerMaster: number, timeoutMs: number): Promise<void> {
    const addresses = this.nodeList.map((node) => `127.0.0.1:${node.process.port}`)
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('redis-cli', ['--cluster', 'create', ...addresses,
        '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] })
      running.add(child)
      let text = ''
      child.stdout.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.stderr.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.once('error', reject)
      child.once('exit', (code) => {
        running.delete(child)
        // redis-cli colours its output even into a pipe; strip that for error messages.
        const plain = stripVTControlCharacters(text)
        if (code === 0) resolve(plain)
        else reject(new Error(`redis-cli --cluster create exited with ${code}: ${plain}`))
      })
    })
    if (!output.includes('All 16384 slots covered')) throw new Error(`redis-cli --cluster create: ${output}`)
    await this.waitUntilAgreed(timeoutMs)
  }

  /** Polls every answering node until all are ok, agree on the topology, and replicas are in sync. */
  private async waitUntilAgreed(timeoutMs: number): Promise<ClusterNodeEntry[]> {
    return pollUntil(async () => {
      const live = this.nodeList.filter((node) => node.process.answering)
      let agreed: string | undefined
      let entries: ClusterNodeEntry[] = []
      for (const node of live) {
        const info = parseInfo(await redisText(node.process.port, ['CLUSTER', 'INFO']))
        if (info.get('cluster_state') !== 'ok' || info.get('cluster_slots_assigned') !== '16384') return undefined
        entries = parseClusterNodes(await redisText(node.process.port, ['CLUSTER', 'NODES']))
        const key = topologyKey(entries)
        if (agreed !== undefined && key !== agreed) return undefined
        agreed = key
        const self = entries.find((entry) => entry.flags.includes('myself'))
        if (self?.role === 'replica') {
          const replication = parseInfo(await redisText(node.process.port, ['INFO', 'replication']))
          if (replication.get('master_link_status') !== 'up') return undefined
        }
      }
      this.remember(entries)
      return entries
    }, timeoutMs, 'cluster_state:ok with all 16384 slots on every node')
  }

  /**
   * Records ids, roles and slots from one (agreed) CLUSTER NODES view. A master that lost its
   * slots (failed over, not yet back as a replica) counts as a replica: it serves nothing.
   */
  private remember(entries: ClusterNodeEntry[]): void {
    for (const node of this.nodeList) {
      const entry = entries.find((candidate) => candidate.port === node.process.port)
      if (!entry) continue
      node.id = entry.id
      node.role = entry.role === 'master' && entry.slots.length > 0 ? 'master' : 'replica'
      node.masterId = entry.masterId
      node.slots = entry.slots
    }
  }

  get nodes(): ClusterNodeState[] {
    return this.nodeList.map((node) => ({ port: node.process.port, pid: node.process.pid, role: node.role, alive: node.process.alive }))
  }

  /** What an ioredis Cluster client is given: every node, so any one may be down. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodeList.map((node) => ({ host: '127.0.0.1', port: node.process.port }))
  }

  /** The masters serving slots now, as CLUSTER NODES on the first answering node reports them. */
  async masters(): Promise<ClusterMaster[]> {
    const entries = await this.clusterNodes()
    this.remember(entries)
    return entries
      .filter((entry) => entry.role === 'master' && !entry.failed && entry.slots.length > 0)
      .map((entry) => ({ host: entry.host, port: entry.port, id: entry.id, slots: entry.slots }))
      .sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0))
  }

  /** The master serving `slot` now (0–16383; CLUSTER KEYSLOT gives a key's slot). */
  async masterForSlot(slot: number): Promise<ClusterMaster> {
    const master = (await this.masters()).find((candidate) => candidate.slots.some(([first, last]) => slot >= first && slot <= last))
    if (!master) throw new Error(`no master serves slot ${slot}`)
    return master
  }

  private async clusterNodes(): Promise<ClusterNodeEntry[]> {
    let lastError: unknown = new Error('no cluster node is answering')
    for (const node of this.nodeList.filter((candidate) => candidate.process.answering)) {
      try {
        return parseClusterNodes(await redisText(node.process.port, ['CLUSTER', 'NODES']))
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }

  private node(port: number): ClusterNode {
    const node = this.nodeList.find((candidate) => candidate.process.port === port)
    if (!node) throw new Error(`no cluster node on port ${port}`)
    return node
  }

  /** kill -9 one node. */
  async kill(port: number): Promise<void> {
    await this.node(port).process.kill()
  }

  /** SIGSTOP one node: its sockets stay open, it answers nothing (and, past the node timeout, is failed). */
  pause(port: number): void {
    this.node(port).process.pause()
  }

  resume(port: number): void {
    this.node(port).process.resume()
  }

  /**
   * Kills (if needed) and starts a node again on its port with its nodes.conf, so it rejoins with
   * its old identity (a failed-over master comes back as a replica), then waits until the whole
   * cluster agrees again.
   */
  async restart(port: number, timeoutMs = 20_000): Promise<void> {
    const node = this.node(port)
    await node.process.kill()
    await node.process.start()
    await this.waitUntilAgreed(timeoutMs)
  }

  /**
   * After `oldMasterPort` was killed or paused: polls until one of its replicas serves its slots
   * in the eyes of every answering node, each with `cluster_state:ok`. Resolves with the new master.
   */
  async waitForFailover(oldMasterPort: number, timeoutMs = 20_000): Promise<ClusterMaster> {
    const old = this.node(oldMasterPort)
    const [firstRange] = old.slots
    if (old.role !== 'master' || !firstRange) throw new Error(`port ${oldMasterPort} was not a master at the last topology read`)
    // Roles and slots as they were before the kill: the poll below reads the survivors' new view.
    const oldSlot = firstRange[0]
    const formerReplicas = this.nodeList.filter((node) => node.masterId === old.id).map((node) => node.process.port)
    if (formerReplicas.length === 0) throw new Error(`master ${oldMasterPort} has no replica to promote`)
    return pollUntil(async () => {
      let promoted: ClusterNodeEntry | undefined
      for (const node of this.nodeList.filter((candidate) => candidate.process.answering && candidate !== old)) {
        const info = parseInfo(await redisText(node.process.port, ['CLUSTER', 'INFO']))
        if (info.get('cluster_state') !== 'ok') return undefined
        const entries = parseClusterNodes(await redisText(node.process.port, ['CLUSTER', 'NODES']))
        const owner = entries.find((entry) => entry.role === 'master' && !entry.failed &&
          entry.slots.some(([first, last]) => oldSlot >= first && oldSlot <= last))
        // Every survivor must see the same former replica owning the old master's slots.
        if (!owner || !formerReplicas.includes(owner.port) || (promoted && promoted.port !== owner.port)) return undefined
        promoted = owner
      }
      if (!promoted) return undefined
      // Refresh roles so nodes and masters() reflect the promotion (and the old master's loss of its slots).
      this.remember(await this.clusterNodes())
      return { host: promoted.host, port: promoted.port, id: promoted.id, slots: promoted.slots }
    }, timeoutMs, `a replica of ${oldMasterPort} promoted`)
  }

  /** Kills every node and removes the cluster's directory. */
  async stop(): Promise<void> {
    await Promise.all(this.nodeList.map((node) => node.process.kill()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
