import assert from 'node:assert/strict'
import { MemoryStore } from '../../lib/core/memory.js'
import { decodeValue, encodeValue } from '../../lib/core/codec.js'
import { compose, OutageJournal, type KeyEffect } from '../../lib/core/journal.js'
import { fakeClock } from '../helpers/clock.js'

describe('MemoryStore (the memory twin)', () => {
  it('expires entries after their TTL and keeps entries without one', () => {
    // The twin's TTLs run on performance.now() (lru-cache): a fake one jumps to the expiry.
    const clock = fakeClock(['performance'], { advance: false })
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 10_000 })
    store.set('short', 'a', 30)
    store.set('forever', 'b')
    assert.equal(store.get('short'), 'a')
    clock.tick(29)
    assert.equal(store.get('short'), 'a', 'not before its TTL')
    clock.tick(2)
    assert.equal(store.get('short'), undefined)
    assert.equal(store.has('short'), false)
    assert.equal(store.get('forever'), 'b')
    assert.equal(store.remainingTtl('forever'), Infinity)
    assert.equal(store.remainingTtl('missing'), undefined)
  })

  it('keeps the remaining TTL when a value is replaced like INCR does', () => {
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 10_000 })
    store.set('n', '1', 10_000)
    store.replaceKeepTtl('n', '2')
    const ttl = store.remainingTtl('n') ?? 0
    assert.ok(ttl > 9_000 && ttl <= 10_000, `ttl ${ttl}`)
  })

  it('cannot grow past its entry limit under a flood of distinct keys', () => {
    const store = new MemoryStore({ maxEntries: 1000, maxBytes: 10_000_000 })
    for (let i = 0; i < 50_000; i++) store.set(`flood:${i}`, 'x')
    assert.equal(store.size, 1000)
    assert.equal(store.get('flood:49999'), 'x', 'the newest survive')
    assert.equal(store.get('flood:0'), undefined, 'the oldest are evicted')
  })

  it('cannot grow past its byte limit', () => {
    const store = new MemoryStore({ maxEntries: 1_000_000, maxBytes: 100_000 })
    const value = 'v'.repeat(1000)
    for (let i = 0; i < 5000; i++) store.set(`big:${i}`, value)
    assert.ok(store.bytes <= 100_000, `bytes ${store.bytes}`)
    assert.ok(store.size < 60)
  })

  it('keys() is a snapshot: reading every key while walking them ends', () => {
    const store = new MemoryStore({ maxEntries: 100, maxBytes: 100_000 })
    for (let i = 0; i < 10; i++) store.set(`k${i}`, String(i))
    store.set('gone', 'x', 1)
    const seen: string[] = []
    for (const key of store.keys()) { store.get(key); seen.push(key) }
    assert.equal(seen.length, 11)
  })

  it('expire() on a missing key reports false, like Redis', () => {
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 10_000 })
    assert.equal(store.expire('nope', 1000), false)
  })
})

describe('value codec', () => {
  const cases: unknown[] = ['hello', '', '42', 'true', '{"a":1}', '"quoted"', ' 7', 42, -3.5, 0, true, false, null,
    { a: 1, b: [1, 'x'] }, [1, 2, 3], 'ünïcødé ✓']
  for (const value of cases) {
    it(`round-trips ${JSON.stringify(value)} with its type`, () => {
      assert.deepEqual(decodeValue(encodeValue(value as never, 'set')), value)
    })
  }

  it('stores numbers as plain decimal text so INCRBY works on them', () => {
    assert.equal(encodeValue(41, 'set'), '41')
  })

  it('stores ordinary strings as themselves (readable by other programs)', () => {
    assert.equal(encodeValue('my_value', 'set'), 'my_value')
  })

  it('rejects values it cannot round-trip', () => {
    assert.throws(() => encodeValue(undefined as never, 'set'), /ERR_KIT_INVALID_ARGUMENT|cannot store/)
    assert.throws(() => encodeValue(Number.NaN, 'set'), /finite/)
  })
})

