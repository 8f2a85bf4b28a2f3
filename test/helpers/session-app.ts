/** A small login app over `kit.session()`, for the session tests (Express 5 by default, or Express 4). */
import { createHmac } from 'node:crypto'
import express from 'express'
import type { NextFunction, Request, Response } from 'express'
import request from 'supertest'
import type { Kit, SessionMiddleware, SessionOptions } from '../../lib/index.js'

declare module 'express-session' {
  interface SessionData {
    user?: string
    visits?: number
  }
}

export const TEST_SECRET = 'a-test-secret-that-is-long-enough-0123456789'

export interface SessionApp {
  app: express.Express
  kit: Kit
  middleware: SessionMiddleware
  /** Every error that reached Express's error handler (each became a 500). */
  errors: unknown[]
  /** How many times the store emitted 'disconnect' (express-session then stops handling sessions). */
  disconnects: number
}

/**
 * POST /login?user=x[&regenerate=1] stores the user, GET /me answers 200 { user } or 401, POST /visit counts,
 * POST /logout destroys the session.
 */
export function sessionApp(kit: Kit, options: Partial<SessionOptions> = {}, flavour: 'express5' | 'express4' = 'express5'): SessionApp {
  // express4 (an alias of express@4) ships no types; its app has the same surface used here.
  const app = flavour === 'express4' ? (require('express4') as () => express.Express)() : express()
  const middleware = kit.session({ secret: TEST_SECRET, ...options })
  const state: SessionApp = { app, kit, middleware, errors: [], disconnects: 0 }
  middleware.store.on('disconnect', () => { state.disconnects++ })
  app.set('trust proxy', 1)
  app.use(middleware)
  app.post('/login', (req: Request, res: Response, next: NextFunction) => {
    const signIn = (): void => {
      req.session.user = String(typeof req.query.user === 'string' ? req.query.user : 'alice')
      res.json({ user: req.session.user, sid: req.sessionID })
    }
    // ?regenerate=1: a new session id at login, the usual defence against session fixation.
    if (req.query.regenerate === undefined) signIn()
    else req.session.regenerate((error) => { if (error) next(error); else signIn() })
  })
  app.get('/me', (req: Request, res: Response) => {
    if (req.session.user === undefined) res.status(401).json({ user: null })
    else res.json({ user: req.session.user, sid: req.sessionID })
  })
  app.post('/visit', (req: Request, res: Response) => {
    req.session.visits = (req.session.visits ?? 0) + 1
    res.json({ visits: req.session.visits })
  })
  app.post('/logout', (req: Request, res: Response, next: NextFunction) => {
    req.session.destroy((error) => {
      if (error) { next(error); return }
      res.json({ ok: true })
    })
  })
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    state.errors.push(error)
    res.status(500).json({ error: String(error) })
  })
  return state
}

/** The `name=value` part of the session cookie set by a response. */
export function sessionCookie(setCookie: string | string[] | undefined, name = 'sid'): string {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []
  const found = list.find((c) => c.startsWith(`${name}=`))
  if (!found) throw new Error(`no ${name} cookie in ${JSON.stringify(list)}`)
  return found.split(';')[0] as string
}

/** A session cookie for `sid`, signed the way express-session signs it (cookie-signature, HMAC-SHA256). */
export function signedCookie(sid: string, secret = TEST_SECRET, name = 'sid'): string {
  const signature = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '')
  return `${name}=${encodeURIComponent(`s:${sid}.${signature}`)}`
}

/**
 * Resolves once every command the app's kit sent so far has run on Redis: one connection runs
 * commands in order, so a later command on it is a barrier.
 */
export async function redisSettled(target: SessionApp): Promise<void> {
  await target.kit.client.exists('session-test-barrier')
}

/** Logs `user` in on the app; resolves the session cookie and its id. */
export async function login(target: SessionApp, user: string): Promise<{ cookie: string; sid: string }> {
  const res = await request(target.app).post(`/login?user=${user}`).expect(200)
  return { cookie: sessionCookie(res.headers['set-cookie']), sid: res.body.sid as string }
}
