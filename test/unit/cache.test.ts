/** The cache's pure parts: options, keys, the entry format, HTTP rules, invalidation targets. */
import assert from 'node:assert/strict'
import { decode, encodeResponse, encodeVary, type StoredResponse } from '../../lib/cache/entry.js'
import { EntryCache } from '../../lib/cache/entry-cache.js'
import { forbidsSharedCache, headersToStore, ifNoneMatchMatches, isNotModified, lengthMismatch, lifetimesOf, notStoredReason, requestForbidsStore } from '../../lib/cache/http.js'
import { InvalidationLog, parseTarget } from '../../lib/cache/invalidate.js'
import { KeySpace, NO_SCOPE, parseVary, scopeOf, underPrefix, variantField } from '../../lib/cache/key.js'
import { decodeUnreserved, foldings, foldPath } from '../../lib/cache/normalize.js'
import { parseCacheOptions } from '../../lib/cache/options.js'
import { KitError } from '../../lib/core/errors.js'
import { createKit } from '../../lib/index.js'

function rejects(fn: () => unknown, pattern: RegExp, code = 'ERR_KIT_INVALID_OPTION'): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KitError, `a KitError, got ${String(error)}`)
    assert.equal(error.code, code)
    assert.match(error.message, pattern)
    return true
  })
}

function response(overrides: Partial<StoredResponse> = {}): StoredResponse {
  return {
    status: 200, headers: { 'content-type': 'application/json', etag: 'W/"1"' }, body: Buffer.from('{"a":1}'),
    storedAt: 1_700_000_000_000, ttlMs: 300_000, swrMs: 0, sieMs: 0, tags: [], ...overrides,
  }
}

describe('cache options', () => {
  it('defaults: 300 s, statuses [200], 1 MiB, no Authorization, headers on', () => {
    const config = parseCacheOptions(undefined)
    assert.equal(config.ttlMs, 300_000)
    assert.deepEqual([...config.statuses], [200])
    assert.equal(config.maxBodyBytes, 1024 * 1024)
    assert.equal(config.allowAuthorization, false)
    assert.equal(config.headers, true)
    assert.equal(config.name, 'express-redis-kit')
    assert.deepEqual([config.swrMs, config.sieMs, config.lockTtlMs, config.lockWaitMs], [0, 0, 10_000, 1000])
    assert.deepEqual([config.shareAcrossSessions, config.shareAcrossHosts, config.invalidateOnWrite, config.maxVariants, config.query, config.fromOrigin, config.named],
      [false, false, true, 1000, undefined, false, false])
    const origin = parseCacheOptions({ ttl: 'origin', query: ['page'], name: 'pages' })
    assert.deepEqual([origin.fromOrigin, [...origin.query ?? []], origin.named], [true, ['page'], true])
  })

  it('rejects wrong values at start-up with the option and the fix', () => {
    rejects(() => parseCacheOptions({ ttl: -1 }), /cache `ttl` is `-1`\. Use a positive number of seconds \(default 300\)/)
    rejects(() => parseCacheOptions({ ttl: 0 }), /`ttl`/)
    rejects(() => parseCacheOptions({ ttl: Number.NaN }), /`ttl`/)
    rejects(() => parseCacheOptions({ ttl: '60' as never }), /`ttl` is `"60"`/)
    rejects(() => parseCacheOptions({ staleWhileRevalidate: -5 }), /staleWhileRevalidate/)
    rejects(() => parseCacheOptions({ statuses: [] }), /statuses/)
    rejects(() => parseCacheOptions({ statuses: [200, 304] }), /contains `304`/)
    rejects(() => parseCacheOptions({ statuses: [206] }), /contains `206`/)
    rejects(() => parseCacheOptions({ maxBodyBytes: 1.5 }), /maxBodyBytes/)
    rejects(() => parseCacheOptions({ key: 'url' as never }), /`key` is `"url"`\. Use a function/)
    rejects(() => parseCacheOptions({ tags: ['ok', ''] }), /`tags`/)
    rejects(() => parseCacheOptions({ allowAuthorization: 'yes' as never }), /allowAuthorization/)
    rejects(() => parseCacheOptions({ lockWaitMs: -1 }), /lockWaitMs/)
    rejects(() => parseCacheOptions({ name: 'my cache' }), /`name`/)
    rejects(() => parseCacheOptions([] as never), /must be an object/)
    rejects(() => parseCacheOptions({ ttl: 'forever' as never }), /cache `ttl` is `"forever"`\. Use a positive number of seconds \(default 300\), or 'origin'/)
    rejects(() => parseCacheOptions({ maxVariants: 0 }), /cache `maxVariants` is `0`\. Use a whole number from 1/)
    rejects(() => parseCacheOptions({ query: 'page' as never }), /cache `query` is `"page"`\. Use a list of the query parameter names/)
    rejects(() => parseCacheOptions({ query: ['page'], key: (req) => req.path }), /cache `query` is set together with `key`/)
    rejects(() => parseCacheOptions({ shareAcrossSessions: 1 as never }), /shareAcrossSessions/)
    rejects(() => parseCacheOptions({ shareAcrossHosts: 'yes' as never }), /shareAcrossHosts/)
    rejects(() => parseCacheOptions({ invalidateOnWrite: null as never }), /invalidateOnWrite/)
  })

  it('names the option meant by a misspelling or another cache\'s name', () => {
    rejects(() => parseCacheOptions({ TTL: 5 } as never), /`TTL` is not an option\. Did you mean `ttl`\?/)
    rejects(() => parseCacheOptions({ duration: 5 } as never), /Did you mean `ttl`\?/)
    rejects(() => parseCacheOptions({ max_body_bytes: 5 } as never), /Did you mean `maxBodyBytes`\?/)
    rejects(() => parseCacheOptions({ nonsense: 1 } as never), /Known options: ttl, /)
    rejects(() => parseCacheOptions({ allowSessions: true } as never), /Did you mean `shareAcrossSessions`\?/)
    rejects(() => parseCacheOptions({ maxvariants: 5 } as never), /Did you mean `maxVariants`\?/)
  })

  it('is validated when kit.cache() is called, not per request', () => {
    const kit = createKit({ enabled: false, logger: false, env: {} })
    rejects(() => kit.cache({ ttl: -1 }), /`ttl`/)
    assert.equal(typeof kit.cache({ ttl: 1 }), 'function')
    void kit.close()
  })
})

