/**
 * Response capture: copies what a handler sends (res.send / json / end / write / piped streams)
 * into one Buffer, byte for byte, whatever Express or Node helper produced it.
 *
 * - `captureThrough`: the response goes to the client as it is produced and is copied on the way.
 *   The status and headers are judged once, before anything leaves, so a 5xx can still be
 *   swallowed and replaced by a stale entry (stale-if-error).
 * - `captureDetached` (capture-detached.ts): the client has already been answered
 *   (stale-while-revalidate); the handler runs against a shadow of the response — headers,
 *   status, body and events — that never reaches the socket.
 *
 * Only per-instance properties are replaced; the prototypes are never touched.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'

export interface Captured {
  status: number
  /** The handler's headers, lowercase, as they were before upstream on-headers hooks ran. */
  headers: OutgoingHttpHeaders
  body: Buffer
}

export type Res = ServerResponse

/** Write callbacks run asynchronously, as Node's own do, even when nothing was written. */
export function later(callback: unknown): void {
  if (typeof callback === 'function') process.nextTick(callback)
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? encoding as BufferEncoding : 'utf8')
  if (Buffer.isBuffer(chunk)) return chunk
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  return undefined
}

function addHeader(out: OutgoingHttpHeaders, name: unknown, value: unknown): void {
  if (typeof name !== 'string' || name === '' || value === undefined) return
  const key = name.toLowerCase()
  const text = (item: unknown): string => (typeof item === 'string' ? item : typeof item === 'number' ? String(item) : JSON.stringify(item) ?? '')
  const next = Array.isArray(value) ? value.map(text) : typeof value === 'number' ? value : text(value)
  const existing = out[key]
  if (existing === undefined) out[key] = next
  else out[key] = [...(Array.isArray(existing) ? existing : [String(existing)]), ...(Array.isArray(next) ? next : [String(next)])]
}

/** The headers argument of writeHead(status, [reason], [headers]) in any of Node's forms. */
export function writeHeadHeaders(args: readonly unknown[]): OutgoingHttpHeaders {
  const headers = typeof args[1] === 'string' ? args[2] : args[1]
  const out: OutgoingHttpHeaders = {}
  if (!headers || typeof headers !== 'object') return out
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) for (const pair of headers as unknown[][]) addHeader(out, pair[0], pair[1])
    else for (let i = 0; i + 1 < headers.length; i += 2) addHeader(out, headers[i], headers[i + 1])
    return out
  }
  for (const [name, value] of Object.entries(headers)) addHeader(out, name, value)
  return out
}

/** A bounded list of body chunks; stops (and frees) once over the limit. */
export class Body {
  private chunks: Buffer[] = []
  private size = 0
  overflowed = false

  constructor(private readonly max: number) {}

  add(chunk: unknown, encoding: unknown): void {
    if (this.overflowed || chunk === undefined || chunk === null) return
    let buffer: Buffer | undefined
    try {
      buffer = toBuffer(chunk, encoding)
    } catch {
      buffer = undefined // an invalid encoding: Node rejects the write itself; just do not store
    }
    if (buffer === undefined) { this.drop(); return }
    this.size += buffer.length
    if (this.size > this.max) { this.drop(); return }
    this.chunks.push(buffer)
  }

  drop(): void {
    this.overflowed = true
    this.chunks = []
  }

  take(): Buffer {
    const body = this.chunks.length === 1 ? this.chunks[0] as Buffer : Buffer.concat(this.chunks, this.size)
    this.chunks = []
    return body
  }
}

export type HeadVerdict = 'store' | 'skip' | 'swallow'

export interface ThroughOptions {
  maxBodyBytes: number
  /** Status and headers are known and nothing was sent yet: store, do not store, or swallow. */
  onHead(status: number, headers: OutgoingHttpHeaders): HeadVerdict
  /** The headers after upstream hooks (session cookies…) ran: `false` stops storing. */
  afterHead(headers: OutgoingHttpHeaders): boolean
  /** The handler's response was swallowed: answer the client with `originals`. */
  onSwallow(originals: Originals): void
  /** The response ended (captured) or was abandoned / not storable (`undefined`). Called once. */
  onDone(captured: Captured | undefined): void
}

export interface Originals {
  writeHead: Res['writeHead']
  end: Res['end']
}

