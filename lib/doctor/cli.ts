#!/usr/bin/env node
/** `npx express-redis-kit doctor [--url URL] [--db N] [--key-prefix P] [--timeout MS] [--json]` */
import { formatReport, runDoctor } from './index.js'
import type { KitOptions } from '../types.js'

const USAGE = `Usage: express-redis-kit doctor [--url redis://host:6379] [--db N] [--key-prefix app:] [--timeout ms] [--json]

Reads the configuration like createKit() does (flags win): REDIS_URL, REDIS_PASSWORD, REDIS_USERNAME,
REDIS_DB, ENABLE_REDIS; REDIS_CLUSTER_NODES for a Cluster; REDIS_SENTINELS, REDIS_SENTINEL_NAME,
REDIS_SENTINEL_PASSWORD for Sentinel; REDIS_TLS, REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE,
REDIS_TLS_KEY_FILE, REDIS_TLS_SERVERNAME for TLS. Connects once and explains what works and what
does not, including the ACL rights the kit needs on keys under --key-prefix (the app's keyPrefix).
Exit code 0 when Redis is usable (or disabled on purpose), 1 when it is not, 2 for bad arguments or
configuration. Pass passwords through the environment, never on the command line.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command !== 'doctor') {
    process.stderr.write(`${USAGE}\n`)
    return command === undefined || command === '--help' || command === '-h' ? 0 : 2
  }
  const options: Partial<KitOptions> = {}
  let timeoutMs = 2000
  let json = false
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]
    const value = rest[i + 1]
    if (flag === '--json') { json = true; continue }
    if (value === undefined) { process.stderr.write(`${flag} needs a value\n${USAGE}\n`); return 2 }
    if (flag === '--url') options.url = value
    else if (flag === '--db') options.db = value as unknown as number
    else if (flag === '--key-prefix') options.keyPrefix = value
    else if (flag === '--timeout') timeoutMs = Number(value)
    else { process.stderr.write(`Unknown flag ${flag}\n${USAGE}\n`); return 2 }
    i++
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) { process.stderr.write('--timeout must be a positive number of ms\n'); return 2 }
  if (typeof options.db === 'string') options.db = /^\d+$/.test(options.db) ? Number(options.db) : Number.NaN
  try {
    const report = await runDoctor(options, timeoutMs)
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report))
    return report.ok ? 0 : 1
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    return 2
  }
}

void main(process.argv.slice(2)).then((code) => { process.exitCode = code })
