/** A small app behind `kit.rateLimit()`, for the rate-limit tests (Express 5 by default, or Express 4). */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import type { NextFunction, Request, Response } from 'express'
import type { RateLimitRequestHandler } from 'express-rate-limit'
import type { Kit, RateLimitOptions } from '../../lib/index.js'

/** Keys clients by the `x-client` header, so tests choose who is counted. */
export function byClientHeader(req: Request): string {
  return String(req.headers['x-client'] ?? 'anonymous')
}

export interface RateLimitedApp {
  app: express.Express
  limiter: RateLimitRequestHandler
  /** Every error that reached Express's error handler (each became a 500). */
  errors: unknown[]
}

/** GET / answers 200 { ok, used } through one limiter; errors are recorded and answered 500. */
export function rateLimitedApp(kit: Kit, options: Partial<RateLimitOptions> = {}, flavour: 'express5' | 'express4' = 'express5'): RateLimitedApp {
  // express4 (an alias of express@4) ships no types; its app has the same surface used here.
  const app = flavour === 'express4' ? (require('express4') as () => express.Express)() : express()
  const limiter = kit.rateLimit({ keyGenerator: byClientHeader, ...options })
  const state: RateLimitedApp = { app, limiter, errors: [] }
  app.use(limiter)
  app.get('/', (req: Request, res: Response) => {
    res.json({ ok: true, used: (req as Request & { rateLimit?: { used: number } }).rateLimit?.used })
  })
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    state.errors.push(error)
    res.status(500).json({ error: String(error) })
  })
  return state
}

/** Listens on a free loopback port (IPv4, or `::1`); resolves the server and its base URL. */
export async function listen(app: express.Express, host: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<{ server: Server; url: string }> {
  const server = app.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { server, url: `http://${host === '::1' ? '[::1]' : host}:${port}` }
}

export interface Hit {
  status: number
  headers: Headers
  /** 0 when the request itself failed (connection refused, reset…). */
  ms: number
}

/** One GET as `client`; a failed request resolves with status 0 instead of throwing. */
export async function hit(url: string, client: string, path = '/'): Promise<Hit> {
  const started = performance.now()
  try {
    const response = await fetch(url + path, { headers: { 'x-client': client } })
    await response.arrayBuffer()
    return { status: response.status, headers: response.headers, ms: performance.now() - started }
  } catch {
    return { status: 0, headers: new Headers(), ms: performance.now() - started }
  }
}

/** `count` GETs one after another; resolves their statuses in order. */
export async function hits(url: string, client: string, count: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < count; i++) statuses.push((await hit(url, client)).status)
  return statuses
}

export function tally(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** Parses draft-8 `RateLimit: "name"; r=2; t=60` (and the policy header) into numbers. */
export function draft8(headers: Headers): { name: string; r: number; t: number; q: number; w: number } | undefined {
  const limit = /^"([^"]+)"; r=(\d+); t=(\d+)$/.exec(headers.get('ratelimit') ?? '')
  const policy = /^"([^"]+)"; q=(\d+); w=(\d+); pk=:[A-Za-z0-9+/=]+:$/.exec(headers.get('ratelimit-policy') ?? '')
  if (!limit || !policy) return undefined
  return { name: limit[1] as string, r: Number(limit[2]), t: Number(limit[3]), q: Number(policy[2]), w: Number(policy[3]) }
}
