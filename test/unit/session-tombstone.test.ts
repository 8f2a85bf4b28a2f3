/**
 * Tombstone keys (issue 13, item 11): on a Redis Cluster a script may only touch keys of one hash
 * slot, so a session's tombstone must share its slot, whatever braces the key prefix or a custom
 * genid put in the session key; and the listing must tell tombstones from sessions.
 */
import assert from 'node:assert/strict'
import calculateSlot from 'cluster-key-slot'
import { isTombstone, tombstoneKey } from '../../lib/session/tombstone.js'

const SIDS = ['Xq3v-9_kZ0aB7cD1eF2gH3iJ4kL5mN6o', 'a', 'user:destroyed', 'with}brace', 'with{brace', '{tag}rest', '{}x']
const PREFIXES = ['session:', 'app:session:', 'app{1}:session:', 'app{:session:', 'app{}:session:', 'app}:session:', '{x']

describe('session tombstone keys', () => {
  it('share the session key\'s hash slot, for every prefix and session id', () => {
    for (const prefix of PREFIXES) {
      for (const sid of SIDS) {
        const key = prefix + sid
        const tombstone = tombstoneKey(key)
        assert.notEqual(tombstone, key)
        assert.ok(tombstone.startsWith(prefix), `${tombstone} stays under the session prefix (and so the ACL key pattern)`)
        assert.equal(calculateSlot(tombstone), calculateSlot(key), `${key} -> ${tombstone}`)
        assert.equal(tombstoneKey(key), tombstone, 'the same key every time, on every instance')
      }
    }
  })

  it('are told apart from sessions when the prefix is listed', () => {
    for (const prefix of PREFIXES) {
      // A custom genid must not put `:destroyed` in its ids (the default ids are base64url).
      for (const sid of SIDS.filter((id) => !id.includes(':destroyed'))) {
        assert.equal(isTombstone(tombstoneKey(prefix + sid)), true, prefix + sid)
        assert.equal(isTombstone(prefix + sid), false, prefix + sid)
      }
    }
  })
})
