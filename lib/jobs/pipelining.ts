/**
 * BullMQ's Lua scripts leave the kit's shared client one by one, not auto-pipelined.
 *
 * The kit's client auto-pipelines (redis-client.ts): commands made in one event-loop turn go out
 * in one write, which pays for cache and session calls. BullMQ's scripts are different: each is
 * a large EVALSHA that Redis takes far longer to run than ioredis takes to write, and through an
 * auto-pipeline each also costs a Pipeline of its own (allocation, a promise, a deferred flush).
 * Measured with bench/jobs.ts (add + process): auto-pipelined, the kit's producer spent about
 * 15 µs more CPU per job than BullMQ on a plain client, the largest part of the gap to raw BullMQ.
 *
 * BullMQ registers its scripts on the client it is given (ioredis `defineCommand`, one command per
 * script, the first time a queue connects). The kit itself never defines commands (core/lua.ts
 * sends its Lua with EVALSHA), so the commands that appear on the client while a queue connects
 * are BullMQ's; ioredis' `autoPipeliningIgnoredCommands` then sends them straight away. Every
 * other command on the client is pipelined as before.
 */
import type { RedisClient } from '../core/redis-types.js'

interface ScriptedClient {
  /** ioredis: the commands made with `defineCommand`, by name. */
  scriptsSet?: Record<string, unknown>
  options: { autoPipeliningIgnoredCommands?: string[] }
}

/** The commands defined on `client` so far (to tell BullMQ's from any the app defined itself). */
export function definedCommands(client: RedisClient): Set<string> {
  return new Set(Object.keys((client as unknown as ScriptedClient).scriptsSet ?? {}))
}

/** Sends the commands defined since `before` without auto-pipelining them. */
export function sendNewScriptsDirectly(client: RedisClient, before: ReadonlySet<string>): void {
  const scripted = client as unknown as ScriptedClient
  const ignored = scripted.options.autoPipeliningIgnoredCommands ?? []
  const added = Object.keys(scripted.scriptsSet ?? {}).filter((name) => !before.has(name) && !ignored.includes(name))
  if (added.length > 0) scripted.options.autoPipeliningIgnoredCommands = [...ignored, ...added]
}