describe('cache keys', () => {
  it('folds paths the way Express routes them: %XX of unreserved characters, case, one trailing slash', () => {
    assert.equal(decodeUnreserved('/%61pi/%7Eme/%2f%20'), '/api/~me/%2F%20')
    assert.equal(foldPath('/API/x/', { caseSensitive: false, strict: false }), '/api/x')
    assert.equal(foldPath('/API/x/', { caseSensitive: true, strict: false }), '/API/x')
    assert.equal(foldPath('/API/x/', { caseSensitive: false, strict: true }), '/api/x/')
    assert.equal(foldPath('/', { caseSensitive: false, strict: false }), '/')
    assert.deepEqual(foldings('/API/%65/').sort(), ['/API/e', '/API/e/', '/api/e', '/api/e/'])
  })

  it('hashes long ids but keeps a readable head, and escapes glob characters for SCAN', () => {
    const keys = new KeySpace('app:cache:')
    assert.deepEqual(keys.entry('/short'), { id: '/short', redisKey: 'app:cache:e:/short', hashed: false, scope: NO_SCOPE, base: '["b","","",""]' })
    const braced = keys.entry('/a{b}c')
    assert.equal(braced.hashed, true, 'no id brings its own Cluster hash tag')
    assert.ok(braced.redisKey.startsWith('app:cache:h:/a_b_c#'))
    assert.equal(keys.index('app:cache:e:/short'), 'app:cache:n:{app:cache:e:/short}')
    assert.equal(new KeySpace('{app}:cache:').index('{app}:cache:e:/x'), '{app}:cache:n:e:/x', 'a tagged prefix already keeps one slot')
    const long = keys.entry(`/${'x'.repeat(400)}`)
    assert.equal(long.hashed, true)
    assert.ok(long.redisKey.startsWith(`app:cache:h:/${'x'.repeat(127)}#`))
    assert.ok(long.redisKey.length < 200)
    assert.notEqual(keys.entry(`/${'x'.repeat(400)}a`).redisKey, long.redisKey)
    assert.equal(new KeySpace('a*b:cache:').scanPattern('/p?[1]'), 'a\\*b:cache:[eh]:/[pP]\\?\\[1\\]*')
    assert.equal(underPrefix('/API/x', '/api/'), true)
    assert.equal(underPrefix('/ap', '/api/'), false)
    assert.equal(keys.plainId('app:cache:e:/x'), '/x')
    assert.equal(keys.plainId(long.redisKey), undefined)
  })

  it('reads Vary names and builds one field per combination of request header values', () => {
    assert.deepEqual(parseVary('Accept-Language, accept-encoding,Accept-Language'), ['accept-encoding', 'accept-language'])
    assert.deepEqual(parseVary(['Origin', 'Accept']), ['accept', 'origin'])
    assert.equal(parseVary('Accept, *'), '*')
    assert.deepEqual(parseVary(undefined), [])
    const key = { scope: scopeOf('http://a', '', '') }
    assert.equal(variantField(['accept-language'], { 'accept-language': ' en ' }, key), '["v:accept-language=en","http://a","",""]')
    assert.notEqual(variantField(['accept-language'], { 'accept-language': 'en' }, key), variantField(['accept-language'], { 'accept-language': 'fr' }, key))
    assert.notEqual(variantField(['accept-language'], { 'accept-language': 'en' }, key), variantField(['accept-language'], { 'accept-language': 'en' }, { scope: scopeOf('http://b', '', '') }))
    assert.match(variantField(['user-agent'], { 'user-agent': 'x'.repeat(500) }, key), /^\["v#[\w-]{43}","http:\/\/a","",""]$/)
    assert.match(scopeOf('http://a', '', `{"q":"${'x'.repeat(600)}"}`), /^"#[\w-]{43}"]$/)
  })
})

