/**
 * Runs `examples/server.ts` exactly as exported (createApp + its graceful shutdown), but bound
 * to 127.0.0.1: the example's own `app.listen(port)` binds every interface, and the benchmark
 * stays on loopback. Same env as the example: PORT, REDIS_URL, RATE_LIMIT; plus SCAN_JOB_MS, the
 * example's own `scanJobMs` option (how long a background scan job takes), which the peer reads too.
 *
 * One observer is added, which changes no behaviour: every `inDoubt` event (an increment that was
 * on the wire when a connection died, so Redis may or may not have applied it) is printed as
 * `[chaos-indoubt] <feature> <op> <key> <amount>`, so the report can account for it when it
 * compares `visitor_count` in Redis with the acknowledged visits.
 */
import { createApp, shutdownOnSignals } from '../../examples/server.js'

const { app, kit } = createApp(process.env.SCAN_JOB_MS ? { scanJobMs: Number(process.env.SCAN_JOB_MS) } : {})
kit.on('inDoubt', (write) => {
  console.log(`[chaos-indoubt] ${write.feature} ${write.op} ${write.key} ${write.amount}`)
})
const port = Number(process.env.PORT ?? 8000)
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`kit scan API on http://127.0.0.1:${port}`)
})
shutdownOnSignals(server, kit)
