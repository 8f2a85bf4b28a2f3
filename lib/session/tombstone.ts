/**
 * Tombstones: a destroyed session id is remembered (in Redis, next to the session's key, and in the
 * memory twin) for the session's lifetime, so a request still holding the session cannot save it
 * again after a logout (express-session saves a modified session when the response ends).
 *
 * The tombstone's key is the session's key plus `:destroyed`, in the session's hash slot: the
 * scripts that check or write both keys touch one slot, as a Redis Cluster requires. (Session ids
 * are base64url, so no session key looks like a tombstone; a custom `genid` must not put
 * `:destroyed` in its ids.)
 */
import calculateSlot from 'cluster-key-slot'
import { LuaScript } from '../core/lua.js'

const SUFFIX = ':destroyed'

/** Redis' hash tag of `key`: the text between the first `{` and the next `}`, when not empty. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{')
  if (open === -1) return undefined
  const close = key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : undefined
}

/** The tombstone key of a session key, in the same hash slot. */
export function tombstoneKey(sessionKey: string): string {
  // A hash tag in the session key (e.g. keyPrefix 'app{1}:') is kept by anything appended.
  if (hashTag(sessionKey) !== undefined) return sessionKey + SUFFIX
  // No braces (the usual case): the whole session key, as the tag, hashes as the key does.
  if (!sessionKey.includes('{') && !sessionKey.includes('}')) return `${sessionKey}${SUFFIX}{${sessionKey}}`
  // Braces that make no tag (an unclosed '{' in a prefix): a suffix found to land in the same slot.
  const slot = calculateSlot(sessionKey)
  for (let i = 0; ; i++) {
    const candidate = `${sessionKey}${SUFFIX}:${i.toString(36)}`
    if (calculateSlot(candidate) === slot) return candidate
  }
}

/** Whether a key found under the session prefix is a tombstone, not a session. */
export function isTombstone(key: string): boolean {
  for (let at = key.indexOf(SUFFIX); at !== -1; at = key.indexOf(SUFFIX, at + 1)) {
    if (tombstoneKey(key.slice(0, at)) === key) return true
  }
  return false
}

/** KEYS[1] session, KEYS[2] its tombstone; ARGV[1] text, ARGV[2] TTL in s: connect-redis' SET … EX, unless destroyed. */
export const SAVE = new LuaScript(`if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1`)

/**
 * KEYS[1] session, KEYS[2] its tombstone; ARGV[1] the tombstone's least lifetime in ms. Deletes the
 * session and keeps the tombstone as long as the session had left, at least ARGV[1].
 */
export const DESTROY = new LuaScript(`local keep = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left > keep then keep = left end
left = redis.call('PTTL', KEYS[2])
if left > keep then keep = left end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', keep)
return 1`)
