/**
 * A loopback TCP proxy in front of a redis-server that can slow it down ("Redis at a steady 200 ms
 * latency"), hang it without closing sockets, or cut every connection, with no root, tc or iptables.
 */
import { createServer, Socket, type Server } from 'node:net'

/**
 * One direction of one connection: chunks leave in arrival order, each no earlier than its due
 * time. Times come from performance.now(), which is monotonic, so a delay is never cut short.
 */
class Lane {
  private readonly queue: Array<{ chunk: Buffer; due: number }> = []
  private timer: NodeJS.Timeout | undefined
  private ending = false

  constructor(private readonly to: Socket, private readonly isPaused: () => boolean) {}

  push(chunk: Buffer, delayMs: number): void {
    this.queue.push({ chunk, due: performance.now() + delayMs })
    this.flush()
  }

  /** The other side closed: end ours once what is queued has been delivered. */
  end(): void {
    this.ending = true
    this.flush()
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    if (this.isPaused() || this.to.destroyed) return
    for (;;) {
      const head = this.queue[0]
      if (!head) break
      const wait = head.due - performance.now()
      if (wait > 0) {
        // Rounded up: setTimeout counts whole milliseconds.
        this.timer = setTimeout(() => this.flush(), Math.ceil(wait))
        return
      }
      this.queue.shift()
      this.to.write(head.chunk)
    }
    if (this.ending) this.to.end()
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

interface Connection {
  client: Socket
  upstream: Socket
  toClient: Lane
  toServer: Lane
}

export class LatencyProxy {
  readonly targetPort: number
  private readonly server: Server
  private readonly connectionSet = new Set<Connection>()
  private latencyMs = 0
  private paused = false

  private constructor(targetPort: number) {
    this.targetPort = targetPort
    this.server = createServer((client) => this.accept(client))
  }

  /** Listens on a free loopback port (from the kernel) and forwards to 127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<LatencyProxy> {
    const proxy = new LatencyProxy(targetPort)
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject)
      proxy.server.listen(0, '127.0.0.1', () => resolve())
    })
    return proxy
  }

  get port(): number {
    const address = this.server.address()
    return typeof address === 'object' && address ? address.port : 0
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Open client connections. */
  get connections(): number {
    return this.connectionSet.size
  }

  get latency(): number {
    return this.latencyMs
  }

  /**
   * Delays every chunk from the server to the client by `ms` (0: pass-through). Requests go
   * through at once, so a request/reply round trip takes at least `ms` longer. Chunks already
   * queued keep their due time and order.
   */
  setLatency(ms: number): void {
    if (!(ms >= 0)) throw new Error(`latency must be >= 0, got ${ms}`)
    this.latencyMs = ms
  }

  /** Stops forwarding in both directions but keeps every socket open: to the client, a hang. */
  pause(): void {
    this.paused = true
  }

  /** Delivers what was held back (in order) and forwards again. */
  resume(): void {
    this.paused = false
    for (const connection of this.connectionSet) {
      connection.toServer.flush()
      connection.toClient.flush()
    }
  }

  /** Destroys every connection (both ends), like a network drop; the proxy keeps accepting. */
  cutAll(): void {
    for (const connection of [...this.connectionSet]) this.close(connection)
  }

  /** Cuts every connection and stops listening. */
  async stop(): Promise<void> {
    this.cutAll()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private accept(client: Socket): void {
    const upstream = new Socket()
    const isPaused = () => this.paused
    const connection: Connection = { client, upstream, toClient: new Lane(client, isPaused), toServer: new Lane(upstream, isPaused) }
    this.connectionSet.add(connection)
    // Nagle would add its own delay on top of the one under test.
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.on('data', (chunk: Buffer) => connection.toServer.push(chunk, 0))
    upstream.on('data', (chunk: Buffer) => connection.toClient.push(chunk, this.latencyMs))
    // A side that ends cleanly (QUIT, server shut down) ends the other once queued data is through.
    client.on('end', () => connection.toServer.end())
    upstream.on('end', () => connection.toClient.end())
    // Errors (reset, refused) drop both sides: the client sees the connection close, as with a real drop.
    client.on('error', () => this.close(connection))
    upstream.on('error', () => this.close(connection))
    client.on('close', () => this.close(connection))
    upstream.on('close', () => {
      // A clean end is finished by the lane; anything else (refused, reset) drops the client too.
      if (!upstream.readableEnded) this.close(connection)
    })
    upstream.connect(this.targetPort, '127.0.0.1')
  }

  private close(connection: Connection): void {
    if (!this.connectionSet.delete(connection)) return
    connection.toClient.clear()
    connection.toServer.clear()
    connection.client.destroy()
    connection.upstream.destroy()
  }
}
