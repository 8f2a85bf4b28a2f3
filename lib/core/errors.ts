/** Every code a KitError can carry (the README lists each, and a test checks the two agree). */
export const KIT_ERROR_CODES = [
  'ERR_KIT_INVALID_OPTION',
  'ERR_KIT_INVALID_ARGUMENT',
  'ERR_KIT_NOT_INTEGER',
  'ERR_KIT_WRONG_TYPE',
  'ERR_KIT_CLOSED',
  'ERR_KIT_QUEUE_UNAVAILABLE',
] as const

/** Stable error codes: match on `err.code`, never on the message. */
export type KitErrorCode = (typeof KIT_ERROR_CODES)[number]

/** The one error class the kit throws. Messages never contain a password. */
export class KitError extends Error {
  readonly code: KitErrorCode

  constructor(code: KitErrorCode, message: string) {
    super(message)
    this.name = 'KitError'
    this.code = code
  }
}

export function invalidOption(option: string, problem: string, fix: string): KitError {
  return new KitError('ERR_KIT_INVALID_OPTION', `express-redis-kit: ${option} ${problem}. ${fix}`)
}

/** Option names compared for a "Did you mean": lowercased, without `_` / `-`. */
export function squashName(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '')
}

/** The known option `name` most likely meant (`key_prefix` finds `keyPrefix`), if any. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const squashed = squashName(name)
  return known.find((k) => squashName(k) === squashed)
}

export function invalidArgument(method: string, problem: string): KitError {
  return new KitError('ERR_KIT_INVALID_ARGUMENT', `express-redis-kit: ${method}: ${problem}`)
}
