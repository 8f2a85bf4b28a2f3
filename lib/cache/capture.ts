/**
 * Response capture: copies what a handler sends (res.send / json / end / write / piped streams)
 * into one Buffer, byte for byte, whatever Express or Node helper produced it.
 *
 * - `captureThrough`: the response goes to the client as it is produced and is copied on the way.
 *   The status and headers are judged once, before anything leaves, so a 5xx can still be
 *   swallowed and replaced by a stale entry (stale-if-error).
 * - `captureDetached`: the client has already been answered (stale-while-revalidate); the handler
 *   runs against a shadow of the response — headers, status, body and events — that never
 *   reaches the socket.
 *
 * Only per-instance properties are replaced; the prototypes are never touched.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http'

export interface Captured {
  status: number
  /** The handler's headers, lowercase, as they were before upstream on-headers hooks ran. */
  headers: OutgoingHttpHeaders
  body: Buffer
}

type Callback = (error?: Error | null) => void
type Chunk = string | Uint8Array
type Res = ServerResponse

function later(callback: unknown): void {
  if (typeof callback === 'function') process.nextTick(callback as Callback)
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
  const next = Array.isArray(value) ? value.map(String) : typeof value === 'number' ? value : String(value)
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
class Body {
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
  const original = { writeHead: res.writeHead, write: res.write, end: res.end }
  const body = new Body(options.maxBodyBytes)
  let decided = false
  let storing = false
  let swallowed = false
  let done = false
  let status = 200
  let headers: OutgoingHttpHeaders = {}

  const finish = (captured: Captured | undefined): void => {
    if (done) return
    done = true
    options.onDone(captured)
  }

  /** Returns true when the handler's response is swallowed. */
  const decide = (statusCode: number, extra: OutgoingHttpHeaders): boolean => {
    decided = true
    status = statusCode
    headers = { ...res.getHeaders(), ...extra }
    const verdict = options.onHead(status, headers)
    if (verdict === 'swallow') {
      swallowed = true
      options.onSwallow({ writeHead: original.writeHead, end: original.end })
      finish(undefined)
      return true
    }
    storing = verdict === 'store'
    if (!storing) body.drop()
    return false
  }

  res.writeHead = function writeHead(this: Res, ...args: unknown[]): Res {
    if (swallowed) return this
    if (!decided && !this.headersSent) {
      const code = typeof args[0] === 'number' ? args[0] : this.statusCode
      if (decide(code, writeHeadHeaders(args))) return this
    }
    const result = (original.writeHead as (...a: unknown[]) => Res).apply(this, args)
    if (storing && !options.afterHead(this.getHeaders())) { storing = false; body.drop() }
    return result
  } as Res['writeHead']

  res.write = function write(this: Res, chunk: Chunk, encoding?: unknown, callback?: unknown): boolean {
    if (swallowed) { later(typeof encoding === 'function' ? encoding : callback); return true }
    if (!decided && !this.headersSent && decide(this.statusCode, {})) { later(typeof encoding === 'function' ? encoding : callback); return true }
    if (storing) body.add(chunk, encoding)
    // eslint-disable-next-line prefer-rest-params
    return (original.write as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[])
  } as Res['write']

  res.end = function end(this: Res, chunk?: unknown, encoding?: unknown, callback?: unknown): Res {
    if (swallowed) { later([chunk, encoding, callback].find((a) => typeof a === 'function')); return this }
    if (!decided && !this.headersSent && decide(this.statusCode, {})) {
      later([chunk, encoding, callback].find((a) => typeof a === 'function'))
      return this
    }
    if (storing && typeof chunk !== 'function') body.add(chunk, encoding)
    // eslint-disable-next-line prefer-rest-params
    const result = (original.end as (...a: unknown[]) => Res).apply(this, arguments as unknown as unknown[])
    finish(storing && decided && !body.overflowed ? { status, headers, body: body.take() } : undefined)
    return result
  } as Res['end']

  res.once('close', () => finish(undefined))
}

export interface DetachedOptions {
  maxBodyBytes: number
  onDone(captured: Captured | undefined): void
}

function headersSentError(action: string): Error {
  const error = new Error(`Cannot ${action} headers after they are sent to the client`) as Error & { code: string }
  error.code = 'ERR_HTTP_HEADERS_SENT'
  return error
}

/**
 * Re-points `res` at a shadow response after the real one has finished: the handler can run
 * again (a background refresh) and everything it sends is captured, nothing reaches the socket.
 * Listeners added from now on go to the shadow; listeners added earlier keep their real events.
 */
export function captureDetached(res: Res, options: DetachedOptions): { abandon(): void } {
  const shadow = new Map<string, OutgoingHttpHeader>()
  const events = new EventEmitter()
  const body = new Body(options.maxBodyBytes)
  let sent = false
  let ended = false
  let done = false

  const finish = (captured: Captured | undefined): void => {
    if (done) return
    done = true
    options.onDone(captured)
  }

  res.statusCode = 200
  res.statusMessage = ''
  const set = (name: string, value: OutgoingHttpHeader | readonly string[]): void => {
    shadow.set(name.toLowerCase(), Array.isArray(value) ? [...value as string[]] : value as OutgoingHttpHeader)
  }
  const on = (method: 'on' | 'once' | 'prependListener' | 'prependOnceListener') =>
    function listen(this: Res, event: string | symbol, listener: (...args: unknown[]) => void): Res {
      events[method](event, listener)
      return res
    }
  const off = function off(this: Res, event: string | symbol, listener: (...args: unknown[]) => void): Res {
    events.removeListener(event, listener)
    EventEmitter.prototype.removeListener.call(res, event, listener)
    return res
  }

  Object.assign(res, {
    setHeader(name: string, value: OutgoingHttpHeader | readonly string[]): Res {
      if (sent) throw headersSentError('set')
      set(name, value)
      return res
    },
    appendHeader(name: string, value: string | readonly string[]): Res {
      if (sent) throw headersSentError('append')
      const existing = shadow.get(name.toLowerCase())
      const add = Array.isArray(value) ? value as string[] : [String(value)]
      set(name, existing === undefined ? add : [...(Array.isArray(existing) ? existing : [String(existing)]), ...add])
      return res
    },
    getHeader: (name: string) => shadow.get(String(name).toLowerCase()),
    getHeaders: () => Object.fromEntries(shadow) as OutgoingHttpHeaders,
    getHeaderNames: () => [...shadow.keys()],
    hasHeader: (name: string) => shadow.has(String(name).toLowerCase()),
    removeHeader(name: string): void {
      if (sent) throw headersSentError('remove')
      shadow.delete(name.toLowerCase())
    },
    writeHead(this: Res, ...args: unknown[]): Res {
      if (typeof args[0] === 'number') res.statusCode = args[0]
      for (const [name, value] of Object.entries(writeHeadHeaders(args))) if (value !== undefined) set(name, value)
      sent = true
      return res
    },
    flushHeaders(): void { sent = true },
    write(chunk: Chunk, encoding?: unknown, callback?: unknown): boolean {
      sent = true
      if (!ended) body.add(chunk, typeof encoding === 'function' ? undefined : encoding)
      later(typeof encoding === 'function' ? encoding : callback)
      return true
    },
    end(chunk?: unknown, encoding?: unknown, callback?: unknown): Res {
      later([chunk, encoding, callback].find((a) => typeof a === 'function'))
      if (ended) return res
      sent = true
      if (typeof chunk !== 'function') body.add(chunk, typeof encoding === 'function' ? undefined : encoding)
      ended = true
      finish(body.overflowed ? undefined : { status: res.statusCode, headers: Object.fromEntries(shadow) as OutgoingHttpHeaders, body: body.take() })
      events.emit('prefinish')
      events.emit('finish')
      events.emit('close')
      return res
    },
    on: on('on'),
    addListener: on('on'),
    once: on('once'),
    prependListener: on('prependListener'),
    prependOnceListener: on('prependOnceListener'),
    off,
    removeListener: off,
  })
  for (const name of ['headersSent', 'writableEnded', 'writableFinished', 'finished'] as const) {
    Object.defineProperty(res, name, { configurable: true, enumerable: false, get: () => (name === 'headersSent' ? sent : ended) })
  }
  return { abandon: () => finish(undefined) }
}
