/**
 * Which Redis the kit talks to, and how: one server (a URL), a Cluster (its start-up nodes) or a
 * Sentinel-watched master (the sentinels and the master's name), with TLS and an ACL user.
 * Read once from options and the environment; exactly one form may be given.
 *
 *   REDIS_URL=rediss://app:secret@redis.internal:6380/0
 *   REDIS_CLUSTER_NODES=10.0.0.1:6379,10.0.0.2:6379        (+ REDIS_USERNAME / REDIS_PASSWORD)
 *   REDIS_SENTINELS=10.0.0.5:26379,10.0.0.6:26379 REDIS_SENTINEL_NAME=mymaster
 *                                                          (+ REDIS_SENTINEL_PASSWORD / _USERNAME)
 *   REDIS_TLS=true REDIS_TLS_CA_FILE=/etc/redis/ca.pem REDIS_TLS_CERT_FILE=… REDIS_TLS_KEY_FILE=…
 */
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import type { ClusterOptionsInput, SentinelOptionsInput, TlsOptionsInput } from '../types.js'
import { invalidOption } from './errors.js'
import { Options, show } from './options.js'

export interface HostPort {
  host: string
  port: number
}

export type Topology =
  | { kind: 'standalone'; url: URL }
  | { kind: 'cluster'; nodes: HostPort[] }
  | { kind: 'sentinel'; nodes: HostPort[]; name: string; password: string | undefined; username: string | undefined }

type Env = Readonly<Record<string, string | undefined>>

const options = new Options('')

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

