/**
 * kit.cache() on a real redis-server: HTTP semantics, the safety rules, and byte-exact bodies.
 * Hits are told from misses by the handler-run counters of the test app, not only by X-Cache.
 */
import assert from 'node:assert/strict'
import { Agent } from 'node:http'
import type { Redis } from 'ioredis'
import express from 'express'
import request from 'supertest'
import { onHeaders } from '../helpers/cache-on-headers.js'
import { ALL_BYTES, createCacheApp, GZIPPED, PNG } from '../helpers/cache-app.js'
import { entryFields, isStored, storedBytes } from '../helpers/cache-keys.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { eventually, testKit, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import type { CacheOptions, Kit } from '../../lib/index.js'

describe('kit.cache() on Redis', function () {
  this.timeout(20_000)
  let server: RedisServer
  let raw: Redis
  let kits: Kit[] = []
  let listening: Listening[] = []

  before(async () => {
    server = await RedisServer.start()
    raw = testClient(server)
  })
  after(async () => {
    raw.disconnect()
    await server.stop()
  })
  afterEach(async () => {
    await Promise.all(listening.map((l) => l.close()))
    await Promise.all(kits.map((kit) => kit.close()))
    listening = []
    kits = []
    await raw.flushall()
  })

  async function readyKit(): Promise<Kit> {
    // Semantics, not timeouts: a generous command timeout keeps a loaded machine from
    // switching the kit to memory in the middle of a test.
    const kit = testKit({ url: server.url, commandTimeoutMs: 2000 })
    kits.push(kit)
    await waitForState(kit, 'ready')
    return kit
  }

  async function app(options: Partial<CacheOptions> = {}, extra: Parameters<typeof createCacheApp>[2] = {}) {
    const kit = await readyKit()
    const built = createCacheApp(kit, options, extra)
    const l = await listen(built.app)
    listening.push(l)
    return { ...built, kit, port: l.port, http: request(l.url) }
  }

  it('answers a miss from the handler, then hits from Redis with the same bytes', async () => {
    const { http, calls, port } = await app()
    const miss = await http.get('/json/1').expect(200)
    assert.equal(miss.headers['x-cache'], 'MISS')
    assert.equal(miss.headers['cache-status'], 'express-redis-kit; fwd=uri-miss')
    assert.equal(miss.headers.age, undefined)
    // The entry is written after the response went out; until then a request would be answered
    // from the fill in progress (`collapsed`), so wait for Redis to have it.
    await eventually(() => isStored(raw, '/json/1'), 5000, 'entry stored')
    const hit = await http.get('/json/1').expect(200)
    assert.equal(hit.headers['x-cache'], 'HIT')
    assert.match(hit.headers['cache-status'] as string, /^express-redis-kit; hit; ttl=(299|300)$/)
    assert.match(hit.headers.age as string, /^\d+$/)
    assert.equal(hit.text, miss.text)
    assert.equal(hit.headers['content-type'], miss.headers['content-type'])
    assert.equal(hit.headers.etag, miss.headers.etag)
    assert.equal(hit.headers['content-length'], String(Buffer.byteLength(miss.text)))
    assert.equal(calls('json'), 1)
    assert.deepEqual(await entryFields(raw, '/json/1'), [`["b","http://127.0.0.1:${port}","",""]`], 'stored under cache: in Redis, by origin')
    const ttl = await raw.pttl('cache:e:/json/1')
    assert.ok(ttl > 290_000 && ttl <= 300_000, `Redis TTL ${ttl} ms is the default 300 s`)
  })

  it('stores one Redis value per response, read with one HGET on a hit', async () => {
    const { http } = await app()
    await http.get('/json/one').expect(200)
    await eventually(() => isStored(raw, '/json/one'), 5000, 'entry stored')
    const fields = await entryFields(raw, '/json/one')
    assert.equal(fields.length, 1)
    const monitor = await raw.monitor()
    const commands: string[] = []
    monitor.on('monitor', (_time: string, args: string[]) => { if (!/^(monitor|ping)$/i.test(args[0] ?? '')) commands.push(args.join(' ')) })
    try {
      await http.get('/json/one').expect('x-cache', 'HIT')
    } finally {
      monitor.disconnect()
    }
    assert.deepEqual(commands, [`hget cache:e:/json/one ${fields[0] as string}`])
  })

  it('gives each of many concurrent hits on different keys its own entry (reads are pipelined)', async () => {
    const { port, calls } = await app()
    const ids = Array.from({ length: 25 }, (_, i) => `k${i}`)
    for (const id of ids) await rawRequest(port, `/json/${id}`)
    // Keep-alive connections, so several requests are parsed in one event-loop turn and their
    // reads share a pipeline (new connections per request arrive one turn each).
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    const replies = await Promise.all(Array.from({ length: 400 }, (_, i) => rawRequest(port, `/json/${ids[i % ids.length] as string}`, { agent })))
    agent.destroy()
    replies.forEach((reply, i) => {
      assert.equal(reply.headers['x-cache'], 'HIT')
      assert.equal(JSON.parse(reply.body.toString()).id, ids[i % ids.length])
    })
    assert.equal(calls('json'), ids.length)
  })

  it('serves HEAD from the GET entry, without a body', async () => {
    const { http, calls, port } = await app()
    const get = await http.get('/text').expect(200)
    const head = await rawRequest(port, '/text', { method: 'HEAD' })
    assert.equal(head.headers['x-cache'], 'HIT')
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.text)))
    assert.equal(head.body.length, 0)
    assert.equal(calls('text'), 1)
    // A HEAD miss is answered by the handler and stores nothing (it has no body to store).
    const headMiss = await rawRequest(port, '/json/head-only', { method: 'HEAD' })
    assert.equal(headMiss.headers['x-cache'], 'MISS')
    assert.equal(await raw.exists('cache:e:/json/head-only'), 0)
  })

  it('keys GET requests by path and the query as the app parses it', async () => {
    const { http, calls } = await app()
    await http.get('/json/q?b=2&a=1&a=0').expect('x-cache', 'MISS')
    await http.get('/json/q?a=1&a=0&b=2').expect('x-cache', 'HIT')
    await http.get('/json/q?a=1&%61=0&b=2').expect('x-cache', 'HIT') // parses the same
    await http.get('/json/q?a=0&a=1&b=2').expect('x-cache', 'MISS') // repeated names keep their order
    assert.equal(calls('json'), 2)
    await eventually(async () => (await entryFields(raw, '/json/q')).length === 2, 5000, 'both queries in the hash of /json/q')
    assert.ok((await entryFields(raw, '/json/q')).some((field) => field.endsWith(`"{\\"a\\":[\\"1\\",\\"0\\"],\\"b\\":\\"2\\"}"]`)))
  })

  it('answers If-None-Match and If-Modified-Since with 304 on a hit, and still stores a conditional miss', async () => {
    const { http, calls } = await app()
    const first = await http.get('/json/etag').set('If-None-Match', '"stale-tag"').expect(200)
    const etag = first.headers.etag as string
    assert.ok(etag)
    const notModified = await http.get('/json/etag').set('If-None-Match', etag).expect(304)
    assert.equal(notModified.text, '')
    assert.equal(notModified.headers.etag, etag)
    assert.equal(notModified.headers['x-cache'], 'HIT')
    await http.get('/json/etag').set('If-None-Match', `"other", ${etag.replace(/^W\//, '')}`).expect(304)
    await http.get('/json/etag').set('If-None-Match', '"other"').expect(200)
    assert.equal(calls('json'), 1)
  })

  it('generates a strong ETag when the handler sent none', async () => {
    const { http } = await app()
    const miss = await http.get('/bytes').buffer(true).expect(200)
    assert.equal(miss.headers.etag, undefined)
    const hit = await http.get('/bytes').buffer(true).expect('x-cache', 'HIT')
    assert.match(hit.headers.etag as string, /^"[0-9a-f]+-[\w-]{27}"$/)
    await http.get('/bytes').set('If-None-Match', hit.headers.etag as string).expect(304)
  })

  describe('safe by default', () => {
    it('never stores a response that sets a cookie, nor replays one', async () => {
      const { http, calls } = await app()
      const a = await http.get('/cookie').expect(200)
      const b = await http.get('/cookie').expect(200)
      assert.equal(a.headers['x-cache'], 'MISS')
      assert.equal(b.headers['x-cache'], 'MISS')
      assert.notEqual(a.headers['set-cookie']?.[0], b.headers['set-cookie']?.[0])
      assert.equal(calls('cookie'), 2)
      assert.equal(await raw.exists('cache:e:/cookie'), 0)
    })

    it('does not store when upstream middleware adds Set-Cookie as headers go out (sessions)', async () => {
      let n = 0
      const sessionLike = (_req: express.Request, res: express.Response, next: express.NextFunction): void => {
        onHeaders(res, () => { res.setHeader('Set-Cookie', `sid=${++n}; HttpOnly`) })
        next()
      }
      const { http, calls } = await app({}, { before: [sessionLike] })
      const first = await http.get('/json/session').expect(200)
      const second = await http.get('/json/session').expect(200)
      assert.equal(second.headers['x-cache'], 'MISS')
      assert.deepEqual([first.headers['set-cookie'], second.headers['set-cookie']], [['sid=1; HttpOnly'], ['sid=2; HttpOnly']])
      assert.equal(calls('json'), 2)
      assert.equal(await raw.exists('cache:e:/json/session'), 0)
    })

    it('never stores Cache-Control private, no-store or no-cache responses', async () => {
      const { http, calls } = await app()
      for (const path of ['/private', '/no-store']) {
        await http.get(path).expect('x-cache', 'MISS')
        await http.get(path).expect('x-cache', 'MISS')
      }
      assert.equal(calls('private'), 2)
      assert.equal(calls('no-store'), 2)
      assert.deepEqual(await raw.keys('cache:*'), [])
    })

    it('bypasses requests with Authorization unless the route opts in', async () => {
      const { http, calls } = await app({}, { routeOptions: { text: { allowAuthorization: true } } })
      await http.get('/json/auth').expect('x-cache', 'MISS')
      const bypassed = await http.get('/json/auth').set('Authorization', 'Bearer alice').expect(200)
      assert.equal(bypassed.headers['x-cache'], 'BYPASS')
      assert.equal(bypassed.headers['cache-status'], 'express-redis-kit; fwd=bypass; detail=authorization')
      assert.equal(calls('json'), 2, 'the cached entry is not handed to an authenticated request')
      await http.get('/text').set('Authorization', 'Bearer alice').expect('x-cache', 'MISS')
      await http.get('/text').set('Authorization', 'Bearer bob').expect('x-cache', 'HIT')
      assert.equal(calls('text'), 1)
    })

    it('marks other methods BYPASS and does not cache them', async () => {
      const { http } = await app()
      const kit = kits[0] as Kit
      const post = express()
      post.post('/thing', kit.cache(), (_req, res) => { res.json({ ok: true }) })
      const res = await request(post).post('/thing').expect(200)
      assert.equal(res.headers['x-cache'], 'BYPASS')
      assert.equal(res.headers['cache-status'], 'express-redis-kit; fwd=method')
      await http.get('/json/x').expect(200)
    })

    it('lets `skip` bypass, and hides X-Cache / Cache-Status with headers: false', async () => {
      const { http, calls } = await app({ skip: (req) => req.query.fresh === '1', headers: false })
      await http.get('/json/s').expect(200)
      const hit = await http.get('/json/s').expect(200)
      assert.equal(hit.headers['x-cache'], undefined)
      assert.equal(hit.headers['cache-status'], undefined)
      assert.ok(hit.headers.age !== undefined, 'Age is still sent')
      await http.get('/json/s?fresh=1').expect(200)
      assert.equal(calls('json'), 2)
    })
  })

  describe('Vary', () => {
    it('keeps one entry per Accept-Language', async () => {
      const { http, calls } = await app()
      const en = await http.get('/vary').set('Accept-Language', 'en').expect('x-cache', 'MISS')
      const fr = await http.get('/vary').set('Accept-Language', 'fr').expect('x-cache', 'MISS')
      const enHit = await http.get('/vary').set('Accept-Language', 'en').expect('x-cache', 'HIT')
      const frHit = await http.get('/vary').set('Accept-Language', 'fr').expect('x-cache', 'HIT')
      assert.equal(JSON.parse(enHit.text).language, 'en')
      assert.equal(JSON.parse(frHit.text).language, 'fr')
      assert.equal(enHit.text, en.text)
      assert.equal(frHit.text, fr.text)
      assert.equal(enHit.headers.vary, 'Accept-Language')
      assert.equal(calls('vary'), 2)
      await eventually(async () => (await entryFields(raw, '/vary')).length === 3, 5000, 'both variants stored')
      const fields = (await entryFields(raw, '/vary')).map((field) => JSON.parse(field)[0] as string)
      assert.deepEqual(fields, ['b', 'v:accept-language=en', 'v:accept-language=fr'])
      await http.get('/vary').expect('x-cache', 'MISS') // no Accept-Language: a third variant
      assert.equal(calls('vary'), 3)
    })

    it('never stores a Vary: * response', async () => {
      const { http, calls } = await app()
      await http.get('/vary-star').expect('x-cache', 'MISS')
      await http.get('/vary-star').expect('x-cache', 'MISS')
      assert.equal(calls('vary-star'), 2)
      assert.equal(await raw.exists('cache:e:/vary-star'), 0)
    })
  })

  describe('bodies', () => {
    it('round-trips a PNG, raw bytes and a gzip body byte for byte with their headers', async () => {
      const { port, calls } = await app()
      for (const [path, expected] of [['/png', PNG], ['/bytes', ALL_BYTES], ['/gzip', GZIPPED]] as const) {
        const miss = await rawRequest(port, path, { headers: { 'accept-encoding': 'gzip' } })
        const hit = await rawRequest(port, path, { headers: { 'accept-encoding': 'gzip' } })
        assert.equal(miss.headers['x-cache'], 'MISS', path)
        assert.equal(hit.headers['x-cache'], 'HIT', path)
        assert.ok(hit.body.equals(expected), `${path}: hit body is byte-identical`)
        assert.ok(miss.body.equals(expected), `${path}: miss body is byte-identical`)
        assert.equal(hit.headers['content-type'], miss.headers['content-type'])
        assert.equal(hit.headers['content-length'], String(expected.length))
      }
      const gzip = await rawRequest(port, '/gzip', { headers: { 'accept-encoding': 'gzip' } })
      assert.equal(gzip.headers['content-encoding'], 'gzip')
      assert.equal(gzip.headers.vary, 'Accept-Encoding')
      assert.deepEqual([calls('png'), calls('bytes'), calls('gzip')], [1, 1, 1])
      await eventually(() => isStored(raw, '/png'), 5000, 'png stored')
      const stored = await storedBytes(raw, '/png')
      assert.ok(stored && stored.subarray(stored.length - PNG.length).equals(PNG), 'one Redis value ending in the exact body')
    })

    it('copies piped streams and res.write chunks exactly', async () => {
      const { port, calls } = await app()
      for (const path of ['/stream', '/write']) {
        const miss = await rawRequest(port, path)
        const hit = await rawRequest(port, path)
        assert.equal(hit.headers['x-cache'], 'HIT', path)
        assert.ok(hit.body.equals(miss.body), `${path}: same bytes`)
      }
      const write = await rawRequest(port, '/write')
      assert.equal(write.body.toString(), 'part-1;part-2;part-3;v1')
      const stream = await rawRequest(port, '/stream')
      assert.ok(stream.body.toString('utf8').startsWith('v1:chunk-1,chunk-2,ünïcödé,'))
      assert.deepEqual([calls('stream'), calls('write')], [1, 1])
    })

    it('passes bodies over maxBodyBytes through, whole, without storing them', async () => {
      const { http, calls } = await app({ maxBodyBytes: 1024 })
      const a = await http.get('/big').expect(200)
      const b = await http.get('/big').expect(200)
      assert.equal(a.text.length, 2049)
      assert.equal(b.text, a.text)
      assert.equal(b.headers['x-cache'], 'MISS')
      assert.equal(calls('big'), 2)
      for (const path of ['/stream', '/write']) { await http.get(path); await http.get(path) }
      assert.deepEqual([calls('stream'), calls('write')], [1, 1], 'small bodies are still stored')
    })

    it('stores only the configured statuses', async () => {
      const first = await app()
      await first.http.get('/missing').expect(404).expect('x-cache', 'MISS')
      await first.http.get('/missing').expect(404).expect('x-cache', 'MISS')
      const second = await app({ statuses: [200, 404] })
      await second.http.get('/missing').expect(404).expect('x-cache', 'MISS')
      const hit = await second.http.get('/missing').expect(404).expect('x-cache', 'HIT')
      assert.deepEqual(JSON.parse(hit.text), { missing: true, version: 1 })
      assert.equal(first.calls('missing') + second.calls('missing'), 3)
    })
  })

  describe('keys', () => {
    it('uses a custom key function (method-independent) and sends its errors to next(err)', async () => {
      const { http, calls } = await app({ key: (req) => { if (req.query.boom) throw new Error('bad key'); return `user-${String(req.params.id ?? req.path.split('/')[2])}` } })
      await http.get('/json/7?x=1').expect('x-cache', 'MISS')
      await http.get('/json/7?x=2').expect('x-cache', 'HIT')
      assert.equal(calls('json'), 1)
      await eventually(async () => (await raw.exists('cache:e:user-7')) === 1, 5000, 'custom key in Redis')
      const failed = await http.get('/json/7?boom=1').expect(500)
      assert.deepEqual(failed.body, { error: 'bad key' })
    })

    it('hashes long keys and still invalidates them by a long prefix', async () => {
      const { http, calls, kit } = await app()
      const long = `/any/${'segment/'.repeat(120)}end`
      await http.get(long).expect('x-cache', 'MISS')
      await http.get(long).expect('x-cache', 'HIT')
      await eventually(async () => (await raw.keys('cache:[eh]:*')).length === 1, 5000, 'hashed key in Redis')
      const keys = await raw.keys('cache:[eh]:*')
      assert.equal(keys.length, 1)
      assert.ok((keys[0] as string).length < 200, `hashed key ${keys[0]}`)
      assert.equal(await raw.hget(keys[0] as string, 'k'), long)
      await kit.invalidate({ prefix: long.slice(0, 300) })
      await http.get(long).expect('x-cache', 'MISS')
      assert.equal(calls('any'), 2)
    })
  })

  it('works with Express 4 (send, json, streams, HEAD, Vary)', async () => {
     
    const express4 = require('express4') as () => express.Express
    const { port, calls } = await app({}, { expressModule: express4 })
    for (const path of ['/json/4', '/png', '/stream', '/write']) {
      const miss = await rawRequest(port, path)
      const hit = await rawRequest(port, path)
      assert.equal(hit.headers['x-cache'], 'HIT', path)
      assert.ok(hit.body.equals(miss.body), path)
    }
    const head = await rawRequest(port, '/json/4', { method: 'HEAD' })
    assert.equal(head.headers['x-cache'], 'HIT')
    const en = await rawRequest(port, '/vary', { headers: { 'accept-language': 'en' } })
    await rawRequest(port, '/vary', { headers: { 'accept-language': 'de' } })
    const enHit = await rawRequest(port, '/vary', { headers: { 'accept-language': 'en' } })
    assert.equal(enHit.headers['x-cache'], 'HIT')
    assert.ok(enHit.body.equals(en.body))
    await rawRequest(port, '/cookie')
    assert.equal((await rawRequest(port, '/cookie')).headers['x-cache'], 'MISS')
    assert.deepEqual([calls('json'), calls('png'), calls('stream'), calls('write'), calls('vary'), calls('cookie')], [1, 1, 1, 1, 2, 2])
  })
})
