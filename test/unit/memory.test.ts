import assert from 'node:assert/strict'
import { MemoryStore } from '../../lib/memory.js'
import { decodeValue, encodeValue } from '../../lib/codec.js'
import { compose, OutageJournal, queueReplay, type KeyEffect } from '../../lib/journal.js'

describe('MemoryStore (the memory twin)', () => {
  it('expires entries after their TTL and keeps entries without one', async () => {
    const store = new MemoryStore({ maxEntries: 10, maxBytes: 10_000 })
    store.set('short', 'a', 30)
    store.set('forever', 'b')
    assert.equal(store.get('short'), 'a')
    await new Promise((r) => setTimeout(r, 60))
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
  it('composes a key\'s writes into their net effect', () => {
    const set: KeyEffect = { kind: 'key', key: 'k', base: { op: 'set', value: '1', expiresAt: 5 }, delta: 0 }
    const incr: KeyEffect = { kind: 'key', key: 'k', delta: 2 }
    const del: KeyEffect = { kind: 'key', key: 'k', base: { op: 'del' }, delta: 0 }
    assert.deepEqual(compose(compose(set, incr), incr), { kind: 'key', key: 'k', base: set.base, delta: 4 })
    assert.deepEqual(compose(compose(set, incr), del), del)
    assert.deepEqual(compose(del, incr), { kind: 'key', key: 'k', base: { op: 'del' }, delta: 2 })
  })

  it('is bounded by distinct keys and reports the overflow', () => {
    const dropped: string[] = []
    const journal = new OutageJournal(2, (key) => dropped.push(key))
    journal.record({ op: 'incrby', key: 'a', delta: 1 })
    journal.record({ op: 'incrby', key: 'b', delta: 1 })
    journal.record({ op: 'incrby', key: 'a', delta: 1 })
    journal.record({ op: 'incrby', key: 'c', delta: 1 })
    assert.equal(journal.size, 2)
    assert.deepEqual(dropped, ['c'])
  })

  it('puts failed entries back underneath newer writes', () => {
    const journal = new OutageJournal(10, () => {})
    journal.record({ op: 'set', key: 'k', value: 'old', expiresAt: undefined })
    const taken = journal.take()
    journal.record({ op: 'incrby', key: 'k', delta: 3 })
    journal.restore(taken)
    const [entry] = journal.take()
    assert.deepEqual(entry, { kind: 'key', key: 'k', base: { op: 'set', value: 'old', expiresAt: undefined }, delta: 3 })
  })

  it('replays a set with its remaining TTL, and an expired set as a delete', () => {
    const calls: string[] = []
    const batch = {
      set: (k: string, v: string, ttl: number | undefined) => { calls.push(`set ${k} ${v} ${ttl}`) },
      del: (k: string) => { calls.push(`del ${k}`) },
      incrby: (k: string, d: number) => { calls.push(`incrby ${k} ${d}`) },
      pexpireat: (k: string, at: number) => { calls.push(`pexpireat ${k} ${at}`) },
    }
    queueReplay({ kind: 'key', key: 'a', base: { op: 'set', value: 'v', expiresAt: 11_000 }, delta: 2 }, batch, 1000)
    queueReplay({ kind: 'key', key: 'b', base: { op: 'set', value: 'v', expiresAt: 500 }, delta: 0 }, batch, 1000)
    assert.deepEqual(calls, ['set a v 10000', 'incrby a 2', 'del b'])
  })
})
