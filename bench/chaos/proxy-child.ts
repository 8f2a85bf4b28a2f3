/**
 * Runs a LatencyProxy (test/helpers/latency-proxy.ts) in a process of its own for scenario C, so
 * the orchestrator's event loop (busy with autocannon) never delays a reply on its way to the
 * server under test. Prints `port <n>` once listening; IPC messages `{ latencyMs }` set the added
 * reply latency and are answered with `{ ok: true, latencyMs }` once it applies.
 *
 *   node --import tsx bench/chaos/proxy-child.ts <redis port>    (spawned by servers.ts with an IPC channel)
 */
import { LatencyProxy } from '../../test/helpers/latency-proxy.js'

async function main(): Promise<void> {
  const target = Number(process.argv[2])
  if (!Number.isInteger(target) || target <= 0) throw new Error(`usage: proxy-child.ts <redis port>, got ${String(process.argv[2])}`)
  const proxy = await LatencyProxy.start(target)
  process.on('message', (message: { latencyMs?: unknown }) => {
    const latencyMs = Number(message.latencyMs)
    proxy.setLatency(latencyMs)
    process.send?.({ ok: true, latencyMs })
  })
  // The orchestrator going away (IPC closed) ends the proxy too.
  process.on('disconnect', () => { void proxy.stop().finally(() => process.exit(0)) })
  process.once('SIGTERM', () => { void proxy.stop().finally(() => process.exit(0)) })
  process.stdout.write(`port ${proxy.port}\n`)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
