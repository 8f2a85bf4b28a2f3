/**
 * Test certificates made with openssl at test time (nothing secret is committed, nothing expires in
 * the repository) and a private redis-server that speaks only TLS, optionally demanding a client
 * certificate, on a free loopback port.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { promisify } from 'node:util'
import { freePortExcept, RedisProcess, redisCommand, type Connect } from './cluster.js'

const run = promisify(execFile)

export interface CertificateFiles {
  certPath: string
  keyPath: string
  /** PEM */
  cert: string
  /** PEM */
  key: string
}

export interface TestCertificates {
  dir: string
  /** The private CA that signed `server` and `client`. */
  ca: CertificateFiles
  /** For `localhost` and 127.0.0.1 (subjectAltName), signed by `ca`. */
  server: CertificateFiles
  /** A client certificate signed by `ca` (for mutual TLS). */
  client: CertificateFiles
  /** An unrelated CA: trusting it instead of `ca` must fail ("wrong CA"). */
  otherCa: CertificateFiles
  /** A client certificate signed by `otherCa`: a mutual-TLS server must refuse it. */
  otherClient: CertificateFiles
}

/** Our own openssl config, so the system's openssl.cnf defaults cannot add or clash with extensions. */
const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`

/**
 * Makes a CA, a server certificate (localhost, 127.0.0.1), a client certificate, an unrelated CA
 * and a client certificate of that CA in `dir`. EC P-256 keys: RSA generation would take most of
 * the time on a slow machine.
 */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  mkdirSync(dir, { recursive: true })
  const config = join(dir, 'openssl.cnf')
  writeFileSync(config, OPENSSL_CONFIG)
  const paths = (name: string) => ({ certPath: join(dir, `${name}.crt`), keyPath: join(dir, `${name}.key`) })
  const load = (name: string): CertificateFiles => {
    const { certPath, keyPath } = paths(name)
    return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') }
  }
  const newKey = (name: string) => run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', paths(name).keyPath])
  const makeCa = async (name: string, subject: string) => {
    await newKey(name)
    await run('openssl', ['req', '-new', '-x509', '-config', config, '-extensions', 'ca_ext', '-sha256', '-days', '2',
      '-subj', subject, '-key', paths(name).keyPath, '-out', paths(name).certPath])
  }
  const signed = async (name: string, subject: string, issuer: string, extensions: string) => {
    await newKey(name)
    const csr = join(dir, `${name}.csr`)
    await run('openssl', ['req', '-new', '-config', config, '-subj', subject, '-key', paths(name).keyPath, '-out', csr])
    // A random serial: -CAcreateserial would leave .srl files and reuse them across CAs.
    const serial = `0x${randomBytes(12).toString('hex')}`
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', paths(issuer).certPath, '-CAkey', paths(issuer).keyPath,
      '-set_serial', serial, '-sha256', '-days', '2', '-extfile', config, '-extensions', extensions, '-out', paths(name).certPath])
  }
  await Promise.all([makeCa('ca', '/CN=express-redis-kit test CA'), makeCa('other-ca', '/CN=unrelated test CA')])
  await Promise.all([
    signed('server', '/CN=localhost', 'ca', 'server_ext'),
    signed('client', '/CN=express-redis-kit test client', 'ca', 'client_ext'),
    signed('other-client', '/CN=unrelated test client', 'other-ca', 'client_ext'),
  ])
  return { dir, ca: load('ca'), server: load('server'), client: load('client'), otherCa: load('other-ca'), otherClient: load('other-client') }
}

/**
 * One more server certificate, signed by `certs.ca`, for other names than the default one's (e.g.
 * `DNS:redis.internal` only): a server presenting it to a client that connects by IP fails the
 * host name check, as when a certificate was issued for a DNS name and the app uses an address.
 * The result can replace `certs.server` in RedisTlsServerOptions.
 */
export async function makeServerCertificate(certs: TestCertificates, name: string, subjectAltName: string): Promise<CertificateFiles> {
  const certPath = join(certs.dir, `${name}.crt`)
  const keyPath = join(certs.dir, `${name}.key`)
  const extfile = join(certs.dir, `${name}.ext`)
  writeFileSync(extfile, ['basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth',
    `subjectAltName = ${subjectAltName}`, 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid', ''].join('\n'))
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath])
  const csr = join(certs.dir, `${name}.csr`)
  await run('openssl', ['req', '-new', '-config', join(certs.dir, 'openssl.cnf'), '-subj', `/CN=${name}`, '-key', keyPath, '-out', csr])
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', certs.ca.certPath, '-CAkey', certs.ca.keyPath,
    '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-sha256', '-days', '2', '-extfile', extfile, '-out', certPath])
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') }
}

export interface RedisTlsServerOptions {
  /** `tls-auth-clients yes`: the server refuses clients without a certificate signed by the CA. */
  mutual: boolean
  certs: TestCertificates
  /** Reuse a port (for restarts on the same address). */
  port?: number
  /** The certificate the server presents. Defaults to `certs.server` (localhost, 127.0.0.1). */
  serverCertificate?: CertificateFiles
  /** The name clients check it against (SNI), for a certificate without 127.0.0.1 (see makeServerCertificate). */
  servername?: string
}

export class RedisTlsServer {
  readonly port: number
  readonly mutual: boolean
  readonly certs: TestCertificates
  readonly servername: string | undefined
  private readonly process: RedisProcess
  private readonly dir: string

  private constructor(port: number, options: RedisTlsServerOptions) {
    this.port = port
    this.mutual = options.mutual
    this.certs = options.certs
    this.servername = options.servername
    this.dir = mkdtempSync(join(tmpdir(), 'erk-redis-tls-'))
    const { certs } = options
    const server = options.serverCertificate ?? certs.server
    const args = ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--loglevel', 'warning',
      '--tls-cert-file', server.certPath, '--tls-key-file', server.keyPath, '--tls-ca-cert-file', certs.ca.certPath,
      '--tls-auth-clients', options.mutual ? 'yes' : 'no',
      '--appendonly', 'no', '--save', '', '--dir', this.dir]
    // Ready only once a real TLS PING succeeds: the port accepting TCP says nothing about the handshake.
    this.process = new RedisProcess(port, args, async () => (await redisCommand(port, ['PING'], 500, this.connector())) === 'PONG')
  }

  static async start(options: RedisTlsServerOptions): Promise<RedisTlsServer> {
    const server = new RedisTlsServer(options.port ?? (await freePortExcept(new Set())), options)
    try {
      await server.start()
    } catch (error) {
      await server.stop()
      throw error
    }
    return server
  }

  get url(): string {
    return `rediss://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.process.pid
  }

  /**
   * node:tls options that pass this server's checks: trust our CA, and (mutual) present the client
   * certificate. The host is the IP 127.0.0.1, which node checks against the certificate's IP
   * subjectAltName; no `servername` (node refuses to send an IP as SNI and warns, RFC 6066).
   * Give ioredis these as `tls` with `host: '127.0.0.1'`.
   */
  tlsOptions(): ConnectionOptions {
    const { certs } = this
    const name = this.servername === undefined ? {} : { servername: this.servername }
    return this.mutual ? { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key, ...name } : { ca: certs.ca.cert, ...name }
  }

  private connector(): Connect {
    return (port) => tlsConnect({ host: '127.0.0.1', port, ...this.tlsOptions() })
  }

  /** Starts (or restarts) the server and waits until it answers a PING over TLS. */
  async start(): Promise<void> {
    await this.process.start()
  }

  /** kill -9: the server dies without closing connections gracefully. */
  async kill(): Promise<void> {
    await this.process.kill()
  }

  /** SIGSTOP: the server keeps its sockets open but answers nothing (a hang). */
  pause(): void {
    this.process.pause()
  }

  /** SIGCONT: the hung server resumes. */
  resume(): void {
    this.process.resume()
  }

  async restart(): Promise<void> {
    await this.kill()
    await this.start()
  }

  /** Stops the server and removes its directory (not the certificates: the caller owns their dir). */
  async stop(): Promise<void> {
    await this.process.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
