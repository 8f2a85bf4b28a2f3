import assert from 'node:assert/strict'
import { resolveConfig, redactUrl, redactText } from '../../lib/core/config.js'
import { KitError } from '../../lib/core/errors.js'

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KitError, 'a KitError')
    assert.equal(error.code, 'ERR_KIT_INVALID_OPTION')
    assert.match(error.message, pattern)
    return true
  })
}

describe('config', () => {
  it('defaults to redis://localhost:6379, db 0, enabled, 300 ms command timeout', () => {
    const config = resolveConfig({ env: {} })
    assert.equal(config.url?.hostname, 'localhost')
    assert.equal(config.url?.port, '6379')
    assert.equal(config.db, 0)
    assert.equal(config.enabled, true)
    assert.equal(config.tls, undefined, 'plain TCP')
    assert.equal(config.commandTimeoutMs, 300)
  })

  it('reads REDIS_URL, REDIS_PASSWORD, REDIS_DB and ENABLE_REDIS', () => {
    const config = resolveConfig({ env: { REDIS_URL: 'rediss://cache.example:6380', REDIS_PASSWORD: 'pw', REDIS_DB: '3', ENABLE_REDIS: 'No' } })
    assert.deepEqual(config.tls, {}, 'rediss:// turns TLS on')
    assert.equal(config.url?.port, '6380')
    assert.equal(config.password, 'pw')
    assert.equal(config.db, 3)
    assert.equal(config.enabled, false)
  })

  it('lets options override the environment', () => {
    const config = resolveConfig({ url: 'redis://127.0.0.1:7000/4', db: 1, enabled: true, env: { REDIS_URL: 'redis://other:1', REDIS_DB: '9', ENABLE_REDIS: 'false' } })
    assert.equal(config.url?.port, '7000')
    assert.equal(config.db, 1)
    assert.equal(config.enabled, true)
  })

  it('takes the database from the URL path when REDIS_DB is unset', () => {
    assert.equal(resolveConfig({ env: { REDIS_URL: 'redis://h:1/5' } }).db, 5)
  })

  for (const value of ['true', 'TRUE', '1', 'yes', 'Yes']) {
    it(`accepts ENABLE_REDIS=${value} as true`, () => assert.equal(resolveConfig({ env: { ENABLE_REDIS: value } }).enabled, true))
  }
  for (const value of ['false', 'FALSE', '0', 'no', 'NO']) {
    it(`accepts ENABLE_REDIS=${value} as false`, () => assert.equal(resolveConfig({ env: { ENABLE_REDIS: value } }).enabled, false))
  }

  it('rejects an unknown ENABLE_REDIS value, naming the variable and the fix', () => {
    rejects(() => resolveConfig({ env: { ENABLE_REDIS: 'maybe' } }), /ENABLE_REDIS is `maybe`.*true\/false, 1\/0 or yes\/no/)
  })

  it('rejects a non-numeric REDIS_DB', () => {
    rejects(() => resolveConfig({ env: { REDIS_DB: 'one' } }), /REDIS_DB is `one`.*whole number/)
    rejects(() => resolveConfig({ env: { REDIS_DB: '-1' } }), /REDIS_DB/)
  })

  it('rejects a malformed URL without echoing its password', () => {
    rejects(() => resolveConfig({ env: { REDIS_URL: 'not a url' } }), /REDIS_URL is not a valid URL/)
    rejects(() => resolveConfig({ url: 'http://localhost:6379' }), /`url` uses the scheme `http:`.*redis:\/\/ or rediss:\/\//)
    assert.throws(() => resolveConfig({ url: 'redis://:hunter2@bad host:6379' }), (error: Error) => !error.message.includes('hunter2'))
  })

  it('rejects negative or non-numeric timeouts', () => {
    rejects(() => resolveConfig({ commandTimeoutMs: -1 }), /`commandTimeoutMs` is `-1`/)
    // Node clamps timers above 2^31-1 ms to 1 ms: such a timeout would mean no wait at all.
    rejects(() => resolveConfig({ commandTimeoutMs: 1e12 }), /`commandTimeoutMs` is `1000000000000`\. Use a positive number of milliseconds up to 2147483647/)
    rejects(() => resolveConfig({ journal: { maxBytes: 0 } }), /`journal.maxBytes` is `0`/)
    rejects(() => resolveConfig({ connectTimeoutMs: Number.NaN }), /`connectTimeoutMs`/)
  })

  it('rejects unknown options with a suggestion', () => {
    rejects(() => resolveConfig({ keyprefix: 'x' } as never), /`keyprefix` is not an option.*Did you mean `keyPrefix`/)
    rejects(() => resolveConfig({ memory: { maxentries: 1 } } as never), /`memory.maxentries` is not an option. Did you mean `memory.maxEntries`/)
  })

  it('rejects a logger without the console methods', () => {
    rejects(() => resolveConfig({ logger: {} as never }), /`logger` has no info\(\) method/)
  })

  it('redacts passwords from URLs and from any text', () => {
    assert.equal(redactUrl('redis://user:s3cret@host:6379/0'), 'redis://user:***@host:6379/0')
    const config = resolveConfig({ url: 'redis://:s3cret@host:6379', env: {} })
    assert.equal(config.password, 's3cret')
    assert.ok(!config.server.includes('s3cret'))
    assert.equal(redactText('AUTH failed for s3cret at redis://:s3cret@host', config), 'AUTH failed for *** at redis://:***@host')
  })

  it('redacts a password given separately from the URL in the redacted URL', () => {
    const config = resolveConfig({ url: 'redis://host:6379', password: 'pw1', env: {} })
    assert.equal(config.server, 'redis://:***@host:6379')
  })
})
