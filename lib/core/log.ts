/**
 * The kit's one log layer: every line carries the same prefix, secrets are removed before a line
 * leaves, and each problem has a stable code from one list (the README's list of logged problems
 * is checked against it). A problem is logged once per kit, or once per outage — never once per
 * request or per retry.
 */
import type { Logger } from '../types.js'

/** Every code the kit logs. Match on these; the text after them may change. */
export const WARNING_CODES = [
  'ERR_KIT_CLIENT_SETTINGS',
  'ERR_KIT_JOURNAL_FULL',
  'ERR_KIT_REPLAY_REJECTED',
  'ERR_KIT_SERVER_REJECTED',
  'ERR_KIT_SESSION_SECRET_SHORT',
  'ERR_KIT_SESSION_INSECURE',
  'ERR_KIT_SESSION_DATA',
  'ERR_KIT_SESSION_READ',
  'ERR_KIT_SESSION_WRITE',
  'ERR_KIT_RATE_LIMIT_SCRIPT',
  'ERR_KIT_CACHE_READ',
  'ERR_KIT_CACHE_LOCK',
  'ERR_KIT_CACHE_WRITE',
  'ERR_KIT_CACHE_TAGS',
  'ERR_KIT_CACHE_REVALIDATE',
  'ERR_KIT_CACHE_INTERNAL',
  'ERR_KIT_QUEUE_FULL',
  'ERR_KIT_QUEUE_DROPPED',
  'ERR_KIT_QUEUE_WORKER',
  'ERR_KIT_QUEUE_CLOSE',
  'ERR_KIT_QUEUE_RETENTION',
  'ERR_KIT_QUEUE_EVICTION',
] as const

export type WarningCode = (typeof WARNING_CODES)[number]

const PREFIX = '[express-redis-kit]'

export class Log {
  private readonly warned = new Set<string>()

  constructor(private readonly logger: Logger | undefined, private readonly redact: (text: string) => string) {}

  /** A state change or other news: one line, no code. */
  info(message: string): void {
    this.logger?.info(`${PREFIX} ${this.redact(message)}`)
  }

  /** A state change for the worse: one line, no code. */
  notice(message: string): void {
    this.logger?.warn(`${PREFIX} ${this.redact(message)}`)
  }

  /** A problem, every time it is called (the caller decides how often). */
  warn(code: WarningCode, message: string): void {
    this.logger?.warn(`${PREFIX} ${code}: ${this.redact(message)}`)
  }

  /** A problem, once per kit for each code (and `scope`, e.g. an outage or a feature). */
  warnOnce(code: WarningCode, message: string, scope = ''): void {
    const key = `${code}\0${scope}`
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.warn(code, message)
  }

  /** Lets every warning scoped to `scope` be logged again (a new outage began). */
  forget(scope: string): void {
    for (const key of this.warned) if (key.endsWith(`\0${scope}`)) this.warned.delete(key)
  }

  /** Whether anything is logged at all (`logger: false` silences the kit). */
  get enabled(): boolean {
    return this.logger !== undefined
  }

  /** For a library that logs through the kit (express-rate-limit): its own prefix, the kit's logger. */
  library(name: string): { warn(message: string): void; error(message: string): void } {
    return {
      warn: (message) => this.logger?.warn(`[${name}] ${this.redact(message)}`),
      error: (message) => this.logger?.error(`[${name}] ${this.redact(message)}`),
    }
  }
}
