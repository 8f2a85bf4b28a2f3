/**
 * `captureDetached`: re-points a response at a shadow after the real one has finished, so the
 * handler can run again (a stale-while-revalidate refresh) and everything it sends is captured
 * while nothing reaches the socket. Listeners added from now on go to the shadow; listeners added
 * earlier keep their real events. Only per-instance properties are replaced, never the prototype.
 */
import { EventEmitter } from 'node:events'
import type { OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import { Body, endCallback, later, writeHeadHeaders, type Captured, type Res } from './capture.js'

export interface DetachedOptions {
  maxBodyBytes: number
  /** Headers upstream middleware set on the triggering request, set again on the shadow first. */
  upstream: OutgoingHttpHeaders
  /** The handler ended (captured) or the capture was abandoned / overflowed (`undefined`). Called once. */
  onDone(captured: Captured | undefined): void
}

type Chunk = string | Uint8Array
type Listener = (...args: unknown[]) => void

/** Node's own error, so handlers that check `err.code` behave as they would on a real response. */
function headersSentError(action: string): Error {
  const error = new Error(`Cannot ${action} headers after they are sent to the client`) as Error & { code: string }
  error.code = 'ERR_HTTP_HEADERS_SENT'
  return error
}

export function captureDetached(res: Res, options: DetachedOptions): { abandon(): void } {
  const shadow = new Shadow(res, options)
  res.statusCode = 200
  res.statusMessage = ''
  Object.assign(res, shadow.headerMethods(), shadow.writeMethods(), shadow.eventMethods())
  shadow.defineFlags()
  // What middleware ahead of the cache had set on the triggering request (Vary: Cookie,
  // Cache-Control: private …): the handler and the store see it as on a normal fill.
  for (const [name, value] of Object.entries(options.upstream)) if (value !== undefined) res.setHeader(name, value)
  return { abandon: () => shadow.finish(undefined) }
}

/** The state behind the replaced methods: headers, body, events, and whether it was sent or ended. */
class Shadow {
  private readonly headers = new Map<string, OutgoingHttpHeader>()
  private readonly events = new EventEmitter()
  private readonly body: Body
  private sent = false
  /** The status when the head was (notionally) sent: a later change means an error path ended the body. */
  private sentStatus = 0
  private ended = false
  private done = false

  constructor(private readonly res: Res, private readonly options: DetachedOptions) {
    this.body = new Body(options.maxBodyBytes)
  }

  finish(captured: Captured | undefined): void {
    if (this.done) return
    this.done = true
    this.options.onDone(captured)
  }

  private set(name: string, value: OutgoingHttpHeader | readonly string[]): void {
    this.headers.set(name.toLowerCase(), Array.isArray(value) ? [...value] : value as OutgoingHttpHeader)
  }

  /** The head goes out with the first writeHead, write or end. */
  private send(): void {
    if (this.sent) return
    this.sent = true
    this.sentStatus = this.res.statusCode
  }

  private unsent(action: string): void {
    if (this.sent) throw headersSentError(action)
  }

  headerMethods() {
    const { res, headers } = this
    return {
      setHeader: (name: string, value: OutgoingHttpHeader | readonly string[]): Res => {
        this.unsent('set')
        this.set(name, value)
        return res
      },
      appendHeader: (name: string, value: string | readonly string[]): Res => {
        this.unsent('append')
        const existing = headers.get(name.toLowerCase())
        const add = Array.isArray(value) ? value as string[] : [String(value)]
        this.set(name, existing === undefined ? add : [...(Array.isArray(existing) ? existing : [String(existing)]), ...add])
        return res
      },
      getHeader: (name: string) => headers.get(String(name).toLowerCase()),
      getHeaders: () => Object.fromEntries(headers) as OutgoingHttpHeaders,
      getHeaderNames: () => [...headers.keys()],
      hasHeader: (name: string) => headers.has(String(name).toLowerCase()),
      removeHeader: (name: string): void => {
        this.unsent('remove')
        headers.delete(name.toLowerCase())
      },
    }
  }

  writeMethods() {
    const res = this.res
    return {
      writeHead: (...args: unknown[]): Res => {
        if (typeof args[0] === 'number') res.statusCode = args[0]
        for (const [name, value] of Object.entries(writeHeadHeaders(args))) if (value !== undefined) this.set(name, value)
        this.send()
        return res
      },
      flushHeaders: (): void => { this.send() },
      write: (chunk: Chunk, encoding?: unknown, callback?: unknown): boolean => {
        this.send()
        if (!this.ended) this.body.add(chunk, typeof encoding === 'function' ? undefined : encoding)
        later(typeof encoding === 'function' ? encoding : callback)
        return true
      },
      end: (...args: unknown[]): Res => {
        later(endCallback(args))
        if (!this.ended) this.end(args[0], args[1])
        return res
      },
    }
  }

  /** The handler's last write: the capture is complete, and the shadow's listeners hear the end. */
  private end(chunk: unknown, encoding: unknown): void {
    this.send()
    if (typeof chunk !== 'function') this.body.add(chunk, typeof encoding === 'function' ? undefined : encoding)
    this.ended = true
    const headers = Object.fromEntries(this.headers) as OutgoingHttpHeaders
    const whole = !this.body.overflowed && this.res.statusCode === this.sentStatus
    this.finish(whole ? { status: this.res.statusCode, headers, body: this.body.take() } : undefined)
    this.events.emit('prefinish')
    this.events.emit('finish')
    this.events.emit('close')
  }

  eventMethods() {
    const { res, events } = this
    const listen = (method: 'on' | 'once' | 'prependListener' | 'prependOnceListener') =>
      (event: string | symbol, listener: Listener): Res => {
        events[method](event, listener)
        return res
      }
    // A listener may have been added before the response was detached: remove it from both.
    const off = (event: string | symbol, listener: Listener): Res => {
      events.removeListener(event, listener)
      EventEmitter.prototype.removeListener.call(res, event, listener)
      return res
    }
    return {
      on: listen('on'), addListener: listen('on'), once: listen('once'),
      prependListener: listen('prependListener'), prependOnceListener: listen('prependOnceListener'),
      off, removeListener: off,
    }
  }

  /** What the handler and Express read to know whether the response already went out. */
  defineFlags(): void {
    for (const name of ['headersSent', 'writableEnded', 'writableFinished', 'finished'] as const) {
      Object.defineProperty(this.res, name, { configurable: true, enumerable: false, get: () => (name === 'headersSent' ? this.sent : this.ended) })
    }
  }
}
