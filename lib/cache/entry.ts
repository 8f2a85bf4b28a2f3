/**
 * How a response is stored: ONE value per entry, so a hit is one Redis read.
 *
 *   byte 0      kind (1 = response, 2 = Vary record)
 *   bytes 1-4   length of the JSON meta (uint32, big-endian)         [responses only]
 *   meta        {"s":status,"h":{headers},"t":storedAt,"x":ttlMs,"w":swrMs,"e":sieMs,"g":[tags]}
 *   body        the response body, byte for byte
 *
 * A Vary record is byte 2 followed by the comma-joined header names. In memory the same bytes are
 * kept as a latin1 string (one char per byte), so the memory twin's size accounting stays honest
 * and a memory hit can send the body string as is. The meta JSON is kept ASCII (\u escapes), so it
 * reads the same from bytes and from the latin1 string.
 */

const RESPONSE = 1
const VARY = 2

export type StoredHeaders = Record<string, string | string[]>

/** A body as read back: bytes from Redis, or the latin1 string (one char per byte) from memory. */
export type Body = Buffer | string

export interface StoredResponse {
  status: number
  /** Lowercase names; never Set-Cookie, hop-by-hop or per-request headers. */
  headers: StoredHeaders
  body: Body
  /** When the handler produced it (ms since epoch, the filling instance's clock). */
  storedAt: number
  ttlMs: number
  swrMs: number
  sieMs: number
  tags: string[]
}

export type Decoded =
  | { kind: 'response'; response: StoredResponse }
  | { kind: 'vary'; names: string[] }

interface Meta {
  s: number
  h: StoredHeaders
  t: number
  x: number
  w: number
  e: number
  g?: string[]
}

const NON_ASCII = /[\u007f-\uffff]/g
const HAS_NON_ASCII = /[\u007f-\uffff]/

function asciiJson(value: unknown): string {
  const json = JSON.stringify(value)
  return HAS_NON_ASCII.test(json) ? json.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json
}

export function encodeResponse(response: StoredResponse): Buffer {
  const meta: Meta = {
    s: response.status, h: response.headers, t: response.storedAt,
    x: response.ttlMs, w: response.swrMs, e: response.sieMs,
    ...(response.tags.length > 0 ? { g: response.tags } : {}),
  }
  const json = asciiJson(meta)
  const body = typeof response.body === 'string' ? Buffer.from(response.body, 'latin1') : response.body
  const out = Buffer.allocUnsafe(5 + json.length + body.length)
  out[0] = RESPONSE
  out.writeUInt32BE(json.length, 1)
  out.write(json, 5, 'latin1')
  body.copy(out, 5 + json.length)
  return out
}

export function encodeVary(names: readonly string[]): Buffer {
  return Buffer.concat([Buffer.from([VARY]), Buffer.from(names.join(','), 'latin1')])
}

function isMeta(value: unknown): value is Meta {
  if (typeof value !== 'object' || value === null) return false
  const m = value as Partial<Meta>
  return typeof m.s === 'number' && typeof m.h === 'object' && m.h !== null && typeof m.t === 'number'
    && typeof m.x === 'number' && typeof m.w === 'number' && typeof m.e === 'number'
    && (m.g === undefined || Array.isArray(m.g))
}

/** The kind byte and, for responses, where the body starts; `undefined` when malformed. */
export function layout(raw: Buffer | string): { kind: 'response'; bodyStart: number } | { kind: 'vary' } | undefined {
  if (raw.length === 0) return undefined
  const kind = typeof raw === 'string' ? raw.charCodeAt(0) : raw[0]
  if (kind === VARY) return { kind: 'vary' }
  if (kind !== RESPONSE || raw.length < 5) return undefined
  const metaLength = typeof raw === 'string'
    ? ((raw.charCodeAt(1) << 24) | (raw.charCodeAt(2) << 16) | (raw.charCodeAt(3) << 8) | raw.charCodeAt(4)) >>> 0
    : raw.readUInt32BE(1)
  return 5 + metaLength > raw.length ? undefined : { kind: 'response', bodyStart: 5 + metaLength }
}

/** Decodes a stored value (bytes or their latin1 string); `undefined` for anything unreadable. */
export function decode(raw: Buffer | string | undefined | null): Decoded | undefined {
  if (raw === undefined || raw === null) return undefined
  const shape = layout(raw)
  if (shape === undefined) return undefined
  if (shape.kind === 'vary') {
    const names = (typeof raw === 'string' ? raw.slice(1) : raw.toString('utf8', 1)).split(',').filter((name) => name !== '')
    return names.length > 0 ? { kind: 'vary', names } : undefined
  }
  let meta: unknown
  try {
    meta = JSON.parse(typeof raw === 'string' ? raw.slice(5, shape.bodyStart) : raw.toString('latin1', 5, shape.bodyStart))
  } catch {
    return undefined
  }
  if (!isMeta(meta)) return undefined
  return {
    kind: 'response',
    response: {
      status: meta.s, headers: meta.h,
      body: typeof raw === 'string' ? raw.slice(shape.bodyStart) : raw.subarray(shape.bodyStart),
      storedAt: meta.t, ttlMs: meta.x, swrMs: meta.w, sieMs: meta.e, tags: meta.g ?? [],
    },
  }
}

/** Only the tags of a stored value (memory invalidation). */
export function tagsOf(raw: Buffer | string): string[] {
  const decoded = decode(raw)
  return decoded?.kind === 'response' ? decoded.response.tags : []
}

/** How long Redis/memory keep an entry: fresh time plus the longer stale window. */
export function lifetimeMs(response: Pick<StoredResponse, 'ttlMs' | 'swrMs' | 'sieMs'>): number {
  return response.ttlMs + Math.max(response.swrMs, response.sieMs)
}
