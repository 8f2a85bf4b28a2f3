/**
 * kit.cache() with Redis disabled: the same behaviour served from the memory twin (no Redis
 * process needed), plus the response shapes that are hardest to capture in the background.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import express from 'express'
import request from 'supertest'
import { ALL_BYTES, createCacheApp, PNG } from '../helpers/cache-app.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { fakeClock } from '../helpers/clock.js'
import { internals, eventually, testKit } from '../helpers/kit.js'
import type { CacheOptions, Kit } from '../../lib/index.js'

/**
 * Freshness windows are the kit's own: entries are judged by Date.now() and kept by the memory
 * twin on performance.now(). No Redis here, so both can be faked and the tests jump ahead.
 */
const memoryClock = () => fakeClock(['Date', 'performance'])

describe('kit.cache() in memory mode (enabled: false)', function () {
  this.timeout(20_000)
  let kits: Kit[] = []
  let listening: Listening[] = []
  let dir = ''

  before(() => { dir = mkdtempSync(join(tmpdir(), 'erk-cache-')) })
  after(() => rmSync(dir, { recursive: true, force: true }))
  afterEach(async () => {
    await Promise.all(listening.map((l) => l.close()))
    await Promise.all(kits.map((kit) => kit.close()))
    listening = []
    kits = []
  })

  async function app(options: Partial<CacheOptions> = {}, extra: Parameters<typeof createCacheApp>[2] = {}) {
    const kit = testKit({ enabled: false })
    kits.push(kit)
    const built = createCacheApp(kit, options, extra)
    const l = await listen(built.app)
    listening.push(l)
    return { ...built, kit, port: l.port, http: request(l.url) }
  }

  it('misses, then hits from memory, byte for byte, with HEAD from the GET entry', async () => {
    const { port, calls, kit } = await app()
    for (const [path, bytes] of [['/png', PNG], ['/bytes', ALL_BYTES]] as const) {
      const miss = await rawRequest(port, path)
      const hit = await rawRequest(port, path)
      assert.deepEqual([miss.headers['x-cache'], hit.headers['x-cache']], ['MISS', 'HIT'])
      assert.ok(hit.body.equals(bytes) && miss.body.equals(bytes), path)
      assert.equal(hit.headers['content-length'], String(bytes.length))
    }
    const head = await rawRequest(port, '/png', { method: 'HEAD' })
    assert.deepEqual([head.headers['x-cache'], head.body.length, head.headers['content-length']], ['HIT', 0, String(PNG.length)])
    assert.deepEqual([calls('png'), calls('bytes')], [1, 1])
    const memory = internals(kit).memory('cache')
    assert.ok(memory.bytes > PNG.length + ALL_BYTES.length, `memory twin accounts for the bodies (${memory.bytes} bytes)`)
  })

  it('runs the handler once for 100 concurrent misses', async () => {
    const { port, calls, state } = await app()
    state.slowMs = 100
    const replies = await Promise.all(Array.from({ length: 100 }, () => rawRequest(port, '/slow/m')))
    assert.equal(calls('slow'), 1)
    assert.ok(replies.every((r) => r.status === 200 && r.body.equals((replies[0] as typeof r).body)))
  })

  it('keeps Vary variants apart and invalidates by key, prefix and tag', async () => {
    const { http, calls, kit } = await app({}, { routeOptions: { tagged: { tags: (req) => [`item:${String(req.params.id)}`] } } })
    await http.get('/vary').set('Accept-Language', 'en')
    await http.get('/vary').set('Accept-Language', 'de')
    const de = await http.get('/vary').set('Accept-Language', 'de').expect('x-cache', 'HIT')
    assert.equal(JSON.parse(de.text).language, 'de')
    assert.equal(calls('vary'), 2)
    await kit.invalidate({ key: '/vary' })
    await http.get('/vary').set('Accept-Language', 'de').expect('x-cache', 'MISS')

    await http.get('/tagged/1')
    await http.get('/tagged/2')
    await kit.invalidate({ tag: 'item:2' })
    await http.get('/tagged/1').expect('x-cache', 'HIT')
    await http.get('/tagged/2').expect('x-cache', 'MISS')

    await http.get('/json/a')
    await kit.invalidate({ prefix: '/json' })
    await http.get('/json/a').expect('x-cache', 'MISS')
    await http.get('/tagged/1').expect('x-cache', 'HIT')
  })

  it('sends errors of the key and skip functions to next(err), and logs a failing tags function once', async () => {
    const { http, calls, kit } = await app({}, {
      routeOptions: {
        json: { skip: (req) => { if (req.params.id === 'boom') throw new Error('skip failed'); return false } },
        tagged: { tags: () => { throw new Error('tags failed') } },
      },
    })
    assert.deepEqual((await http.get('/json/boom').expect(500)).body, { error: 'skip failed' })
    await http.get('/tagged/1').expect(200)
    await http.get('/tagged/1').expect(200).expect('x-cache', 'MISS')
    assert.equal(calls('tagged'), 2)
    const warnings = kit.logger.lines.filter((line) => line.includes('ERR_KIT_CACHE_TAGS'))
    assert.equal(warnings.length, 1)
    assert.match(warnings[0] as string, /tags failed/)
  })

  it('refreshes a res.sendFile response in the background (stale-while-revalidate)', async () => {
    const file = join(dir, 'report.bin')
    writeFileSync(file, Buffer.concat([Buffer.from('v1'), ALL_BYTES]))
    let sends = 0
    const clock = memoryClock()
    const kit = testKit({ enabled: false })
    kits.push(kit)
    const server = express()
    // sendFile's default `Cache-Control: public, max-age=0` says "stale at once": the cache honours it.
    server.get('/file', kit.cache({ ttl: 1, staleWhileRevalidate: 60 }), (_req, res) => { sends++; res.sendFile(file, { maxAge: '1h' }) })
    const l = await listen(server)
    listening.push(l)
    const first = await rawRequest(l.port, '/file')
    assert.ok(first.body.equals(Buffer.concat([Buffer.from('v1'), ALL_BYTES])))
    await clock.tickAsync(1050)
    writeFileSync(file, Buffer.concat([Buffer.from('v2'), ALL_BYTES]))
    const stale = await rawRequest(l.port, '/file')
    assert.equal(stale.headers['x-cache'], 'STALE')
    assert.ok(stale.body.equals(first.body))
    await eventually(async () => (await rawRequest(l.port, '/file')).headers['x-cache'] === 'HIT', 5000, 'refreshed file')
    const fresh = await rawRequest(l.port, '/file')
    assert.ok(fresh.body.equals(Buffer.concat([Buffer.from('v2'), ALL_BYTES])))
    assert.equal(fresh.headers['content-type'], first.headers['content-type'])
    assert.equal(sends, 2)
  })

  it('never refreshes an entry from a HEAD request (its body would be empty)', async () => {
    const clock = memoryClock()
    const { port, calls } = await app({ ttl: 1, staleWhileRevalidate: 60 })
    const full = await rawRequest(port, '/text')
    await clock.tickAsync(1050)
    const head = await rawRequest(port, '/text', { method: 'HEAD' })
    assert.deepEqual([head.headers['x-cache'], head.body.length], ['STALE', 0])
    // A refresh starts when the server finishes the response, before this client has read all
    // of it (same process, no Redis call in between): it would have run the handler by now.
    assert.equal(calls('text'), 1, 'HEAD did not run the handler in the background')
    const get = await rawRequest(port, '/text')
    assert.equal(get.headers['x-cache'], 'STALE')
    assert.ok(get.body.equals(full.body))
    await eventually(async () => (await rawRequest(port, '/text')).headers['x-cache'] === 'HIT', 5000, 'refreshed by the GET')
    assert.ok((await rawRequest(port, '/text')).body.length > 0)
  })

  it('answers stale on a 5xx within staleIfError, keeping upstream headers and dropping the failure\'s', async () => {
    const upstream = (_req: express.Request, res: express.Response, next: express.NextFunction): void => { res.setHeader('x-upstream', 'yes'); next() }
    const clock = memoryClock()
    const { http, state } = await app({ ttl: 0.2, staleIfError: 60 }, { before: [upstream] })
    const good = await http.get('/flaky').expect(200)
    await clock.tickAsync(250)
    state.failing = true
    state.failMode = 'throw'
    const stale = await http.get('/flaky').expect(200)
    assert.equal(stale.text, good.text)
    assert.equal(stale.headers['x-upstream'], 'yes')
    assert.equal(stale.headers['content-security-policy'], undefined, 'the error page\'s headers are gone')
    assert.equal(stale.headers['x-cache'], 'STALE')
  })

  it('captures raw writeHead (object and flat-array headers) and passes oversize streams through whole', async () => {
    const kit = testKit({ enabled: false })
    kits.push(kit)
    let runs = 0
    const server = express()
    server.get('/object', kit.cache(), (_req, res) => { runs++; res.writeHead(200, { 'Content-Type': 'text/csv', 'X-Rows': '2' }); res.end('a,b\n1,2\n') })
    server.get('/array', kit.cache(), (_req, res) => { runs++; res.writeHead(200, ['Content-Type', 'text/plain', 'Link', '<a>', 'Link', '<b>']); res.end('flat') })
    server.get('/huge', kit.cache({ maxBodyBytes: 1000 }), (_req, res) => {
      runs++
      res.setHeader('content-type', 'application/octet-stream')
      Readable.from(Array.from({ length: 20 }, () => ALL_BYTES)).pipe(res)
    })
    const l = await listen(server)
    listening.push(l)
    for (const path of ['/object', '/array']) {
      const miss = await rawRequest(l.port, path)
      const hit = await rawRequest(l.port, path)
      assert.equal(hit.headers['x-cache'], 'HIT', path)
      assert.ok(hit.body.equals(miss.body))
      assert.equal(hit.headers['content-type'], miss.headers['content-type'])
    }
    assert.equal((await rawRequest(l.port, '/object')).headers['x-rows'], '2')
    assert.equal((await rawRequest(l.port, '/array')).headers.link, '<a>, <b>')
    const huge = await rawRequest(l.port, '/huge')
    assert.ok(huge.body.equals(Buffer.concat(Array.from({ length: 20 }, () => ALL_BYTES))))
    assert.equal((await rawRequest(l.port, '/huge')).headers['x-cache'], 'MISS')
    assert.equal(runs, 4)
  })

  it('lets waiting requests run the handler themselves when the leading client hangs up', async () => {
    const { port, calls, state } = await app()
    state.slowMs = 300
    const leader = request(`http://127.0.0.1:${port}`).get('/slow/abort').timeout(50).then(() => 'answered', () => 'aborted')
    await eventually(() => calls('slow') === 1, 5000, 'leader running')
    const follower = rawRequest(port, '/slow/abort')
    assert.equal(await leader, 'aborted')
    const reply = await follower
    assert.equal(reply.status, 200)
    assert.equal(JSON.parse(reply.body.toString()).id, 'abort')
    assert.equal(calls('slow'), 2, 'the waiting request ran the handler itself')
  })

  it('bounds the stored body and passes larger ones through', async () => {
    const { http, calls } = await app({ maxBodyBytes: 2000 })
    const a = await http.get('/big').expect(200)
    await http.get('/big').expect(200).expect('x-cache', 'MISS')
    assert.equal(a.text.length, 2049)
    assert.equal(calls('big'), 2)
  })
})
