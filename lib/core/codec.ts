/**
 * How `kit.client` values are written, identically to Redis and to memory:
 * numbers as their decimal text (so INCRBY works on them), objects and arrays as JSON, and
 * strings as themselves unless they would read back as something else ("42", "true", "{}"),
 * in which case they are JSON-quoted. Reading parses JSON and falls back to the raw text, so
 * values written by other programs still read as plain strings.
 */
import { invalidArgument } from './errors.js'
import type { KitValue } from '../types.js'

export function encodeValue(value: KitValue, method: string): string {
  if (typeof value === 'string') return parsesAsJson(value) ? JSON.stringify(value) : value
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw invalidArgument(method, `cannot store ${value}; use a finite number`)
  }
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
    throw invalidArgument(method, `cannot store a value of type ${typeof value}; use a string, number, boolean, null, object or array`)
  }
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (error) {
    // Circular structures, BigInt inside objects, a toJSON() that throws.
    throw invalidArgument(method, `cannot encode the value as JSON (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); store plain data`)
  }
  if (json === undefined) throw invalidArgument(method, 'the value encodes to nothing in JSON (its toJSON() returned undefined); store plain data')
  return json
}

export function decodeValue(raw: string | null | undefined): KitValue | null {
  if (raw === null || raw === undefined) return null
  try {
    return JSON.parse(raw) as KitValue
  } catch {
    return raw
  }
}

/** Text that cannot start a JSON document skips the (throwing) parse: the common case is cheap. */
const JSON_START = /^[\s{["\-0-9tfn]/

function parsesAsJson(text: string): boolean {
  if (!JSON_START.test(text)) return false
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}