describe('cache entries', () => {
  it('round-trips every byte value, non-ASCII headers and tags, from bytes and from the latin1 string', () => {
    const body = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256))
    const original = response({ body, headers: { 'content-type': 'image/png', 'x-note': 'ünï', link: ['<a>', '<b>'] }, tags: ['tag:ü', 'x'] })
    const bytes = encodeResponse(original)
    for (const raw of [bytes, bytes.toString('latin1')]) {
      const decoded = decode(raw)
      assert.equal(decoded?.kind, 'response')
      if (decoded?.kind !== 'response') return
      const back = decoded.response
      assert.deepEqual({ ...back, body: undefined }, { ...original, body: undefined })
      const backBody = typeof back.body === 'string' ? Buffer.from(back.body, 'latin1') : back.body
      assert.ok(backBody.equals(body))
    }
  })

  it('decodes Vary records and treats anything malformed as a miss', () => {
    assert.deepEqual(decode(encodeVary(['accept', 'origin'])), { kind: 'vary', names: ['accept', 'origin'] })
    assert.equal(decode(Buffer.from('garbage')), undefined)
    assert.equal(decode(Buffer.from([1, 0, 0, 0, 99, 123])), undefined)
    assert.equal(decode(Buffer.from([1, 0, 0, 0, 2, 123, 125])), undefined, 'meta without the fields')
    assert.equal(decode(Buffer.alloc(0)), undefined)
    assert.equal(decode(null), undefined)
  })

  it('reuses a decoded entry only for the same memory string or the same Redis meta bytes', () => {
    const cache = new EntryCache(10, 1_000_000)
    const bytes = encodeResponse(response())
    const text = bytes.toString('latin1')
    const first = cache.read('k', text)
    const second = cache.read('k', text)
    assert.ok(first?.kind === 'response' && second?.kind === 'response')
    assert.equal(second.response, first.response, 'same string: same entry object, nothing decoded again')
    const other = cache.read('k', Buffer.from(text, 'latin1').toString('latin1') + '')
    assert.ok(other?.kind === 'response')
    const fromRedis = cache.read('r', bytes)
    const again = cache.read('r', Buffer.from(bytes))
    assert.ok(fromRedis?.kind === 'response' && again?.kind === 'response')
    assert.ok(Buffer.isBuffer(again.response.body) && again.response.body.equals(Buffer.from('{"a":1}')))
    const refreshed = cache.read('r', encodeResponse(response({ storedAt: 1_700_000_000_001, body: Buffer.from('{"a":2}') })))
    assert.ok(refreshed?.kind === 'response' && refreshed.response.storedAt === 1_700_000_000_001)
    assert.equal(String(refreshed.response.body), '{"a":2}')
  })
})

