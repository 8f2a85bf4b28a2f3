/**
 * An app with one route per kind of response the cache must copy byte for byte, and a counter of
 * handler runs per route, so tests can tell a hit (handler not run) from a miss.
 */
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express'
import type { CacheOptions, Kit } from '../../lib/index.js'

/** A valid 1×1 PNG (every byte value matters: it contains NULs and bytes ≥ 0x80). */
export const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
  '1f15c4890000000d49444154789c63f8cfc0f01f0005000201e5273de80000000049454e44ae426082', 'hex')

/** Every byte value, twice, so any text decoding on the way would show. */
export const ALL_BYTES = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i))])

export const GZIPPED = gzipSync(Buffer.from(JSON.stringify({ compressed: true, filler: 'x'.repeat(2000) })))

export interface CacheAppState {
  /** Handler runs per route name. */
  calls: Map<string, number>
  /** Bumped by tests to change what handlers return. */
  version: number
  /** When true, `/flaky` fails with 500 (or throws, per `failMode`). */
  failing: boolean
  failMode: 'status' | 'throw' | 'next'
  /** Milliseconds `/slow` waits before answering. */
  slowMs: number
  /** While set, `/slow` also waits for it (after slowMs) before answering: see holdSlow(). */
  hold: Promise<void> | undefined
}

/**
 * Holds every `/slow` request that starts from now on until the returned function is called: a
 * fill that is certainly still running while the test does something else (no guessed duration).
 */
export function holdSlow(state: CacheAppState): () => void {
  let release: () => void = () => {}
  state.hold = new Promise<void>((resolve) => { release = resolve })
  return () => {
    state.hold = undefined
    release()
  }
}

export interface CacheApp {
  app: Express
  state: CacheAppState
  calls(route: string): number
}

type Cache = (options?: Readonly<Partial<CacheOptions>>) => RequestHandler

/**
 * Routes, all behind `kit.cache(options)` (per-route overrides in `routeOptions`).
 * `before` middleware runs ahead of the cache (e.g. an upstream cookie setter).
 */
export function createCacheApp(kit: Kit, options: Partial<CacheOptions> = {}, extra: {
  before?: RequestHandler[]
  routeOptions?: Record<string, Partial<CacheOptions>>
  expressModule?: () => Express
} = {}): CacheApp {
  const app = (extra.expressModule ?? express)()
  const state: CacheAppState = { calls: new Map(), version: 1, failing: false, failMode: 'status', slowMs: 50, hold: undefined }
  const count = (route: string): void => { state.calls.set(route, (state.calls.get(route) ?? 0) + 1) }
  const cache: Cache = (o) => kit.cache(o)
  const route = (name: string): RequestHandler => cache({ ...options, ...extra.routeOptions?.[name] })
  for (const middleware of extra.before ?? []) app.use(middleware)

  app.get('/json/:id', route('json'), (req, res) => {
    count('json')
    res.json({ id: req.params.id, version: state.version, query: req.query })
  })
  app.get('/text', route('text'), (_req, res) => { count('text'); res.send(`text v${state.version}`) })
  app.get('/png', route('png'), (_req, res) => { count('png'); res.type('png').send(PNG) })
  app.get('/bytes', route('bytes'), (_req, res) => {
    count('bytes')
    res.setHeader('content-type', 'application/octet-stream')
    res.end(new Uint8Array(ALL_BYTES))
  })
  app.get('/gzip', route('gzip'), (_req, res) => {
    count('gzip')
    res.set({ 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' })
    res.end(GZIPPED)
  })
  app.get('/stream', route('stream'), (_req, res) => {
    count('stream')
    res.setHeader('content-type', 'text/plain; charset=utf-8')
    Readable.from([`v${state.version}:`, 'chunk-1,', Buffer.from('chunk-2,'), 'ünïcödé,', ALL_BYTES.subarray(0, 16).toString('latin1')], { objectMode: false }).pipe(res)
  })
  app.get('/write', route('write'), (_req, res) => {
    count('write')
    res.status(200).setHeader('content-type', 'text/plain')
    res.write('part-1;')
    res.write(Buffer.from('part-2;'))
    res.write('706172742d333b', 'hex')
    res.end(`v${state.version}`)
  })
  app.get('/cookie', route('cookie'), (_req, res) => {
    count('cookie')
    res.cookie('sid', `secret-${state.version}-${Math.random()}`).json({ version: state.version })
  })
  app.get('/private', route('private'), (_req, res) => {
    count('private')
    res.set('Cache-Control', 'private, max-age=60').json({ version: state.version })
  })
  app.get('/no-store', route('no-store'), (_req, res) => {
    count('no-store')
    res.set('Cache-Control', 'no-store').json({ version: state.version })
  })
  app.get('/vary', route('vary'), (req, res) => {
    count('vary')
    res.vary('Accept-Language').json({ language: req.headers['accept-language'] ?? 'none', version: state.version })
  })
  app.get('/vary-star', route('vary-star'), (_req, res) => {
    count('vary-star')
    res.set('Vary', '*').json({ version: state.version })
  })
  app.get('/big', route('big'), (_req, res) => {
    count('big')
    res.type('text').send('b'.repeat(2048) + state.version)
  })
  app.get('/missing', route('missing'), (_req, res) => { count('missing'); res.status(404).json({ missing: true, version: state.version }) })
  app.get('/flaky', route('flaky'), (_req, res, next) => {
    count('flaky')
    if (!state.failing) { res.json({ ok: true, version: state.version }); return }
    if (state.failMode === 'throw') throw new Error('handler failed')
    if (state.failMode === 'next') { next(new Error('handler failed')); return }
    res.status(503).json({ ok: false })
  })
  app.get('/slow/:id', route('slow'), (req, res) => {
    count('slow')
    const version = state.version
    const hold = state.hold
    setTimeout(() => { void Promise.resolve(hold).then(() => res.json({ id: req.params.id, version })) }, state.slowMs)
  })
  app.get('/tagged/:id', route('tagged'), (req, res) => {
    count('tagged')
    res.json({ id: req.params.id, version: state.version })
  })
  app.get(/^\/any\/.*/, route('any'), (req, res) => { count('any'); res.json({ url: req.originalUrl, version: state.version }) })
  app.use(((error, _req, res, _next) => {
    res.status(500).json({ error: (error as Error).message })
  }) as ErrorRequestHandler)
  return { app, state, calls: (name) => state.calls.get(name) ?? 0 }
}
