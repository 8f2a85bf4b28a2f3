/** SCAN over a key pattern, for features that must list their keys without KEYS. */
import type { Step } from './calls.js'
import { isCluster, type RedisClient } from './redis-types.js'

/** Escapes SCAN/KEYS glob characters, so a prefix like `app[1]:` matches only itself. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Yields the keys matching `pattern` one SCAN batch at a time (a key may appear in two batches).
 * On a Cluster every master is scanned in turn: SCAN only sees the keys of the node it runs on.
 */
export async function* scanBatches(client: RedisClient, pattern: string, count: number, step: Step): AsyncGenerator<string[]> {
  const nodes: RedisClient[] = isCluster(client) ? client.nodes('master') : [client]
  for (const node of nodes) {
    let cursor = '0'
    do {
      const reply = await step(node.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)) as Promise<[string | Buffer, (string | Buffer)[]]>)
      cursor = String(reply[0])
      yield reply[1].map(String)
    } while (cursor !== '0')
  }
}
