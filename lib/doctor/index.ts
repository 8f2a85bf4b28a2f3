/**
 * `express-redis-kit doctor`: resolves the same configuration the kit would, connects once, and
 * explains in plain words what works and what does not. Replaces a page of troubleshooting steps.
 */
import type { Redis } from 'ioredis'
import { redactText, resolveConfig, type KitConfig } from '../core/config.js'
import { createRedisClient } from '../core/redis-client.js'
import type { KitOptions } from '../types.js'

export interface DoctorReport {
  ok: boolean
  config: { url: string; db: number; tls: boolean; password: 'set' | 'not set'; enabled: boolean }
  pingMs?: number
  server?: { version: string; mode: string; databases?: number }
  memory?: Record<string, string>
  slowlog?: { id: number; durationMicros: number; command: string }[]
  error?: string
  diagnosis: string[]
}

const MEMORY_FIELDS = ['used_memory_human', 'used_memory_peak_human', 'maxmemory_human', 'maxmemory_policy', 'mem_fragmentation_ratio']

function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':')
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = line.slice(at + 1).trim()
  }
  return fields
}

/** Plain-language reading of a connection failure. */
export function diagnose(error: Error, config: KitConfig): string[] {
  const host = config.url ? `${config.url.hostname}:${config.url.port || 6379}` : config.server
  const hostname = config.url?.hostname ?? config.server
  const text = `${error.message} ${(error as { code?: string }).code ?? ''}`
  if (/WRONGPASS|invalid password|invalid username-password/i.test(text)) {
    return ['Authentication failed: the password (REDIS_PASSWORD or the URL) is wrong for this server. Check it matches `requirepass` (or the ACL user).']
  }
  if (/NOAUTH|Authentication required/i.test(text)) {
    return ['The server requires a password and none was sent: set REDIS_PASSWORD or put it in REDIS_URL (redis://:password@host:6379).']
  }
  if (/DB index is out of range|invalid DB index/i.test(text)) {
    return [`Database ${config.db} does not exist on this server: set REDIS_DB to a number below its \`databases\` setting (16 by default).`]
  }
  if (/ECONNREFUSED/.test(text)) {
    return [`Nothing accepts connections on ${host}: start Redis (e.g. \`docker compose up -d redis\`) or correct REDIS_URL.`]
  }
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) {
    return [`The host name \`${hostname}\` does not resolve: correct REDIS_URL.`]
  }
  if (config.tls && /wrong version number|EPROTO|ssl|tls|ECONNRESET|socket hang up|ETIMEDOUT|timed out/i.test(text)) {
    return [`TLS handshake failed with ${host}: REDIS_URL uses rediss:// but the server does not seem to speak TLS on this port. Use redis://, or the server's TLS port (if it does speak TLS, check firewalls and \`bind\`).`]
  }
  if (!config.tls && /ECONNRESET|Connection is closed|timed out|ETIMEDOUT|not ready/i.test(text)) {
    return [`No reply from ${host} within the timeout. If the server requires TLS, use rediss://; otherwise check firewalls, \`bind\` and \`protected-mode\` in redis.conf, and that the server is not stuck.`]
  }
  if (/ETIMEDOUT|timed out|not ready/i.test(text)) {
    return [`No reply from ${host} within the timeout: check firewalls, security groups, and \`bind\` in redis.conf.`]
  }
  return [`Could not use Redis: ${error.message}`]
}

function connectOnce(config: KitConfig, timeoutMs: number): Promise<Redis> {
  const client = createRedisClient(config, {
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    connectionName: 'express-redis-kit-doctor',
  })
  let lastError: Error | undefined
  client.on('error', (error: Error) => { lastError = error })
  return new Promise<Redis>((resolve, reject) => {
    const timer = setTimeout(() => { client.disconnect(); reject(lastError ?? new Error(`not ready within ${timeoutMs} ms (timed out)`)) }, timeoutMs + 200)
    client.connect().then(
      // ioredis reports a failed SELECT only as an 'error' event and carries on in database 0.
      () => { clearTimeout(timer); if (lastError) { client.disconnect(); reject(lastError) } else resolve(client as Redis) },
      (error: Error) => { clearTimeout(timer); client.disconnect(); reject(lastError ?? error) },
    )
  })
}

