/**
 * `express-redis-kit doctor`: resolves the same configuration the kit would, connects once, and
 * explains in plain words what works and what does not. Replaces a page of troubleshooting steps.
 *
 * One server, a Cluster (every master) or Sentinel (each sentinel's view of the master, then the
 * master); what the server really is (a URL that reaches a sentinel, a Cluster node or a replica
 * is named as such, with the setting to use instead); certificate problems (hints.ts); and the
 * rights the kit needs, tried the way the kit tries them (verify.ts).
 */
import type { Cluster, Redis } from 'ioredis'
import { redactText, resolveConfig, type KitConfig } from '../core/config.js'
import { isCluster } from '../core/redis-types.js'
import { inSpan, openTelemetryTracer, type KitTracer } from '../core/spans.js'
import { ALL_NAMESPACES, deniedRights, describeDenials, wrongKind, type Denial } from '../core/verify.js'
import { within } from '../core/watchdog.js'
import type { KitOptions } from '../types.js'
import { ConnectFailure, connectOnce } from './connect.js'
import { diagnose, where } from './diagnose.js'
import { inspectServer, parseInfo } from './inspect.js'
import { askSentinels, type SentinelView } from './sentinels.js'
import { slowestOf, type SlowlogEntry } from './slowlog.js'

export { diagnose } from './diagnose.js'
export { redactCommand, type SlowlogEntry } from './slowlog.js'

export interface ClusterMasterReport {
  address: string
  pingMs?: number
  version?: string
  usedMemory?: string
  error?: string
}

export interface DoctorReport {
  ok: boolean
  config: {
    url: string
    topology: 'standalone' | 'cluster' | 'sentinel'
    db: number
    tls: boolean
    username: string
    password: 'set' | 'not set'
    enabled: boolean
    keyPrefix: string
  }
  pingMs?: number
  /** What the server says it is: `mode` standalone / cluster / sentinel, `role` master / replica. */
  server?: { version: string; mode: string; role: string; databases?: number }
  memory?: Record<string, string>
  /** The slowest entries first, arguments redacted (`set <key> <value>`). */
  slowlog?: SlowlogEntry[]
  /** Sentinel: each sentinel's answer to SENTINEL get-master-addr-by-name. */
  sentinels?: SentinelView[]
  /** Cluster: every master. */
  cluster?: { masters: ClusterMasterReport[]; state?: string }
  /** Rights the kit needs that the user lacks (empty: every feature can run). */
  denied?: Denial[]
  /** Commands the doctor may not run for this user (INFO, CONFIG GET, SLOWLOG): their part is left out. */
  notAllowed?: string[]
  error?: string
  diagnosis: string[]
}

function baseReport(config: KitConfig): DoctorReport {
  return {
    ok: false,
    config: {
      url: config.server, topology: config.topology.kind, db: config.db, tls: config.tls !== undefined,
      username: config.username ?? 'not set', password: config.password === undefined ? 'not set' : 'set',
      enabled: config.enabled, keyPrefix: config.keyPrefix,
    },
    diagnosis: [],
  }
}

function problem(report: DoctorReport, line: string): DoctorReport {
  report.ok = false
  report.diagnosis.push(line)
  return report
}

/** Sentinel: every sentinel's view first; false when no master can be reached through them. */
async function checkSentinels(config: KitConfig, report: DoctorReport, timeoutMs: number): Promise<boolean> {
  if (config.topology.kind !== 'sentinel') return true
  const { name } = config.topology
  const { views, monitored } = await askSentinels(config, timeoutMs)
  report.sentinels = views
  const answering = views.filter((view) => view.error === undefined)
  const named = [...new Set(answering.flatMap((view) => (view.master === undefined ? [] : [view.master])))]
  if (answering.length === 0) {
    problem(report, `No sentinel answers (${views.map((view) => `${view.address}: ${view.error ?? ''}`).join('; ')}): check REDIS_SENTINELS, that the sentinels run, and REDIS_SENTINEL_PASSWORD if they require one.`)
    return false
  }
  if (named.length === 0) {
    const names = monitored.length > 0 ? `they monitor ${monitored.map((n) => `'${n}'`).join(', ')}` : 'they monitor no master'
    problem(report, `No sentinel knows a master named '${name}' (${names}): set REDIS_SENTINEL_NAME to the name in their \`sentinel monitor\` line.`)
    return false
  }
  if (named.length > 1) {
    report.diagnosis.push(`The sentinels disagree on the master of '${name}' (${named.join(', ')}): a failover may be under way, or some sentinels cannot see each other.`)
  }
  const silent = views.filter((view) => view.error !== undefined)
  if (silent.length > 0) {
    report.diagnosis.push(`${silent.length} of ${views.length} sentinels did not answer (${silent.map((view) => `${view.address}: ${view.error ?? ''}`).join('; ')}); failover needs a quorum of them.`)
  }
  return true
}

