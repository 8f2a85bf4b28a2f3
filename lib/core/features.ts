/**
 * The features of one kit: each one's narrow context, memory twin and resume hooks, created once.
 */
import type { MemoryOptions } from '../types.js'
import type { FeatureContext } from './context.js'
import { MemoryStore } from './memory.js'

export class Features {
  private readonly memories = new Map<string, MemoryStore>()
  private readonly contexts = new Map<string, FeatureContext>()
  private readonly inUse = new Set<string>()
  private readonly resumeHooks: (() => void)[] = []

  constructor(private readonly limits: Readonly<MemoryOptions>, private readonly evicted: (feature: string) => void = () => {}) {}

  /** The memory twin of one feature, bounded by the `memory` options. */
  memory(feature: string): MemoryStore {
    let store = this.memories.get(feature)
    if (!store) {
      store = new MemoryStore(this.limits, () => this.evicted(feature))
      this.memories.set(feature, store)
    }
    return store
  }

  context(feature: string, create: () => FeatureContext): FeatureContext {
    let context = this.contexts.get(feature)
    if (!context) {
      context = create()
      this.contexts.set(feature, context)
    }
    return context
  }

  /** Records that a feature is in use, for the `/health` summary. */
  register(name: string): void {
    this.inUse.add(name)
  }

  get names(): string[] {
    return [...this.inUse]
  }

  /** Each memory twin's size, for health and metrics. */
  sizes(): Record<string, { entries: number; bytes: number }> {
    const out: Record<string, { entries: number; bytes: number }> = {}
    for (const [feature, store] of this.memories) out[feature] = { entries: store.size, bytes: store.bytes }
    return out
  }

  onResume(hook: () => void): void {
    this.resumeHooks.push(hook)
  }

  /** The kit is back on Redis: every feature's hook, in the order they were added. */
  resumed(): void {
    for (const hook of this.resumeHooks) hook()
  }
}
