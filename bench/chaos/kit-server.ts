/**
 * Runs `examples/server.ts` exactly as exported (createApp + its graceful shutdown), but bound
 * to 127.0.0.1: the example's own `app.listen(port)` binds every interface, and the benchmark
 * stays on loopback. Same env as the example: PORT, REDIS_URL, RATE_LIMIT.
 */
import { createApp, shutdownOnSignals } from '../../examples/server.js'

const { app, kit } = createApp()
const port = Number(process.env.PORT ?? 8000)
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`kit scan API on http://127.0.0.1:${port}`)
})
shutdownOnSignals(server, kit)
