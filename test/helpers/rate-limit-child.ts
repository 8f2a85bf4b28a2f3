/**
 * A separate app process for the distributed rate-limit test and nothing else: one kit, one
 * limiter keyed by `x-client`. Prints a JSON line `{ "url": ..., "state": ... }` once it listens
 * and the kit's first connection attempt settled, then `{ "state": ... }` on every state change;
 * SIGTERM closes it.
 *
 * Env: RL_REDIS_URL (or RL_CLUSTER_NODES, `host:port,…` of a Redis Cluster), RL_LIMIT (default 50),
 * RL_WINDOW_MS (default 60000), RL_NAME (default 'shared'), RL_INSTANCES (default 1),
 * RL_COMMAND_TIMEOUT_MS (default: the kit's).
 */
import { createKit } from '../../lib/index.js'
import { listen, rateLimitedApp } from './rate-limit-app.js'

async function main(): Promise<void> {
  const clusterNodes = process.env.RL_CLUSTER_NODES
  const kit = createKit({
    env: clusterNodes === undefined ? {} : { REDIS_CLUSTER_NODES: clusterNodes },
    url: process.env.RL_REDIS_URL, logger: false, maxRetryDelayMs: 200,
    ...(process.env.RL_COMMAND_TIMEOUT_MS === undefined ? {} : { commandTimeoutMs: Number(process.env.RL_COMMAND_TIMEOUT_MS) }),
  })
  const { app } = rateLimitedApp(kit, {
    limit: Number(process.env.RL_LIMIT ?? 50),
    windowMs: Number(process.env.RL_WINDOW_MS ?? 60_000),
    name: process.env.RL_NAME ?? 'shared',
    instances: Number(process.env.RL_INSTANCES ?? 1),
  })
  const { server, url } = await listen(app)
  await kit.ready()
  process.stdout.write(`${JSON.stringify({ url, state: kit.state })}\n`)
  kit.on('stateChange', (state) => process.stdout.write(`${JSON.stringify({ state })}\n`))
  process.once('SIGTERM', () => {
    server.close()
    server.closeAllConnections()
    void kit.close().then(() => process.exit(0))
  })
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
