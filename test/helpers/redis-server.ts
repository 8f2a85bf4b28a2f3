/**
 * Starts and controls a private redis-server on a free loopback port, so tests can kill,
 * hang and restart it without ever touching the shared server on 6379.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServerOptions {
  /** Start with `requirepass`. */
  password?: string
  /** Reuse a port (for restarts on the same address). */
  port?: number
  /** Keep data across kill -9 and restart (append-only file, fsync on every write), as production does. */
  persist?: boolean
  /** Allow DEBUG (SLEEP …), which Redis 7 refuses by default. */
  debug?: boolean
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** One raw RESP round trip; resolves with the first reply line or rejects. */
function rawCommand(port: number, command: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket()
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('timeout')) }, timeoutMs)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.connect(port, '127.0.0.1', () => socket.write(command))
    socket.once('data', (data) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(data.toString())
    })
  })
}

/** Every server this process started: killed when it exits, even after a crash or Ctrl-C. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
})

export class RedisServer {
  readonly port: number
  readonly password: string | undefined
  readonly persist: boolean
  readonly debug: boolean
  private process: ChildProcess | undefined
  private readonly dir: string

  private constructor(port: number, password: string | undefined, persist: boolean, debug: boolean) {
    this.port = port
    this.password = password
    this.persist = persist
    this.debug = debug
    this.dir = mkdtempSync(join(tmpdir(), 'erk-redis-'))
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(options.port ?? (await freePort()), options.password, options.persist ?? false, options.debug ?? false)
    await server.start()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.process?.pid
  }

  /** Starts (or restarts) the server on its port and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.process) throw new Error('redis-server already running')
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', this.persist ? 'yes' : 'no', '--appendfsync', 'always',
      '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning']
    if (this.password) args.push('--requirepass', this.password)
    if (this.debug) args.push('--enable-debug-command', 'yes')
    const child = spawn('redis-server', args, { stdio: 'ignore' })
    this.process = child
    running.add(child)
    child.once('exit', () => {
      running.delete(child)
      if (this.process === child) this.process = undefined
    })
    await this.waitForPing()
  }

  /** Polls PING until the server answers (never a fixed sleep). */
  private async waitForPing(deadlineMs = 10_000): Promise<void> {
    const deadline = Date.now() + deadlineMs
    const auth = this.password ? `AUTH ${this.password}\r\n` : ''
    for (;;) {
      if (!this.process) throw new Error('redis-server exited during start-up')
      try {
        const reply = await rawCommand(this.port, `${auth}PING\r\n`, 500)
        if (reply.includes('PONG') || reply.startsWith('+OK')) return
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not answer PING`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  /** kill -9: the server dies without closing connections gracefully. */
  async kill(): Promise<void> {
    const child = this.process
    if (!child) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await exited
  }

  /** SIGSTOP: the server keeps its sockets open but answers nothing (a hang). */
  pause(): void {
    this.process?.kill('SIGSTOP')
  }

  /** SIGCONT: the hung server resumes. */
  resume(): void {
    this.process?.kill('SIGCONT')
  }

  async restart(): Promise<void> {
    await this.kill()
    await this.start()
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    const child = this.process
    if (child) {
      child.kill('SIGCONT')
      await this.kill()
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}
