/**
 * The session store's counts: operations by the backend that answered them, and reads answered
 * from the near-cache during an outage. Each label set is bound once, so counting is one addition;
 * a message on the session diagnostics channel is built only while someone subscribes.
 */
import type { Backend } from '../types.js'
import type { FeatureContext } from '../core/context.js'
import { listening, publish, type LabeledCounter, type Series } from '../core/metrics.js'

export type SessionOperation = 'read' | 'write' | 'touch' | 'touch_skipped' | 'destroy'

export class SessionCounts {
  private readonly series = new Map<string, Series>()
  private readonly operations: LabeledCounter
  private readonly nearCache: Series

  constructor(private readonly ctx: FeatureContext) {
    this.operations = ctx.metrics.sessions
    this.nearCache = ctx.metrics.sessionNearCache.bind({})
  }

  add(operation: SessionOperation, backend: Backend): void {
    const key = backend === 'redis' ? operation : `${operation}:memory`
    let found = this.series.get(key)
    if (!found) {
      found = this.operations.bind({ operation, backend })
      this.series.set(key, found)
    }
    found.add()
    if (listening('session')) publish('session', () => ({ operation, backend }))
  }

  /** A read answered from memory: during an outage, with a session this instance kept, a near-cache hit. */
  readFromMemory(found: boolean): void {
    this.add('read', 'memory')
    if (found && this.ctx.outage) this.nearCache.add()
  }
}