/** Copies the response on its way to the client. */
export function captureThrough(res: Res, options: ThroughOptions): void {
  new ThroughCapture(res, options).install()
}

/** The callback of end(chunk, encoding, callback), wherever it was passed. */
export function endCallback(args: readonly unknown[]): unknown {
  return args.slice(0, 3).find((arg) => typeof arg === 'function')
}

/**
 * Wraps writeHead / write / end of one response. The first of them to run decides, once, whether
 * the response is stored, skipped or swallowed, before any byte leaves.
 */
class ThroughCapture {
  private readonly original: Originals & { write: Res['write'] }
  private readonly body: Body
  private decided = false
  private storing = false
  private swallowed = false
  private done = false
  private status = 200
  private headers: OutgoingHttpHeaders = {}

  constructor(private readonly res: Res, private readonly options: ThroughOptions) {
    this.original = { writeHead: res.writeHead, write: res.write, end: res.end }
    this.body = new Body(options.maxBodyBytes)
  }

  install(): void {
    const res = this.res
    // Per-instance replacements (never the prototype); Node calls them with `this` = res.
    const writeHead = (target: Res, args: unknown[]): Res => this.writeHead(target, args)
    const write = (target: Res, args: unknown[]): boolean => this.write(target, args)
    const end = (target: Res, args: unknown[]): Res => this.end(target, args)
    res.writeHead = function writeHeadCaptured(this: Res, ...args: unknown[]): Res { return writeHead(this, args) }
    res.write = function writeCaptured(this: Res, ...args: unknown[]): boolean { return write(this, args) } as Res['write']
    res.end = function endCaptured(this: Res, ...args: unknown[]): Res { return end(this, args) } as Res['end']
    res.once('close', () => this.finish(undefined))
  }

  private finish(captured: Captured | undefined): void {
    if (this.done) return
    this.done = true
    this.options.onDone(captured)
  }

  /** Judges status and headers, once; true when the handler's response is swallowed. */
  private decide(status: number, extra: OutgoingHttpHeaders): boolean {
    this.decided = true
    this.status = status
    this.headers = { ...this.res.getHeaders(), ...extra }
    const verdict = this.options.onHead(status, this.headers)
    if (verdict === 'swallow') {
      this.swallowed = true
      this.options.onSwallow({ writeHead: this.original.writeHead, end: this.original.end })
      this.finish(undefined)
      return true
    }
    this.storing = verdict === 'store'
    if (!this.storing) this.body.drop()
    return false
  }

  /** Whether this write is the first and it swallows the response (a stale answer replaces it). */
  private swallowsFirst(res: Res): boolean {
    return !this.decided && !res.headersSent && this.decide(res.statusCode, {})
  }

  private writeHead(res: Res, args: unknown[]): Res {
    if (this.swallowed) return res
    if (!this.decided && !res.headersSent) {
      const status = typeof args[0] === 'number' ? args[0] : res.statusCode
      if (this.decide(status, writeHeadHeaders(args))) return res
    }
    const result = (this.original.writeHead as (...a: unknown[]) => Res).apply(res, args)
    // Upstream on-headers hooks (session cookies…) have run now: what they added may forbid storing.
    if (this.storing && !this.options.afterHead(res.getHeaders())) {
      this.storing = false
      this.body.drop()
    }
    return result
  }

  private write(res: Res, args: unknown[]): boolean {
    const [chunk, encoding, callback] = args
    if (this.swallowed || this.swallowsFirst(res)) {
      later(typeof encoding === 'function' ? encoding : callback)
      return true
    }
    if (this.storing) this.body.add(chunk, encoding)
    return (this.original.write as (...a: unknown[]) => boolean).apply(res, args)
  }

  private end(res: Res, args: unknown[]): Res {
    const [chunk, encoding] = args
    if (this.swallowed || this.swallowsFirst(res)) {
      later(endCallback(args))
      return res
    }
    if (this.storing && typeof chunk !== 'function') this.body.add(chunk, encoding)
    const result = (this.original.end as (...a: unknown[]) => Res).apply(res, args)
    // A status changed after the head went out is an error path ending a half-sent body; a
    // destroyed response (a failed pipeline) was cut off whatever is written after.
    const whole = this.storing && this.decided && !this.body.overflowed && res.statusCode === this.status && !res.destroyed
    this.finish(whole ? { status: this.status, headers: this.headers, body: this.body.take() } : undefined)
    return result
  }
}