describe('cache HTTP rules', () => {
  const rules = { statuses: new Set([200]), maxBodyBytes: 100, ttlMs: 300_000, fromOrigin: false, swrMs: 10_000, sieMs: 20_000 }
  const now = Date.parse('Wed, 01 Jan 2025 00:00:00 GMT')
  it('refuses to store cookies, private / no-store / no-cache, Vary: *, other statuses and oversize bodies', () => {
    assert.equal(notStoredReason(200, {}, rules, now), undefined)
    assert.equal(notStoredReason(404, {}, rules, now), 'status')
    assert.equal(notStoredReason(200, { 'set-cookie': ['a=1'] }, rules, now), 'set-cookie')
    assert.equal(notStoredReason(200, { 'cache-control': 'public, max-age=60, Private' }, rules, now), 'cache-control')
    assert.equal(notStoredReason(200, { vary: 'Accept, *' }, rules, now), 'vary')
    assert.equal(notStoredReason(200, { 'content-length': 101 }, rules, now), 'too-large')
    for (const cacheControl of ['max-age=0', 's-maxage=0', 'must-revalidate, max-age=0', 'max-age=junk']) {
      assert.equal(notStoredReason(200, { 'cache-control': cacheControl }, rules, now), 'expired', cacheControl)
    }
    assert.equal(notStoredReason(200, { expires: 'Tue, 31 Dec 2024 23:59:59 GMT' }, rules, now), 'expired')
    assert.equal(notStoredReason(200, { expires: '0' }, rules, now), 'expired', 'an invalid Expires is in the past')
    assert.equal(notStoredReason(200, { 'cache-control': 'max-age=5', expires: 'Tue, 31 Dec 2024 00:00:00 GMT' }, rules, now), undefined, 'max-age wins over Expires')
    assert.equal(forbidsSharedCache('no-cache="set-cookie"'), true)
    assert.equal(forbidsSharedCache(['public', 'max-age=5']), false)
    assert.equal(forbidsSharedCache('no-store'), true)
    assert.equal(requestForbidsStore('max-age=0, No-Store'), true)
    assert.equal(requestForbidsStore('no-store-ish'), false)
    assert.equal(lengthMismatch(200, { 'content-length': '10' }, Buffer.from('short')), true)
    assert.equal(lengthMismatch(200, { 'content-length': 5 }, Buffer.from('short')), false)
  })

  it('keeps a response no longer than its own s-maxage / max-age / Expires allow, or takes them alone with ttl: origin', () => {
    assert.deepEqual(lifetimesOf({}, rules, now), { ttlMs: 300_000, swrMs: 10_000, sieMs: 20_000 })
    assert.deepEqual(lifetimesOf({ 'cache-control': 'max-age=60' }, rules, now), { ttlMs: 60_000, swrMs: 10_000, sieMs: 20_000 })
    assert.equal(lifetimesOf({ 'cache-control': 's-maxage=30, max-age=600' }, rules, now)?.ttlMs, 30_000, 's-maxage first')
    assert.equal(lifetimesOf({ 'cache-control': 'max-age=600' }, rules, now)?.ttlMs, 300_000, 'never longer than the route ttl')
    assert.equal(lifetimesOf({ 'cache-control': 'max-age=60', age: '50' }, rules, now)?.ttlMs, 10_000, 'minus its Age')
    assert.equal(lifetimesOf({ expires: 'Wed, 01 Jan 2025 00:00:30 GMT' }, rules, now)?.ttlMs, 30_000)
    assert.deepEqual(lifetimesOf({ 'cache-control': 'max-age=60, must-revalidate' }, rules, now), { ttlMs: 60_000, swrMs: 0, sieMs: 0 })
    const origin = { ...rules, fromOrigin: true, ttlMs: 0 }
    assert.equal(lifetimesOf({}, origin, now), undefined, 'ttl: origin stores nothing that says nothing')
    assert.deepEqual(lifetimesOf({ 'cache-control': 'max-age=600, stale-while-revalidate=30, stale-if-error=90' }, origin, now), { ttlMs: 600_000, swrMs: 30_000, sieMs: 90_000 })
    assert.deepEqual(lifetimesOf({ 'cache-control': 'public, max-age="45"' }, origin, now), { ttlMs: 45_000, swrMs: 10_000, sieMs: 20_000 })
  })

  it('replays only what the handler set, never per-request or upstream headers', () => {
    const stored = headersToStore(
      { 'content-type': 'text/plain', 'x-request-id': 'req-1', 'x-powered-by': 'Express', 'set-cookie': ['a'], date: 'x', 'content-length': 5, 'x-cache': 'MISS', link: ['<a>', '<b>'], 'x-count': 3 },
      { 'x-request-id': 'req-1', 'x-powered-by': 'Express' })
    assert.deepEqual(stored, { 'content-type': 'text/plain', link: ['<a>', '<b>'], 'x-count': '3' })
  })

  it('compares ETags weakly for If-None-Match and honours If-Modified-Since', () => {
    assert.equal(ifNoneMatchMatches('"a", W/"b"', '"b"'), true)
    assert.equal(ifNoneMatchMatches('W/"b"', 'W/"b"'), true)
    assert.equal(ifNoneMatchMatches('"c"', '"b"'), false)
    assert.equal(ifNoneMatchMatches('*', undefined), true)
    const lastModified = 'Wed, 01 Jan 2025 00:00:00 GMT'
    assert.equal(isNotModified({ 'if-modified-since': lastModified }, { 'last-modified': lastModified }), true)
    assert.equal(isNotModified({ 'if-modified-since': 'Tue, 31 Dec 2024 00:00:00 GMT' }, { 'last-modified': lastModified }), false)
    assert.equal(isNotModified({ 'if-none-match': '"x"', 'if-modified-since': lastModified }, { etag: '"y"', 'last-modified': lastModified }), false, 'If-None-Match wins')
  })
})

