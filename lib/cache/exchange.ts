/**
 * One request through a cache middleware. Several paths may want to hand it on (bypass, miss,
 * refresh, error), and Express must see `next` at most once, so they all go through here.
 */
import type { NextFunction, Request, Response } from 'express'

export class Exchange {
  private proceeded = false
  /** Whether the request's cache result was counted (counters.ts). */
  counted = false
  /** The request's metrics label, once read (counters.ts). */
  label: string | undefined

  constructor(readonly req: Request, readonly res: Response, private readonly next: NextFunction) {}

  /** Lets the route handler run. */
  proceed(): void {
    if (this.proceeded) return
    this.proceeded = true
    this.next()
  }

  /** A user callback (`skip`, `key`) threw before the cache decided anything. */
  reject(error: unknown): void {
    this.proceeded = true
    this.next(error)
  }

  /** Calls `fn` once the real response has been handed to the socket (or the socket closed). */
  afterResponse(fn: () => void): void {
    let called = false
    const once = (): void => {
      if (called) return
      called = true
      fn()
    }
    if (this.res.writableFinished) { process.nextTick(once); return }
    this.res.once('finish', once)
    this.res.once('close', once)
  }

  /** Sends `error` to next(err) if nothing was sent or handed on yet; false when it is too late. */
  fail(error: unknown): boolean {
    if (this.proceeded || this.res.headersSent) return false
    this.proceeded = true
    this.next(error)
    return true
  }
}