describe('outage journal', () => {
  const limits = { maxEntries: 10, maxBytes: 1_000_000 }

  it('composes a key\'s writes into their net effect', () => {
    const set: KeyEffect = { kind: 'key', key: 'k', base: { op: 'set', value: '1', expiresAt: 5 }, delta: 0 }
    const incr: KeyEffect = { kind: 'key', key: 'k', delta: 2 }
    const del: KeyEffect = { kind: 'key', key: 'k', base: { op: 'del' }, delta: 0 }
    assert.deepEqual(compose(compose(set, incr), incr), { kind: 'key', key: 'k', base: set.base, delta: 4 })
    assert.deepEqual(compose(compose(set, incr), del), del)
    assert.deepEqual(compose(del, incr), { kind: 'key', key: 'k', base: { op: 'del' }, delta: 2 })
  })

  it('adds rate-limit hits within a window and drops them when a new window starts', () => {
    const journal = new OutageJournal(limits, () => {})
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: true, endsAt: 100 })
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: false, endsAt: 100 })
    journal.record('rl', { op: 'hits', key: 'r', delta: -1, newWindow: false, endsAt: 100 })
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: false, endsAt: 100 })
    assert.deepEqual(journal.take(10, 1e9)?.effects, [{ kind: 'key', key: 'r', delta: 0, window: { hits: 2, endsAt: 100 } }])
    journal.record('rl', { op: 'del', key: 'r' }) // resetKey during the outage
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: true, endsAt: 200 })
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: false, endsAt: 200 })
    assert.deepEqual(journal.take(10, 1e9)?.effects, [{ kind: 'key', key: 'r', base: { op: 'del' }, delta: 0, window: { hits: 2, endsAt: 200 } }])
    journal.record('rl', { op: 'hits', key: 'r', delta: 5, newWindow: true, endsAt: 100 })
    journal.record('rl', { op: 'hits', key: 'r', delta: 1, newWindow: true, endsAt: 300 })
    assert.deepEqual(journal.take(10, 1e9)?.effects, [{ kind: 'key', key: 'r', delta: 0, window: { hits: 1, endsAt: 300 } }],
      'hits of an ended window are not added to the next one')
  })

  it('gives every feature its own quota of entries and bytes, and reports each overflow', () => {
    const full: string[] = []
    const journal = new OutageJournal({ maxEntries: 2, maxBytes: 400 }, (feature, key) => full.push(`${feature}:${key}`))
    assert.equal(journal.record('client', { op: 'incrby', key: 'a', delta: 1 }), true)
    assert.equal(journal.record('client', { op: 'incrby', key: 'b', delta: 1 }), true)
    assert.equal(journal.record('client', { op: 'incrby', key: 'a', delta: 1 }), true, 'an existing key still merges')
    assert.equal(journal.record('client', { op: 'incrby', key: 'c', delta: 1 }), false)
    assert.equal(journal.record('session', { op: 'set', key: 's', value: 'x', expiresAt: undefined }), true, 'a client flood leaves sessions their room')
    assert.equal(journal.record('session', { op: 'set', key: 't', value: 'y'.repeat(200), expiresAt: undefined }), false, 'over the byte quota')
    assert.deepEqual(full, ['client:c', 'session:t'])
    assert.deepEqual(journal.usage(), { client: { entries: 2, bytes: 2 * (2 * 1 + 64) }, session: { entries: 1, bytes: 2 * 2 + 64 } })
  })

  it('puts a write whose outcome turned out unknown underneath newer writes, and drops it under a newer clear', () => {
    const journal = new OutageJournal(limits, () => {})
    const issued = journal.seq
    journal.record('session', { op: 'set', key: 'session:a', value: 'newer', expiresAt: undefined })
    journal.recordEarlier('session', { op: 'set', key: 'session:a', value: 'older', expiresAt: undefined }, issued)
    journal.recordEarlier('session', { op: 'set', key: 'session:b', value: 'older', expiresAt: undefined }, issued)
    assert.deepEqual(journal.take(10, 1e9)?.effects.map((e) => e.kind === 'key' && e.base?.op === 'set' ? `${e.key}=${e.base.value}` : '?'),
      ['session:a=newer', 'session:b=older'])
    const before = journal.seq
    journal.record('session', { op: 'unlink-matching', pattern: 'session:*', covers: 'session:' })
    journal.recordEarlier('session', { op: 'set', key: 'session:c', value: 'x', expiresAt: undefined }, before)
    assert.equal(journal.size, 1, 'the clear made after it was sent supersedes it')
  })

  it('replays a clear after what was recorded before it and before what came after', () => {
    const journal = new OutageJournal(limits, () => {})
    journal.record('session', { op: 'set', key: 'other:x', value: '1', expiresAt: undefined })
    journal.record('session', { op: 'set', key: 'session:old', value: '1', expiresAt: undefined })
    journal.record('session', { op: 'unlink-matching', pattern: 'session:*', covers: 'session:' })
    journal.record('session', { op: 'set', key: 'session:new', value: '1', expiresAt: undefined })
    const steps: string[] = []
    for (let taken = journal.take(10, 1e9); taken; taken = journal.take(10, 1e9)) {
      steps.push(taken.effects.map((e) => e.kind === 'key' ? e.key : `clear ${e.target}`).join(','))
    }
    assert.deepEqual(steps, ['other:x', 'clear session:*', 'session:new'], 'session:old was superseded by the clear')
  })
})
