/**
 * A loopback TCP proxy in front of a redis-server, to cut the kit off from Redis while Redis
 * keeps running with its data (a network partition), which kill -9 cannot simulate.
 */
import { createServer, Socket, type AddressInfo, type Server } from 'node:net'

export class RedisProxy {
  private readonly server: Server
  private readonly sockets = new Set<Socket>()
  private cutOff = false

  private constructor(private readonly target: number) {
    this.server = createServer((client) => this.accept(client))
  }

  static async start(targetPort: number): Promise<RedisProxy> {
    const proxy = new RedisProxy(targetPort)
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', () => resolve()))
    return proxy
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  private accept(client: Socket): void {
    if (this.cutOff) { client.destroy(); return }
    const upstream = new Socket()
    this.sockets.add(client)
    this.sockets.add(upstream)
    const drop = (): void => {
      client.destroy()
      upstream.destroy()
      this.sockets.delete(client)
      this.sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    upstream.connect(this.target, '127.0.0.1', () => { client.pipe(upstream); upstream.pipe(client) })
  }

  /** Drops every connection and refuses new ones until `restore()`. */
  cut(): void {
    this.cutOff = true
    for (const socket of this.sockets) socket.destroy()
    this.sockets.clear()
  }

  restore(): void {
    this.cutOff = false
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
