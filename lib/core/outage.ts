/**
 * What a failed Redis call means for the data, decided from error types and reply codes (never
 * from free text that merely mentions "connect"):
 *
 * - `not-run`: Redis certainly did not run it. ioredis refused to send it (the socket was down),
 *   or Redis refused it before running (OOM, READONLY, LOADING …): safe to replay.
 * - `in-doubt`: it was sent and no answer came (the connection closed, or a timeout). Redis may
 *   or may not have run it; resending could apply it twice.
 * - `data`: Redis answered, about the data or the command (WRONGTYPE, syntax, a script error),
 *   or the feature's own code threw. Not an outage: the caller gets the error.
 */

export type Outcome = 'not-run' | 'in-doubt' | 'data'

/** Replies Redis gives before it runs a command: the server is unavailable or refuses writes. */
const REFUSED_BEFORE_RUNNING = new Set([
  'LOADING', 'BUSY', 'MASTERDOWN', 'READONLY', 'MISCONF', 'OOM', 'NOREPLICAS', 'CLUSTERDOWN', 'TRYAGAIN',
  'NOAUTH', 'WRONGPASS',
  // An ACL refusal is a configuration error, but the write did not run: keep it (journaled) rather
  // than lose it, and stay on memory until the rights check of the comeback passes (verify.ts).
  'NOPERM',
  // A Cluster node serving another slot than the client thought. ioredis follows these itself,
  // except in an auto-pipelined batch whose commands got different redirections (a master just
  // died, its slots not yet moved): the batch's callers see the raw reply.
  'MOVED', 'ASK',
])
/** Refusals of writes only: such a Redis still answers PING. */
const WRITE_REFUSALS = new Set(['READONLY', 'MISCONF', 'OOM', 'NOREPLICAS'])

/** ioredis' messages for a command it never wrote to a socket. */
const NOT_SENT = [
  "Stream isn't writeable",
  "Cluster isn't ready and enableOfflineQueue options is false",
  'None of startup nodes is available',
]
/** ioredis' messages for a command that was (or may have been) written, with no reply. */
const NO_REPLY = new Set(['Connection is closed.', 'Command timed out', 'Cluster is disconnected.', 'Cluster is disconnecting.', 'Cluster is ended.'])
/** Socket-level codes ioredis passes through. */
const SOCKET_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED',
])

/** The code of a Redis error reply: its first word (`OOM command not allowed …` → `OOM`). */
export function replyCode(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== 'ReplyError') return undefined
  const space = error.message.indexOf(' ')
  return space === -1 ? error.message : error.message.slice(0, space)
}

export function classify(error: unknown): Outcome {
  if (!(error instanceof Error)) return 'data'
  const code = replyCode(error)
  if (code !== undefined) return REFUSED_BEFORE_RUNNING.has(code) ? 'not-run' : 'data'
  if (error.name === 'MaxRetriesPerRequestError' || error.name === 'ClusterAllFailedError') return 'in-doubt'
  if (error.name === 'HangError') return 'in-doubt'
  if (error.name === 'NotSentError') return 'not-run'
  if (NO_REPLY.has(error.message)) return 'in-doubt'
  if (NOT_SENT.some((prefix) => error.message.startsWith(prefix))) return 'not-run'
  const errno = (error as { code?: unknown }).code
  if (typeof errno === 'string' && SOCKET_CODES.has(errno)) return 'in-doubt'
  return 'data'
}

/** Is this Redis being unavailable (serve from memory), rather than an answer about the data? */
export function isOutage(error: unknown): boolean {
  return classify(error) !== 'data'
}

/** A Redis that refuses writes still answers PING: recovery must prove a write works. */
export function refusesWrites(error: unknown): boolean {
  const code = replyCode(error)
  return code !== undefined && WRITE_REFUSALS.has(code)
}

/** A feature knows its call never reached Redis (e.g. a library's script never loaded). */
export class NotSentError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NotSentError'
  }
}

/** The kit's own verdict that Redis stopped answering (see watchdog.ts). */
export class HangError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HangError'
  }
}
