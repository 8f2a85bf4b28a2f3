/**
 * Property: for ANY sequence of kit.client operations interleaved with faults (Redis killed and
 * restarted, hung, its connection killed, writes paused, slowed), every call answers, reads agree
 * with a plain model of the acknowledged writes, and once the kit is back Redis holds exactly that
 * model — increments the kit reported as in doubt excepted, by their amount. fast-check generates
 * the sequences and shrinks any failure to a minimal one.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { Redis } from 'ioredis'
import type { InDoubtWrite, Kit, KitValue } from '../../lib/index.js'
import { testKit, waitForReplay, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

type Op =
  | { op: 'set'; key: string; value: KitValue }
  | { op: 'delete'; key: string }
  | { op: 'increment'; key: string; by: number }
  | { op: 'get'; key: string }

type FaultKind = 'kill' | 'hang' | 'client-kill' | 'pause-writes' | 'slow'
interface Fault { fault: FaultKind; during: Op[] }

const KEYS = ['a', 'b', 'c', 'n1', 'n2']
const key = fc.constantFrom(...KEYS)
const value: fc.Arbitrary<KitValue> = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.string({ maxLength: 6 }), fc.constant(null), fc.record({ x: fc.nat(9) }))
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key, value }),
  fc.record({ op: fc.constant('delete' as const), key }),
  fc.record({ op: fc.constant('increment' as const), key: fc.constantFrom('n1', 'n2'), by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ op: fc.constant('get' as const), key }),
)
const fault: fc.Arbitrary<Fault> = fc.record({
  fault: fc.constantFrom<FaultKind>('kill', 'hang', 'client-kill', 'pause-writes', 'slow'),
  during: fc.array(op, { maxLength: 4 }),
})
const steps = fc.array(fc.oneof({ weight: 3, arbitrary: op }, { weight: 1, arbitrary: fault }), { minLength: 1, maxLength: 10 })
  .filter((list) => list.filter((step) => 'fault' in step).length <= 3)

/** What the acknowledged writes add up to: the stored text of each key, or undefined. */
class Model {
  readonly values = new Map<string, KitValue>()

  /** INCRBY works on a missing key or an integer stored as a number. */
  isInteger(name: string): boolean {
    const current = this.values.get(name)
    return current === undefined || (typeof current === 'number' && Number.isInteger(current))
  }

  apply(step: Op, answer: unknown): void {
    switch (step.op) {
      case 'set': this.values.set(step.key, JSON.parse(JSON.stringify(step.value)) as KitValue); break
      case 'delete': assert.equal(answer, this.values.has(step.key), `delete(${step.key}) says whether it existed`); this.values.delete(step.key); break
      case 'increment': {
        const next = Number(this.values.get(step.key) ?? 0) + step.by
        assert.equal(answer, next, `increment(${step.key}, ${step.by})`)
        this.values.set(step.key, next)
        break
      }
      case 'get': assert.deepEqual(answer, this.values.get(step.key) ?? null, `get(${step.key})`); break
    }
  }
}

describe('property: any sequence of operations and faults ends with Redis equal to the acknowledged writes', function () {
  this.timeout(240_000)
  let server: RedisServer
  let admin: Redis

  before(async () => {
    server = await RedisServer.start({ persist: true, debug: true })
    admin = testClient(server, { maxRetriesPerRequest: 1 })
  })

  after(async () => {
    admin.disconnect()
    server.resume()
    await server.stop()
  })

  async function run(kit: Kit, model: Model, step: Op): Promise<void> {
    if (step.op === 'increment' && !model.isInteger(step.key)) {
      await assert.rejects(kit.client.increment(step.key, step.by), { code: 'ERR_KIT_NOT_INTEGER' })
      return
    }
    const answer = await (step.op === 'set' ? kit.client.set(step.key, step.value)
      : step.op === 'delete' ? kit.client.delete(step.key)
        : step.op === 'increment' ? kit.client.increment(step.key, step.by)
          : kit.client.get(step.key))
    model.apply(step, answer)
  }

  async function inject(kit: Kit, model: Model, { fault, during }: Fault): Promise<void> {
    let end: () => Promise<void> = async () => {}
    if (fault === 'kill') {
      await server.kill()
      await waitForState(kit, 'degraded')
      end = () => server.start()
    } else if (fault === 'hang') {
      server.pause()
      end = async () => { server.resume() }
    } else if (fault === 'client-kill') {
      const list = await admin.client('LIST') as string
      const id = list.split('\n').find((line) => line.includes('name=express-redis-kit '))?.match(/^id=(\d+)/)?.[1]
      if (id) await admin.call('CLIENT', 'KILL', 'ID', id)
    } else if (fault === 'pause-writes') {
      await admin.call('CLIENT', 'PAUSE', '400', 'WRITE')
      // The fault ends when Redis takes writes again: a write of our own waits for exactly that.
      end = async () => { await admin.del('property:pause-over') }
    } else {
      const sleeper = admin.call('DEBUG', 'SLEEP', '0.4')
      end = async () => { await sleeper }
    }
    for (const step of during) await run(kit, model, step)
    await end()
  }

  it('holds for generated sequences (fast-check)', async () => {
    await fc.assert(fc.asyncProperty(steps, async (sequence) => {
      if (server.pid === undefined) await server.start()
      server.resume()
      await admin.flushall()
      const kit = testKit({ url: server.url })
      const doubt: InDoubtWrite[] = []
      kit.on('inDoubt', (write) => { doubt.push(write) })
      try {
        await kit.ready()
        const model = new Model()
        for (const step of sequence) {
          if ('fault' in step) await inject(kit, model, step)
          else await run(kit, model, step)
        }
        await waitForReplay(kit, 20_000)
        for (const name of KEYS) {
          const expected = model.values.get(name)
          const stored = await admin.get(name)
          if (typeof expected === 'number' && name.startsWith('n')) {
            const slack = doubt.filter((write) => write.key === name).reduce((sum, write) => sum + Math.abs(write.amount), 0)
            assert.ok(Math.abs(Number(stored ?? 0) - expected) <= slack, `${name}: Redis ${stored}, model ${expected}, in doubt ${slack}`)
          } else {
            const decoded = stored === null ? undefined : (() => { try { return JSON.parse(stored) as KitValue } catch { return stored } })()
            assert.deepEqual(decoded, expected, `${name}: Redis ${stored}`)
          }
        }
      } finally {
        await kit.close()
      }
    }), { numRuns: Number(process.env.FC_RUNS ?? 15), endOnFailure: true })
  })
})
