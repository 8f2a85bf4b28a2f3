/**
 * Connection errors as a user can act on them (lib/core/hints.ts): each Node/OpenSSL error the kit
 * meets on TLS and ACL mistakes maps to one sentence naming the cause and the setting that fixes it.
 * The errors are the shapes Node 20 produces (code, message; OpenSSL's `reason` and `library`).
 */
import assert from 'node:assert/strict'
import { connectionHint, withHint, type HintContext } from '../../lib/core/hints.js'

function nodeError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields)
}

const tls: HintContext = { tls: true, clientCert: false, beforeFirstReply: false, server: 'rediss://redis.internal:6380' }

describe('connection hints', () => {
  it('an untrusted CA names REDIS_TLS_CA_FILE', () => {
    for (const code of ['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']) {
      assert.match(connectionHint(nodeError('x', { code }), tls) ?? '', /signed by a CA the kit does not trust: set REDIS_TLS_CA_FILE/, code)
    }
  })

  it('a host name mismatch names REDIS_TLS_SERVERNAME and the names the certificate lists', () => {
    const error = nodeError("Hostname/IP does not match certificate's altnames", { code: 'ERR_TLS_CERT_ALTNAME_INVALID', cert: { subjectaltname: 'DNS:redis.internal' } })
    assert.match(connectionHint(error, tls) ?? '', /not issued for the name the kit connected to \(it lists DNS:redis\.internal\): .*REDIS_TLS_SERVERNAME/)
  })

  it('a refused client certificate: the TLS 1.3 alert, and a bare ECONNRESET before the first reply', () => {
    const alert = nodeError('80EC…:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…:SSL alert number 116\n',
      { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', library: 'SSL routines', reason: 'tlsv13 alert certificate required' })
    assert.match(connectionHint(alert, tls) ?? '', /requires a client certificate .*REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE/)
    assert.equal(withHint(alert, tls).message.split(':')[0], 'tlsv13 alert certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)', 'OpenSSL\'s reason, not its internals')
    const reset = nodeError('write ECONNRESET', { code: 'ECONNRESET' })
    assert.match(connectionHint(reset, { ...tls, beforeFirstReply: true }) ?? '', /right after the handshake.*requires a client certificate/)
    assert.match(connectionHint(reset, { ...tls, beforeFirstReply: true, clientCert: true }) ?? '', /refused the client certificate/)
    assert.equal(connectionHint(reset, tls), undefined, 'a reset of a connection that was answering is an outage, not a certificate problem')
  })

  it('TLS against a plain port and plain against a TLS port', () => {
    assert.match(connectionHint(nodeError('wrong version number', { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }), tls) ?? '', /does not speak TLS on this port: use redis:\/\//)
    assert.match(connectionHint(nodeError('connect ETIMEDOUT', { code: 'ETIMEDOUT' }), tls) ?? '', /no TLS handshake .* in time: .*use redis:\/\//)
    const plain = { ...tls, tls: false, server: 'redis://redis.internal:6380' }
    assert.match(connectionHint(nodeError('read ECONNRESET', { code: 'ECONNRESET' }), { ...plain, beforeFirstReply: true }) ?? '', /speaks only TLS .*use rediss:\/\//)
    assert.equal(connectionHint(nodeError('connect ETIMEDOUT', { code: 'ETIMEDOUT' }), plain), undefined)
  })

  it('NOPERM points at the README\'s ACL; other errors get no hint', () => {
    assert.match(connectionHint(nodeError("NOPERM this user has no permissions to run the 'eval' command", { name: 'ReplyError' }), tls) ?? '', /grant the kit's ACL/)
    assert.equal(connectionHint(nodeError('connect ECONNREFUSED 127.0.0.1:6379', { code: 'ECONNREFUSED' }), tls), undefined)
  })

  it('withHint keeps the name and code, and never hints twice', () => {
    const error = nodeError('self-signed certificate in certificate chain', { code: 'SELF_SIGNED_CERT_IN_CHAIN' })
    const once = withHint(error, tls)
    assert.equal((once as Error & { code?: string }).code, 'SELF_SIGNED_CERT_IN_CHAIN')
    assert.equal(once.name, 'Error')
    assert.equal(withHint(once, tls), once)
    assert.equal(once.message.split('REDIS_TLS_CA_FILE').length, 2)
  })
})
