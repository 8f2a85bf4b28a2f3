/**
 * The example's queue dashboard in a real browser: Debian's chromium (installed by .ci/run)
 * driven by playwright-core logs in through the login form, lands on /admin/queues and sees the
 * `scan` queue and its jobs. The screenshot goes to a temporary file, or to
 * docs/queue-dashboard.png (the README's) with UPDATE_SCREENSHOTS=1.
 *
 * It skips, saying why, only when chromium cannot be launched on this machine — except with
 * REQUIRE_BROWSER=1 (set by .ci/run), where that fails the run.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { createApp } from '../../examples/server.js'
import { eventually } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const quiet = { info() {}, warn() {}, error() {} }

describe('example server: queue dashboard in a browser', () => {
  let redis: RedisServer | undefined
  let built: ReturnType<typeof createApp> | undefined
  let http: Server | undefined
  let browser: BrowserContext | undefined
  let profile: string | undefined

  before(async function () {
    this.timeout(60_000)
    profile = mkdtempSync(join(tmpdir(), 'erk-chromium-'))
    try {
      if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} does not exist (apt-get install chromium)`)
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 800 },
      })
    } catch (error) {
      const reason = `chromium cannot be launched here: ${(error as Error).message.split('\n')[0] ?? ''}`
      if (process.env.REQUIRE_BROWSER === '1') throw new Error(`${reason} (REQUIRE_BROWSER=1)`, { cause: error })
      console.log(`      skipped: ${reason}`)
      this.skip()
    }
  })

  after(async () => {
    await browser?.close()
    if (profile) rmSync(profile, { recursive: true, force: true })
  })

  afterEach(async () => {
    await new Promise<void>((resolve) => { if (http) http.close(() => resolve()); else resolve() })
    http?.closeAllConnections()
    await built?.kit.close()
    await redis?.stop()
  })

  it('logs in through the form, opens /admin/queues and sees the scan queue and its jobs', async function () {
    this.timeout(60_000)
    redis = await RedisServer.start()
    built = createApp({ kit: { url: redis.url, env: {}, logger: quiet }, scanJobMs: 40, rateLimit: 1_000_000 })
    await built.kit.ready()
    const scans = built.kit.queue('scan')
    for (const target of ['example.com', 'example.org', 'example.net']) await scans.add('scan', { target }, { jobId: target })
    await scans.add('scan', { target: 'later.example' }, { jobId: 'later.example', delay: 3_600_000 })
    await eventually(async () => (await scans.getJob('example.net'))?.state === 'completed', 10_000, 'scans completed')
    const { app } = built
    http = await new Promise<Server>((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`

    const page = await (browser as BrowserContext).newPage()
    const errors: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    await page.goto(`${base}/admin/queues`)
    assert.equal(new URL(page.url()).pathname, '/login', 'not logged in: sent to the login form')
    await page.fill('input[name=username]', 'ada')
    await Promise.all([page.waitForURL(`${base}/admin/queues`), page.click('button[type=submit]')])
    await page.getByText('scan', { exact: true }).first().waitFor({ timeout: 20_000 })

    await page.goto(`${base}/admin/queues/queue/scan?status=completed`)
    await page.getByText('example.net').first().waitFor({ timeout: 20_000 })
    assert.deepEqual(errors, [], 'no script errors in the page')
    const shot = process.env.UPDATE_SCREENSHOTS === '1'
      ? join(__dirname, '..', '..', 'docs', 'queue-dashboard.png')
      : join(profile as string, 'queue-dashboard.png')
    await page.screenshot({ path: shot })
    assert.ok(statSync(shot).size > 10_000, 'a screenshot with something on it')
    await page.close()
  })
})
