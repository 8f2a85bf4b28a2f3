/**
 * What one feature tells another about a request, without either importing the other's insides.
 *
 * kit.session() marks a request whose session holds data (a logged-in user, a cart …) once
 * express-session has loaded it; kit.cache() neither serves nor stores a shared entry for such a
 * request unless the route opts in, so one user's page never reaches another (issue 13, item 2).
 */

const SESSION_IN_USE = Symbol.for('express-redis-kit.sessionInUse')

type Marked = { [SESSION_IN_USE]?: true }

/** Called by kit.session() once the request's session is loaded and holds data. */
export function markSessionInUse(req: object): void {
  (req as Marked)[SESSION_IN_USE] = true
}

/**
 * True when kit.session() marked the request, or when its session (whoever loaded it) now holds
 * anything besides the cookie: a handler that wrote to it is personal too.
 */
export function sessionInUse(req: object): boolean {
  if ((req as Marked)[SESSION_IN_USE] === true) return true
  const session = (req as { session?: unknown }).session
  if (session === null || typeof session !== 'object') return false
  for (const name of Object.keys(session)) if (name !== 'cookie') return true
  return false
}