export async function runDoctor(options: Readonly<Partial<KitOptions>> = {}, timeoutMs = 2000): Promise<DoctorReport> {
  const config = resolveConfig({ ...options, logger: false })
  const report: DoctorReport = {
    ok: false,
    config: {
      url: config.server, db: config.db, tls: config.tls !== undefined,
      password: config.password === undefined ? 'not set' : 'set', enabled: config.enabled,
    },
    diagnosis: [],
  }
  if (!config.enabled) {
    report.ok = true
    report.diagnosis.push('Redis is disabled (ENABLE_REDIS=false): every feature serves from memory.')
    return report
  }
  let client: Redis | undefined
  try {
    client = await connectOnce(config, timeoutMs)
    const started = process.hrtime.bigint()
    await client.ping()
    report.pingMs = Number(process.hrtime.bigint() - started) / 1e6
    const server = parseInfo(await client.info('server'))
    const keyspace = await client.config('GET', 'databases').catch(() => [] as unknown) as string[]
    report.server = {
      version: server.redis_version ?? 'unknown',
      mode: server.redis_mode ?? 'unknown',
      ...(keyspace[1] ? { databases: Number(keyspace[1]) } : {}),
    }
    const memory = parseInfo(await client.info('memory'))
    report.memory = Object.fromEntries(MEMORY_FIELDS.filter((f) => memory[f] !== undefined).map((f) => [f, memory[f] as string]))
    const slowlog = await client.call('SLOWLOG', 'GET', '5').catch(() => []) as [number, number, number, string[]][]
    report.slowlog = slowlog.map(([id, , durationMicros, args]) => ({ id, durationMicros, command: args.slice(0, 3).join(' ') }))
    report.ok = true
    report.diagnosis.push(`Redis ${report.server.version} answers in ${report.pingMs.toFixed(2)} ms${config.tls ? ' over TLS' : ''}; the kit will use it.`)
    if (memory.maxmemory_policy && memory.maxmemory_policy !== 'noeviction' && memory.maxmemory_policy.includes('allkeys')) {
      report.diagnosis.push(`maxmemory-policy is ${memory.maxmemory_policy}: sessions may be evicted under memory pressure; volatile-lru or noeviction keeps them.`)
    }
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error))
    report.error = redactText(failure.message, config)
    report.diagnosis.push(...diagnose(failure, config).map((line) => redactText(line, config)))
  } finally {
    client?.disconnect()
  }
  return report
}

export function formatReport(report: DoctorReport): string {
  const lines = [
    'express-redis-kit doctor',
    '',
    `  url       ${report.config.url}`,
    `  db        ${report.config.db}`,
    `  tls       ${report.config.tls ? 'on' : 'off'}`,
    `  password  ${report.config.password}`,
    `  enabled   ${report.config.enabled}`,
    '',
  ]
  if (report.pingMs !== undefined) lines.push(`  ping      ${report.pingMs.toFixed(2)} ms`)
  if (report.server) lines.push(`  server    Redis ${report.server.version} (${report.server.mode})`)
  if (report.memory) for (const [k, v] of Object.entries(report.memory)) lines.push(`  ${k.padEnd(24)} ${v}`)
  if (report.slowlog?.length) {
    lines.push('', '  slowest recent commands (SLOWLOG):')
    for (const entry of report.slowlog) lines.push(`    #${entry.id} ${entry.durationMicros} µs  ${entry.command}`)
  }
  if (report.error) lines.push(`  error     ${report.error}`)
  lines.push('', report.ok ? 'OK' : 'PROBLEM', ...report.diagnosis.map((d) => `  - ${d}`), '')
  return lines.join('\n')
}
