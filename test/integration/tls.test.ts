/**
 * TLS (issue 12), against redis-servers that speak only TLS, with certificates made by openssl when
 * the suite starts (helpers/tls.ts): a private CA, a server certificate, client certificates.
 * Configured the way the README says (rediss:// + REDIS_TLS_CA_FILE, + REDIS_TLS_CERT_FILE /
 * REDIS_TLS_KEY_FILE for mutual TLS), every feature works; each usual mistake leaves the kit on
 * memory with an error that names the problem and the setting that fixes it, in the log and in
 * `/health/redis`.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from 'express'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { exerciseEveryFeature } from '../helpers/every-feature.js'
import { internals, SLACK, testKit, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { makeCertificates, makeServerCertificate, RedisTlsServer, type TestCertificates } from '../helpers/tls.js'

function healthApp(kit: Kit): express.Express {
  const app = express()
  app.use('/health', kit.healthRouter({ details: true })) // these tests read the server's name and the errors
  return app
}

describe('TLS', function () {
  this.timeout(30_000)
  let certs: TestCertificates
  let serverOnly: RedisTlsServer
  let mutual: RedisTlsServer
  let kit: (Kit & { logger: RecordingLogger }) | undefined

  before(async function () {
    this.timeout(60_000)
    certs = await makeCertificates(mkdtempSync(join(tmpdir(), 'erk-certs-')))
    ;[serverOnly, mutual] = await Promise.all([RedisTlsServer.start({ mutual: false, certs }), RedisTlsServer.start({ mutual: true, certs })])
  })

  afterEach(async () => {
    await kit?.close()
    kit = undefined
  })

  after(async () => {
    await Promise.all([serverOnly?.stop(), mutual?.stop()])
    if (certs) rmSync(certs.dir, { recursive: true, force: true })
  })

  /** Starts a kit from `env` and asserts it stayed on memory with an error matching `expected` in the log and both health routes. */
  async function refused(env: Record<string, string>, expected: RegExp, options: Parameters<typeof testKit>[0] = {}): Promise<string> {
    kit = testKit({ env, ...options })
    await kit.ready()
    assert.equal(kit.state, 'degraded', `stays on memory (${String(internals(kit).lastError?.message)})`)
    const health = await request(healthApp(kit)).get('/health/redis').expect(503)
    assert.match(health.body.error, expected)
    const summary = await request(healthApp(kit)).get('/health').expect(200)
    assert.match(summary.body.redis.error, expected)
    assert.match(kit.logger.lines.join('\n'), expected)
    assert.equal(await kit.client.set('during', 'tls-problem'), true, 'still serves from memory')
    return health.body.error as string
  }

  it('server-only TLS: rediss:// + REDIS_TLS_CA_FILE, every feature works end to end', async () => {
    kit = testKit({ env: { REDIS_URL: serverOnly.url, REDIS_TLS_CA_FILE: certs.ca.certPath } })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    await exerciseEveryFeature(kit, testClient(serverOnly.port, { tls: serverOnly.tlsOptions() }), '', 'tls')
    assert.match(kit.logger.lines.join('\n'), /connected at rediss:\/\/127\.0\.0\.1:\d+/)
  })

  it('mutual TLS: REDIS_TLS_CERT_FILE + REDIS_TLS_KEY_FILE, every feature works end to end', async () => {
    kit = testKit({ env: { REDIS_URL: mutual.url, REDIS_TLS_CA_FILE: certs.ca.certPath, REDIS_TLS_CERT_FILE: certs.client.certPath, REDIS_TLS_KEY_FILE: certs.client.keyPath } })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    await exerciseEveryFeature(kit, testClient(mutual.port, { tls: mutual.tlsOptions() }), '', 'mtls')
  })

  it('the `tls` option (PEM text) works like the files, and a server restarted over TLS is used again', async () => {
    kit = testKit({ url: serverOnly.url, tls: { ca: certs.ca.cert } })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    await kit.client.set('before-restart', 1)
    const degraded = waitForState(kit, 'degraded')
    await serverOnly.restart()
    await degraded
    await waitForState(kit, 'ready')
    assert.equal(await kit.client.increment('after-restart'), 1)
  })

  it('wrong CA: names the untrusted CA and REDIS_TLS_CA_FILE', async () => {
    await refused({ REDIS_URL: serverOnly.url, REDIS_TLS_CA_FILE: certs.otherCa.certPath },
      /SELF_SIGNED_CERT_IN_CHAIN.*signed by a CA the kit does not trust: set REDIS_TLS_CA_FILE/)
  })

  it('no CA at all (rediss:// alone, private CA): the same error and fix', async () => {
    await refused({ REDIS_URL: serverOnly.url }, /signed by a CA the kit does not trust: set REDIS_TLS_CA_FILE/)
  })

  it('hostname mismatch (a certificate for redis.internal, reached by IP): names the mismatch and REDIS_TLS_SERVERNAME, which then works', async () => {
    const named = await makeServerCertificate(certs, 'redis-internal', 'DNS:redis.internal')
    const server = await RedisTlsServer.start({ mutual: false, certs, serverCertificate: named, servername: 'redis.internal' })
    try {
      await refused({ REDIS_URL: server.url, REDIS_TLS_CA_FILE: certs.ca.certPath },
        /ERR_TLS_CERT_ALTNAME_INVALID.*not issued for the name the kit connected to \(it lists DNS:redis\.internal\): .*set REDIS_TLS_SERVERNAME/)
      await kit?.close()
      kit = testKit({ env: { REDIS_URL: server.url, REDIS_TLS_CA_FILE: certs.ca.certPath, REDIS_TLS_SERVERNAME: 'redis.internal' } })
      await kit.ready()
      assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    } finally {
      await server.stop()
    }
  })

  it('missing client certificate (the server requires one): names the client certificate and REDIS_TLS_CERT_FILE / REDIS_TLS_KEY_FILE', async () => {
    await refused({ REDIS_URL: mutual.url, REDIS_TLS_CA_FILE: certs.ca.certPath },
      /requires a client certificate .*set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE/)
  })

  it('a client certificate from another CA: says the server refused the client certificate', async () => {
    await refused({ REDIS_URL: mutual.url, REDIS_TLS_CA_FILE: certs.ca.certPath, REDIS_TLS_CERT_FILE: certs.otherClient.certPath, REDIS_TLS_KEY_FILE: certs.otherClient.keyPath },
      /refused the client certificate/)
  })

  it('rediss:// against a plain server: names TLS and redis:// instead of a bare timeout, within connectTimeoutMs', async () => {
    const plain = await RedisServer.start()
    try {
      const started = performance.now()
      await refused({ REDIS_URL: `rediss://127.0.0.1:${plain.port}`, REDIS_TLS_CA_FILE: certs.ca.certPath },
        /(no TLS handshake with .* in time|does not speak TLS on this port): .*use redis:\/\//, { connectTimeoutMs: 500 })
      assert.ok(performance.now() - started < 500 + SLACK + 1000, 'settled about connectTimeoutMs')
    } finally {
      await plain.stop()
    }
  })

  it('redis:// against a TLS-only port: says the server may speak only TLS', async () => {
    await refused({ REDIS_URL: `redis://127.0.0.1:${serverOnly.port}` }, /if it speaks only TLS on this port .*use rediss:\/\//)
  })
})