describe('cache invalidation targets', () => {
  it('accepts exactly one non-empty key, prefix or tag; reads keys and prefixes like request URLs', () => {
    assert.deepEqual(parseTarget({ key: '/a?b=1&a=2' }), { kind: 'key', ids: ['/a?b=1&a=2', '/a'] })
    assert.deepEqual(parseTarget({ key: '/API/%78/' }), { kind: 'key', ids: ['/API/%78/', '/API/x/', '/API/x', '/api/x/', '/api/x'] })
    assert.deepEqual(parseTarget({ key: 'pages:7' }), { kind: 'key', ids: ['pages:7'] })
    assert.deepEqual(parseTarget({ prefix: '/api/' }), { kind: 'prefix', prefixes: ['/api/'] })
    assert.deepEqual(parseTarget({ prefix: '/%61pi/?x=1' }), { kind: 'prefix', prefixes: ['/%61pi/?x=1', '/api/'] })
    assert.deepEqual(parseTarget({ tag: 'user:1', key: undefined }), { kind: 'tag', tag: 'user:1' })
    for (const bad of [undefined, 'x', {}, { key: '' }, { key: 1 }, { key: '/a', prefix: '/' }, { path: '/a' }]) {
      rejects(() => parseTarget(bad), /invalidate/, 'ERR_KIT_INVALID_ARGUMENT')
    }
  })

  it('tells a fill whether an invalidation made since it started covers it', () => {
    const log = new InvalidationLog()
    const since = log.current
    assert.equal(log.coversSince(since, '/a', []), false)
    log.record({ kind: 'tag', tag: 't' })
    log.record({ kind: 'prefix', prefixes: ['/api/'] })
    assert.equal(log.coversSince(since, '/a', []), false)
    assert.equal(log.coversSince(since, '/a', ['t']), true)
    assert.equal(log.coversSince(since, '/api/x', []), true)
    assert.equal(log.coversSince(since, '/API/x', []), true, 'prefixes match in either case')
    assert.equal(log.coversSince(log.current, '/api/x', ['t']), false, 'older invalidations do not count')
    for (let i = 0; i < 1200; i++) log.record({ kind: 'key', ids: [`/k${i}`] })
    assert.equal(log.coversSince(since, '/unrelated', []), true, 'when the log forgot, assume covered')
  })
})
