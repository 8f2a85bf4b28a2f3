/**
 * How rate-limit-redis' commands reach Redis. One server: each command as it is. A Cluster: each
 * command routed by its key (ioredis reads it from EVALSHA, DECR or DEL), its scripts loaded on
 * every master — a master knows only the scripts loaded on it, and a replica promoted by a failover
 * knows none — and an EVALSHA answered NOSCRIPT (a failover, SCRIPT FLUSH, a master added) sent
 * again as EVAL of the same script on the same key. NOSCRIPT means the script did not run, so the
 * EVAL cannot count a hit twice, and it caches the script on that master for the next EVALSHA.
 */
import type { RedisReply, SendCommandClusterDetails } from 'rate-limit-redis'
import { NotSentError } from '../core/outage.js'
import { isCluster, type RedisClient } from '../core/redis-types.js'

export type RateLimitCommands =
  | { sendCommand: (...args: string[]) => Promise<RedisReply> }
  | { sendCommandCluster: (details: SendCommandClusterDetails) => Promise<RedisReply> }

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}

/** The `sendCommand` or `sendCommandCluster` option of rate-limit-redis for `client`. */
export function rateLimitCommands(client: RedisClient): RateLimitCommands {
  if (!isCluster(client)) return { sendCommand: (command, ...args) => client.call(command, ...args) as Promise<RedisReply> }
  /** The source of each script loaded, by SHA-1, for the EVAL that answers a NOSCRIPT. */
  const sources = new Map<string, string>()
  const send = (name: string, args: readonly string[]): Promise<RedisReply> => client.call(name, ...args) as Promise<RedisReply>
  return {
    async sendCommandCluster({ command }) {
      const [name = '', ...args] = command
      const upper = name.toUpperCase()
      if (upper === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD' && args[1] !== undefined) {
        const source = args[1]
        const masters = client.nodes('master')
        if (masters.length === 0) throw new NotSentError('no Cluster master is known yet to load the rate-limit script on')
        const [sha] = await Promise.all(masters.map((node) => node.call('SCRIPT', 'LOAD', source)))
        sources.set(String(sha), source)
        return String(sha)
      }
      if (upper !== 'EVALSHA') return send(name, args)
      try {
        return await send(name, args)
      } catch (error) {
        const [sha = '', ...rest] = args
        const source = sources.get(sha)
        if (!isNoScript(error) || source === undefined) throw error
        return send('EVAL', [source, ...rest])
      }
    },
  }
}
