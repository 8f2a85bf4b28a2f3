/**
 * The one way the kit runs Lua: a script is declared once (source and SHA-1) and sent with
 * EVALSHA, falling back to EVAL when the server's script cache does not know it (after a restart,
 * a failover or `SCRIPT FLUSH`). NOSCRIPT means the script did not run, so the fallback can never
 * apply it twice.
 */
import { createHash } from 'node:crypto'
import type { RedisClient } from './redis-types.js'

export type LuaArg = string | number | Buffer

export class LuaScript {
  readonly sha: string

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  /** EVALSHA, then EVAL on NOSCRIPT. */
  run(client: RedisClient, keys: readonly string[], args: readonly LuaArg[]): Promise<unknown> {
    return client.evalsha(this.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return client.eval(this.source, keys.length, ...keys, ...args)
    })
  }

  /**
   * EVAL with the full source, written to the socket before this returns: for a send whose
   * position among other commands matters (a NOSCRIPT retry would be sent later, out of order).
   */
  runInOrder(client: RedisClient, keys: readonly string[], args: readonly LuaArg[]): Promise<unknown> {
    return client.eval(this.source, keys.length, ...keys, ...args)
  }
}
