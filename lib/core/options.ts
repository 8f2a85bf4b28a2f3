/**
 * The kit's one options layer. Every factory (createKit, kit.cache, kit.session, kit.rateLimit …)
 * reads its options through an `Options` reader: unknown names are refused with a "Did you mean",
 * every checker shows a bad value the same way, and every message names the option and the fix.
 * Options are read once, when the factory is called, into a fully-required config.
 */
import { closestName, invalidOption } from './errors.js'

/** Node clamps longer timers to 1 ms, so a longer timeout would silently mean no wait at all. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * How a bad value is shown in a message: `…` around its JSON (so the string `"60"` reads apart
 * from the number `60`), or what it is.
 */
export function show(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'bigint') return `\`${value}n\``
  if (typeof value === 'number' || value === undefined || typeof value === 'symbol') return `\`${String(value)}\``
  try {
    return `\`${JSON.stringify(value) ?? typeof value}\``
  } catch {
    return Array.isArray(value) ? 'an array that cannot be shown' : 'an object that cannot be shown'
  }
}

/** The name a user wrote, squashed for comparison (`max_age`, `MaxAge` and `maxage` meet). */
function squash(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '')
}

export class Options {
  /**
   * @param scope how the factory is named in messages: '' for createKit (`\`ttl\``), 'cache' for
   *   kit.cache (`cache \`ttl\``), and so on.
   */
  constructor(private readonly scope: string) {}

  /** The option as messages name it. */
  label(name: string): string {
    return this.scope === '' ? `\`${name}\`` : `${this.scope} \`${name}\``
  }

  fail(name: string, problem: string, fix: string): never {
    throw invalidOption(this.label(name), problem, fix)
  }

  /** The options object itself: a plain object (or nothing). */
  object<T extends object>(given: unknown, call: string, example: string): Readonly<Partial<T>> {
    if (given === undefined) return {} as Readonly<Partial<T>>
    if (typeof given !== 'object' || given === null || Array.isArray(given)) {
      throw invalidOption(call, 'must be an object', `Call ${example}.`)
    }
    return given as Readonly<Partial<T>>
  }

  /**
   * Refuses names that are not options, suggesting the closest known one (same letters, or a
   * known alias from another library: `maxAge` → `ttl`), else listing them all.
   */
  known(given: object, known: readonly string[], aliases: Readonly<Record<string, string>> = {}, prefix = '', noun = 'option'): void {
    for (const name of Object.keys(given)) {
      if (known.includes(name)) continue
      const guess = closestName(name, known) ?? aliases[name] ?? known.find((k) => squash(k).startsWith(squash(name)) && name.length >= 3)
      this.fail(`${prefix}${name}`, `is not a${/^[aeiou]/.test(noun) ? 'n' : ''} ${noun}`,
        guess ? `Did you mean \`${prefix}${guess}\`?` : `Known ${noun}s: ${known.map((k) => `${prefix}${k}`).join(', ')}.`)
    }
  }

  boolean(value: unknown, name: string, fallback: boolean): boolean {
    if (value === undefined) return fallback
    if (typeof value !== 'boolean') this.fail(name, `is ${show(value)}`, `Use true or false (default ${fallback}).`)
    return value
  }

  /** A whole number from `min` up to `max`. */
  integer(value: unknown, name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined) return fallback
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.fail(name, `is ${show(value)}`, `Use a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`} (default ${fallback}).`)
    }
    return value
  }

  /** Milliseconds a timer can wait for: positive, at most 2³¹−1. */
  milliseconds(value: unknown, name: string, fallback: number, allowZero = false): number {
    if (value === undefined) return fallback
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > MAX_TIMER_MS) {
      this.fail(name, `is ${show(value)}`, `Use ${allowZero ? 'zero or a positive' : 'a positive'} number of milliseconds up to ${MAX_TIMER_MS} (default ${fallback}).`)
    }
    return value
  }

  /** Seconds, returned as whole milliseconds. */
  seconds(value: unknown, name: string, fallbackSeconds: number, allowZero = false): number {
    if (value === undefined) return fallbackSeconds * 1000
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value * 1000 > MAX_TIMER_MS * 1000) {
      this.fail(name, `is ${show(value)}`, `Use ${allowZero ? 'zero or a positive' : 'a positive'} number of seconds (default ${fallbackSeconds}).`)
    }
    return Math.round(value * 1000)
  }

  string(value: unknown, name: string, fallback: string, fix: string, pattern?: RegExp): string {
    if (value === undefined) return fallback
    if (typeof value !== 'string' || (pattern !== undefined && !pattern.test(value))) this.fail(name, `is ${show(value)}`, fix)
    return value
  }

  /** One of a few strings; a near miss ('Memory') gets a "Did you mean". */
  oneOf<T extends string>(value: unknown, name: string, choices: readonly T[], fallback: T, fix: string): T {
    if (value === undefined) return fallback
    if (choices.includes(value as T)) return value as T
    const guess = typeof value === 'string' ? choices.find((c) => squash(c) === squash(value.trim())) : undefined
    return this.fail(name, `is ${show(value)}`, guess ? `Did you mean '${guess}'?` : fix)
  }

  fn<T>(value: unknown, name: string, example: string): T | undefined {
    if (value === undefined) return undefined
    if (typeof value !== 'function') this.fail(name, `is ${show(value)}`, `Use a function, e.g. ${example}.`)
    return value as T
  }
}