/** `host:port`, `[::1]:port`, or `host` (then `defaultPort`). */
export function parseHostPort(text: string, defaultPort: number, source: string): HostPort {
  const trimmed = text.trim()
  const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(trimmed) ?? /^([^:]+)(?::(\d+))?$/.exec(trimmed)
  const port = match?.[2] === undefined ? defaultPort : Number(match[2])
  if (!match || !match[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidOption(source, `has ${show(trimmed)}, which is not host:port`, `Use e.g. 10.0.0.1:${defaultPort},10.0.0.2:${defaultPort}.`)
  }
  return { host: match[1], port }
}

function nodeList(value: unknown, source: string, defaultPort: number): HostPort[] {
  const items = typeof value === 'string' ? value.split(',').filter((part) => part.trim() !== '') : value
  if (!Array.isArray(items) || items.length === 0) {
    throw invalidOption(source, `is ${show(value)}`, `List at least one node, e.g. '10.0.0.1:${defaultPort},10.0.0.2:${defaultPort}'.`)
  }
  return items.map((item: unknown) => {
    if (typeof item === 'string') return parseHostPort(item, defaultPort, source)
    const node = item as Partial<HostPort> | null
    if (node && typeof node.host === 'string' && node.host !== '' && Number.isInteger(node.port) && (node.port ?? 0) > 0) {
      return { host: node.host, port: node.port as number }
    }
    throw invalidOption(source, `has ${show(item)}`, `Use 'host:port' strings or { host, port } objects.`)
  })
}

/** The topology from options, else the environment; the default is redis://localhost:6379. */
export function parseTopology(given: { url?: unknown; cluster?: ClusterOptionsInput; sentinel?: SentinelOptionsInput }, env: Env,
  parseUrl: (raw: string, source: string) => URL): Topology {
  const forms = [
    given.url !== undefined && '`url`', given.cluster !== undefined && '`cluster`', given.sentinel !== undefined && '`sentinel`',
  ].filter(Boolean)
  const envForms = [
    nonEmpty(env.REDIS_URL) && 'REDIS_URL', nonEmpty(env.REDIS_CLUSTER_NODES) && 'REDIS_CLUSTER_NODES', nonEmpty(env.REDIS_SENTINELS) && 'REDIS_SENTINELS',
  ].filter(Boolean)
  if (forms.length > 1 || (forms.length === 0 && envForms.length > 1)) {
    const both = (forms.length > 1 ? forms : envForms).join(' and ')
    throw invalidOption(both, 'are both set', 'Configure one Redis: a URL for one server, cluster nodes for a Cluster, or sentinels for Sentinel.')
  }
  if (given.cluster !== undefined) {
    const cluster = options.object<ClusterOptionsInput>(given.cluster, '`cluster`', "createKit({ cluster: { nodes: ['10.0.0.1:6379'] } })")
    options.known(cluster, ['nodes'], {}, 'cluster.')
    return { kind: 'cluster', nodes: nodeList(cluster.nodes, '`cluster.nodes`', 6379) }
  }
  if (given.sentinel !== undefined) return sentinelFrom(given.sentinel, '`sentinel`')
  if (given.url !== undefined) {
    if (typeof given.url !== 'string') throw invalidOption('`url`', 'must be a string', 'Use redis://host:6379.')
    return { kind: 'standalone', url: parseUrl(given.url, '`url`') }
  }
  const clusterNodes = nonEmpty(env.REDIS_CLUSTER_NODES)
  if (clusterNodes !== undefined) return { kind: 'cluster', nodes: nodeList(clusterNodes, 'REDIS_CLUSTER_NODES', 6379) }
  const sentinels = nonEmpty(env.REDIS_SENTINELS)
  if (sentinels !== undefined) {
    return sentinelFrom({
      nodes: sentinels,
      name: env.REDIS_SENTINEL_NAME as string,
      ...(nonEmpty(env.REDIS_SENTINEL_PASSWORD) !== undefined ? { password: env.REDIS_SENTINEL_PASSWORD } : {}),
      ...(nonEmpty(env.REDIS_SENTINEL_USERNAME) !== undefined ? { username: env.REDIS_SENTINEL_USERNAME } : {}),
    }, 'REDIS_SENTINELS')
  }
  const url = nonEmpty(env.REDIS_URL)
  return { kind: 'standalone', url: parseUrl(url ?? 'redis://localhost:6379', url === undefined ? 'default url' : 'REDIS_URL') }
}

function sentinelFrom(value: unknown, source: string): Topology {
  const sentinel = options.object<SentinelOptionsInput & { nodes: unknown }>(value, source, "createKit({ sentinel: { nodes: ['10.0.0.5:26379'], name: 'mymaster' } })")
  options.known(sentinel, ['nodes', 'name', 'password', 'username'], {}, 'sentinel.')
  const fromEnv = source === 'REDIS_SENTINELS'
  const name = sentinel.name
  if (typeof name !== 'string' || name.trim() === '') {
    throw invalidOption(fromEnv ? 'REDIS_SENTINEL_NAME' : '`sentinel.name`', 'is missing', 'Give the name the sentinels monitor the master under (their `sentinel monitor <name> …` line), e.g. mymaster.')
  }
  for (const field of ['password', 'username'] as const) {
    if (sentinel[field] !== undefined && typeof sentinel[field] !== 'string') {
      throw invalidOption(fromEnv ? `REDIS_SENTINEL_${field.toUpperCase()}` : `\`sentinel.${field}\``, 'must be a string', 'Pass it as text.')
    }
  }
  return {
    kind: 'sentinel',
    nodes: nodeList(sentinel.nodes, fromEnv ? 'REDIS_SENTINELS' : '`sentinel.nodes`', 26379),
    name: name.trim(),
    password: sentinel.password,
    username: sentinel.username,
  }
}

/** Reads a PEM file named by an environment variable, saying which one when it cannot. */
function pemFile(env: Env, name: string): string | undefined {
  const path = nonEmpty(env[name])
  if (path === undefined) return undefined
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw invalidOption(name, `names ${show(path)}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      'Point it at a PEM file the process can read.')
  }
}

type Pem = string | Buffer | readonly (string | Buffer)[]

function pem(value: unknown, name: string): Pem | undefined {
  if (value === undefined) return undefined
  const ok = (item: unknown): boolean => typeof item === 'string' || Buffer.isBuffer(item)
  if (ok(value) || (Array.isArray(value) && value.length > 0 && value.every(ok))) return value as Pem
  throw invalidOption(`\`tls.${name}\``, `is ${show(value)}`, 'Pass PEM text or a Buffer (e.g. readFileSync(\'ca.pem\')), or a list of them.')
}

/**
 * TLS settings, or undefined for plain TCP: on with `rediss://`, `tls: true` or an object, or
 * REDIS_TLS / any REDIS_TLS_* file; `tls: false` forces it off.
 */
export function parseTls(value: boolean | TlsOptionsInput | undefined, env: Env, urlSaysTls: boolean,
  parseBoolean: (value: string, name: string) => boolean): ConnectionOptions | undefined {
  if (value === false) return undefined
  const given = value === true || value === undefined ? {} : options.object<TlsOptionsInput>(value, '`tls`', "createKit({ tls: { ca: readFileSync('ca.pem') } })")
  options.known(given, ['ca', 'cert', 'key', 'passphrase', 'servername', 'rejectUnauthorized'], { rejectUnauthorised: 'rejectUnauthorized', serverName: 'servername', caFile: 'ca' }, 'tls.')
  const fromEnv = {
    ca: pemFile(env, 'REDIS_TLS_CA_FILE'), cert: pemFile(env, 'REDIS_TLS_CERT_FILE'), key: pemFile(env, 'REDIS_TLS_KEY_FILE'),
    servername: nonEmpty(env.REDIS_TLS_SERVERNAME),
    rejectUnauthorized: nonEmpty(env.REDIS_TLS_REJECT_UNAUTHORIZED) === undefined ? undefined : parseBoolean(env.REDIS_TLS_REJECT_UNAUTHORIZED as string, 'REDIS_TLS_REJECT_UNAUTHORIZED'),
  }
  const envOn = nonEmpty(env.REDIS_TLS) !== undefined && parseBoolean(env.REDIS_TLS as string, 'REDIS_TLS')
  const anyEnv = Object.values(fromEnv).some((v) => v !== undefined)
  if (value === undefined && !urlSaysTls && !envOn && !anyEnv) return undefined
  const tls: ConnectionOptions = {}
  const ca = pem(given.ca, 'ca') ?? fromEnv.ca
  const cert = pem(given.cert, 'cert') ?? fromEnv.cert
  const key = pem(given.key, 'key') ?? fromEnv.key
  if ((cert === undefined) !== (key === undefined)) {
    throw invalidOption(cert === undefined ? '`tls.key` (or REDIS_TLS_KEY_FILE)' : '`tls.cert` (or REDIS_TLS_CERT_FILE)', 'is set without its pair',
      'A client certificate needs both the certificate and its key.')
  }
  if (ca !== undefined) tls.ca = ca as ConnectionOptions['ca']
  if (cert !== undefined) tls.cert = cert as ConnectionOptions['cert']
  if (key !== undefined) tls.key = key as ConnectionOptions['key']
  if (given.passphrase !== undefined) tls.passphrase = options.string(given.passphrase, 'tls.passphrase', '', 'Pass the key\'s passphrase as text.')
  const servername = given.servername ?? fromEnv.servername
  if (servername !== undefined) {
    // SNI takes a host name, never an IP address (RFC 6066): Node would refuse it at connect time.
    if (typeof servername !== 'string' || isIP(servername) !== 0) {
      throw invalidOption('`tls.servername` (or REDIS_TLS_SERVERNAME)', `is ${show(servername)}`, 'Use the host name the server certificate was issued for (not an IP address).')
    }
    tls.servername = servername
  }
  const reject = given.rejectUnauthorized ?? fromEnv.rejectUnauthorized
  if (reject !== undefined) tls.rejectUnauthorized = options.boolean(reject, 'tls.rejectUnauthorized', true)
  return tls
}

/** Where the kit connects, without secrets: for logs, health output and the doctor. */
export function describeTopology(topology: Topology, tls: boolean, redactUrl: (url: URL) => string): string {
  const list = (nodes: HostPort[]): string => nodes.map((n) => `${isIP(n.host) === 6 ? `[${n.host}]` : n.host}:${n.port}`).join(',')
  const secured = tls ? ' over TLS' : ''
  switch (topology.kind) {
    case 'standalone': return redactUrl(topology.url)
    case 'cluster': return `cluster ${list(topology.nodes)}${secured}`
    case 'sentinel': return `sentinel master '${topology.name}' via ${list(topology.nodes)}${secured}`
  }
}
