/**
 * Connection errors as a user can act on them: Node and OpenSSL say `SELF_SIGNED_CERT_IN_CHAIN`
 * or `write ECONNRESET`; the user needs "set REDIS_TLS_CA_FILE". One sentence per cause, used
 * where the kit records its last connection error (logs, `/health`) and by the doctor.
 *
 * Some causes have no code of their own and are read from what surrounds the error:
 * - with TLS 1.3 the client finishes its side of the handshake before the server checks the client
 *   certificate, so a refused (or missing) certificate usually arrives as a bare ECONNRESET right
 *   after the connection was made, before any reply;
 * - `rediss://` against a plain server mostly times out (Redis waits for the end of an "inline
 *   command" that is really a TLS hello) and sometimes answers with text OpenSSL calls a wrong
 *   version number.
 */

export interface HintContext {
  /** TLS is on for this connection. */
  tls: boolean
  /** A client certificate is configured (mutual TLS). */
  clientCert: boolean
  /** The connection was made (TCP, and TLS if on) but no reply has arrived on it yet. */
  beforeFirstReply: boolean
  /** host:port (or the topology) the error is about, without secrets. */
  server: string
}

/** An unknown or untrusted issuer: the server's chain does not end at a CA the kit trusts. */
const UNTRUSTED_CA = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
])

/** Alerts a server sends when it refuses the client certificate (or the lack of one). */
const CLIENT_CERT_REFUSED = /alert[ _](certificate[ _]required|handshake[ _]failure|unknown[ _]ca|bad[ _]certificate|certificate[ _]unknown|decrypt[ _]error)|PEER_DID_NOT_RETURN_A_CERTIFICATE/i

/** Errors withHint() made: never hinted twice (the manager records the same error more than once). */
const HINTED = Symbol('express-redis-kit hinted')

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : ''
}

function clientCertFix(context: HintContext): string {
  return context.clientCert
    ? 'the server refused the client certificate (REDIS_TLS_CERT_FILE / `tls.cert`): it must be signed by a CA in the server\'s `tls-ca-cert-file`, be valid now and allow client authentication'
    : 'the server requires a client certificate (`tls-auth-clients yes`) and the kit sent none: set REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE (or `tls.cert` and `tls.key`)'
}

/** One sentence naming the cause and the fix, or undefined when the error needs no hint. */
export function connectionHint(error: unknown, context: HintContext): string | undefined {
  if (!(error instanceof Error)) return undefined
  const code = codeOf(error)
  const text = `${code} ${error.message}`
  if (UNTRUSTED_CA.has(code)) {
    return 'the server\'s certificate is signed by a CA the kit does not trust: set REDIS_TLS_CA_FILE (or `tls.ca`) to the certificate of the CA that signed it'
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = (error as { cert?: { subjectaltname?: unknown } }).cert?.subjectaltname
    const listed = typeof names === 'string' && names !== '' ? ` (it lists ${names})` : ''
    return `the server's certificate is not issued for the name the kit connected to${listed}: use a host name the certificate lists, `
      + 'or set REDIS_TLS_SERVERNAME (or `tls.servername`) to one of them'
  }
  if (code === 'CERT_HAS_EXPIRED') return 'the server\'s certificate has expired: renew it on the server'
  if (code === 'CERT_NOT_YET_VALID') return 'the server\'s certificate is not valid yet: check the clocks of the server and of this machine'
  if (CLIENT_CERT_REFUSED.test(text)) return clientCertFix(context)
  if (/WRONG_VERSION_NUMBER|wrong version number|packet length too long|unknown protocol/i.test(text)) {
    return context.tls
      ? `the server at ${context.server} does not speak TLS on this port: use redis:// (no TLS), or the server's TLS port (\`tls-port\`)`
      : `the server at ${context.server} answered in a way only TLS explains: use rediss:// (or REDIS_TLS=true)`
  }
  if (code === 'ECONNRESET' && context.beforeFirstReply) {
    // The handshake passed (or there was none) and the server hung up before its first reply.
    return context.tls
      ? `the server closed the TLS connection right after the handshake, which is how it refuses a client certificate: ${clientCertFix(context)}`
      : `the server closed the connection before its first reply: if it speaks only TLS on this port (\`port 0\`, \`tls-port\`), use rediss:// (or REDIS_TLS=true)`
  }
  if (context.tls && (code === 'ETIMEDOUT' || /not ready within/.test(error.message))) {
    return `no TLS handshake with ${context.server} in time: if that port serves plain Redis, use redis:// or the server's TLS port; otherwise check firewalls and \`bind\``
  }
  if (/^NOPERM/.test(error.message)) {
    return 'the Redis user lacks a right the kit needs (a command or a key under the key prefix): grant the kit\'s ACL (see the README, "ACL")'
  }
  return undefined
}

/**
 * The error with its hint appended to the message (`message (CODE): hint`); the same error when
 * there is none. Keeps the name and code, which callers may classify by.
 */
export function withHint(error: Error, context: HintContext): Error {
  if ((error as { [HINTED]?: boolean })[HINTED]) return error
  const hint = connectionHint(error, context)
  if (hint === undefined) return error
  const code = codeOf(error)
  // OpenSSL's own message is a line of internals (`80EC…:error:0A00045C:SSL routines:…`); its reason reads better.
  const { reason, library } = error as { reason?: unknown; library?: unknown }
  const said = typeof reason === 'string' && typeof library === 'string' ? reason : error.message.trim()
  const copy = new Error(`${said}${code && !said.includes(code) ? ` (${code})` : ''}: ${hint}`)
  copy.name = error.name
  return Object.assign(copy, code ? { code, [HINTED]: true } : { [HINTED]: true })
}