/** Where a plain client is connected (the master Sentinel named, or the URL's server). */
function remote(client: Redis, fallback: string): string {
  const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream
  return stream?.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort ?? '?'}` : fallback
}

async function inspectOne(client: Redis, config: KitConfig, report: DoctorReport, timeoutMs: number): Promise<boolean> {
  const facts = await inspectServer(client, timeoutMs)
  report.pingMs = facts.pingMs
  report.server = {
    version: facts.role?.version ?? 'unknown', mode: facts.role?.mode ?? 'unknown', role: facts.role?.role ?? 'unknown',
    ...(facts.databases === undefined ? {} : { databases: facts.databases }),
  }
  const wrong = facts.role === undefined ? undefined : wrongKind(facts.role, config.topology, where(config))
  if (wrong !== undefined) {
    problem(report, `${wrong.charAt(0).toUpperCase()}${wrong.slice(1)}.`)
    return false
  }
  if (facts.memory) report.memory = facts.memory
  if (facts.slowlog) report.slowlog = facts.slowlog
  if (facts.notAllowed.length > 0) report.notAllowed = facts.notAllowed
  return true
}

async function inspectCluster(client: Cluster, report: DoctorReport, timeoutMs: number): Promise<boolean> {
  const masters = client.nodes('master')
  const reports: ClusterMasterReport[] = []
  const slowlogs: SlowlogEntry[][] = []
  const notAllowed = new Set<string>()
  const states = new Set<string>()
  for (const node of masters) {
    const address = `${node.options.host ?? '?'}:${node.options.port ?? '?'}`
    try {
      const facts = await inspectServer(node, timeoutMs, address)
      reports.push({ address, pingMs: facts.pingMs, ...(facts.role?.version ? { version: facts.role.version } : {}),
        ...(facts.memory?.used_memory_human ? { usedMemory: facts.memory.used_memory_human } : {}) })
      if (facts.slowlog) slowlogs.push(facts.slowlog)
      for (const name of facts.notAllowed) notAllowed.add(name)
      report.memory ??= facts.memory
      const info = parseInfo(String(await within(node.call('CLUSTER', 'INFO') as Promise<string>, timeoutMs, 'CLUSTER INFO')))
      states.add(info.cluster_state ?? 'unknown')
    } catch (error) {
      reports.push({ address, error: error instanceof Error ? error.message : String(error) })
    }
  }
  report.cluster = { masters: reports, ...(states.size > 0 ? { state: [...states].join('/') } : {}) }
  const answered = reports.filter((master) => master.error === undefined)
  report.pingMs = Math.max(0, ...answered.map((master) => master.pingMs ?? 0))
  report.server = { version: answered[0]?.version ?? 'unknown', mode: 'cluster', role: 'master' }
  if (slowlogs.length > 0) report.slowlog = slowestOf(slowlogs)
  if (notAllowed.size > 0) report.notAllowed = [...notAllowed]
  const failed = reports.filter((master) => master.error !== undefined)
  if (masters.length === 0) {
    problem(report, 'The cluster lists no master: check that `redis-cli --cluster create` (or your provider) set it up.')
    return false
  }
  if (failed.length > 0) {
    problem(report, `${failed.length} of ${reports.length} masters do not answer (${failed.map((m) => `${m.address}: ${m.error ?? ''}`).join('; ')}): the keys of their slots cannot be used until they are back or replaced.`)
    return false
  }
  if (states.size !== 1 || !states.has('ok')) {
    problem(report, `The cluster reports cluster_state:${[...states].join('/')}: some slots are not served (a failover under way, or a master without a replica died).`)
    return false
  }
  return true
}

/** The kit's rights, tried on scratch keys under the key prefix, for every feature. */
async function checkRightsOf(client: Redis | Cluster, config: KitConfig, report: DoctorReport, timeoutMs: number): Promise<boolean> {
  const denied = await deniedRights(client, config.keyPrefix, timeoutMs, ALL_NAMESPACES)
  report.denied = denied
  if (denied.length === 0) return true
  problem(report, `${describeDenials(denied, config.keyPrefix)}.`)
  if (config.keyPrefix === '' && denied.some((denial) => /keys under|NOPERM .*keys/.test(`${denial.what} ${denial.reply}`))) {
    report.diagnosis.push('If the app sets `keyPrefix`, run the doctor with --key-prefix <prefix>: the rights are tried on keys under it.')
  }
  return false
}

function success(config: KitConfig, report: DoctorReport, client: Redis | Cluster): void {
  report.ok = true
  const tls = config.tls === undefined ? '' : ' over TLS'
  const version = report.server?.version ?? 'unknown'
  if (report.cluster) {
    report.diagnosis.push(`Redis Cluster ${version}: all ${report.cluster.masters.length} masters answer (slowest PING ${(report.pingMs ?? 0).toFixed(2)} ms)${tls}, cluster_state ok; the kit will use it.`)
  } else if (config.topology.kind === 'sentinel') {
    const at = remote(client as Redis, '?')
    report.diagnosis.push(`The sentinels name ${at} as the master of '${config.topology.name}'; Redis ${version} answers there in ${(report.pingMs ?? 0).toFixed(2)} ms${tls}; the kit will use it.`)
  } else {
    report.diagnosis.push(`Redis ${version} answers in ${(report.pingMs ?? 0).toFixed(2)} ms${tls}; the kit will use it.`)
  }
  if (report.notAllowed) {
    report.diagnosis.push(`This user may not run ${report.notAllowed.join(', ')} (not allowed by its ACL): that part of the report is left out. The kit does not need ${report.notAllowed.length > 1 ? 'them' : 'it'}.`)
  }
  const policy = report.memory?.maxmemory_policy
  if (policy && policy.includes('allkeys')) {
    report.diagnosis.push(`maxmemory-policy is ${policy}: sessions may be evicted under memory pressure; volatile-lru or noeviction keeps them.`)
  }
}

/**
 * One span per check ('express-redis-kit doctor <check>', attributes `doctor.check` and, for a
 * check that answers yes or no, `doctor.ok`) when telemetry is on and the app has a tracer.
 */
function checker(tracer: KitTracer | undefined) {
  return function check<T>(name: string, work: () => Promise<T>): Promise<T> {
    return inSpan(tracer, `express-redis-kit doctor ${name}`, { 'doctor.check': name }, async (span) => {
      const result = await work()
      if (typeof result === 'boolean') span?.setAttribute('doctor.ok', result)
      return result
    })
  }
}

export async function runDoctor(options: Readonly<Partial<KitOptions>> = {}, timeoutMs = 2000): Promise<DoctorReport> {
  const config = resolveConfig({ ...options, logger: false })
  const check = checker(config.telemetry ? openTelemetryTracer() : undefined)
  const report = baseReport(config)
  if (!config.enabled) {
    report.ok = true
    report.diagnosis.push('Redis is disabled (ENABLE_REDIS=false): every feature serves from memory.')
    return report
  }
  let client: Redis | Cluster | undefined
  try {
    if (config.topology.kind === 'sentinel' && !(await check('sentinels', () => checkSentinels(config, report, timeoutMs)))) return report
    const connected = client = await check('connect', () => connectOnce(config, timeoutMs))
    const usable = await check('inspect', () => isCluster(connected) ? inspectCluster(connected, report, timeoutMs) : inspectOne(connected, config, report, timeoutMs))
    if (usable && (await check('rights', () => checkRightsOf(connected, config, report, timeoutMs)))) success(config, report, connected)
  } catch (error) {
    const failure = error instanceof ConnectFailure ? error.original : error instanceof Error ? error : new Error(String(error))
    report.ok = false
    report.error = redactText(failure.message.trim(), config)
    report.diagnosis.push(...diagnose(failure, config, error instanceof ConnectFailure && error.beforeFirstReply).map((line) => redactText(line, config)))
  } finally {
    client?.disconnect()
  }
  report.diagnosis = report.diagnosis.map((line) => redactText(line, config))
  return report
}

export function formatReport(report: DoctorReport): string {
  const { config } = report
  const lines = [
    'express-redis-kit doctor',
    '',
    `  topology  ${config.topology}`,
    `  url       ${config.url}`,
    `  db        ${config.db}`,
    `  tls       ${config.tls ? 'on' : 'off'}`,
    `  user      ${config.username}`,
    `  password  ${config.password}`,
    `  prefix    ${config.keyPrefix === '' ? '(none)' : config.keyPrefix}`,
    `  enabled   ${config.enabled}`,
    '',
  ]
  for (const view of report.sentinels ?? []) {
    lines.push(`  sentinel  ${view.address}  ${view.error !== undefined ? `error: ${view.error}` : view.master !== undefined ? `master ${view.master}` : 'does not know the name'}`)
  }
  for (const master of report.cluster?.masters ?? []) {
    lines.push(`  master    ${master.address}  ${master.error !== undefined ? `error: ${master.error}` : `${(master.pingMs ?? 0).toFixed(2)} ms  Redis ${master.version ?? '?'}  ${master.usedMemory ?? ''}`.trimEnd()}`)
  }
  if (report.cluster?.state) lines.push(`  cluster   cluster_state:${report.cluster.state}`)
  if (report.pingMs !== undefined) lines.push(`  ping      ${report.pingMs.toFixed(2)} ms`)
  if (report.server) lines.push(`  server    Redis ${report.server.version} (${report.server.mode}, ${report.server.role})`)
  if (report.memory) for (const [k, v] of Object.entries(report.memory)) lines.push(`  ${k.padEnd(24)} ${v}`)
  if (report.notAllowed) lines.push(`  not allowed for this user: ${report.notAllowed.join(', ')}`)
  if (report.denied) lines.push(`  rights    ${report.denied.length === 0 ? 'every feature' : `missing: ${report.denied.map((d) => d.what).join(', ')}`}`)
  if (report.slowlog?.length) {
    lines.push('', '  slowest commands (SLOWLOG, slowest first, arguments hidden):')
    for (const entry of report.slowlog) lines.push(`    #${entry.id} ${entry.durationMicros} µs  ${entry.command}${entry.node ? `  on ${entry.node}` : ''}`)
  }
  if (report.error) lines.push(`  error     ${report.error}`)
  lines.push('', report.ok ? 'OK' : 'PROBLEM', ...report.diagnosis.map((d) => `  - ${d}`), '')
  return lines.join('\n')
}
