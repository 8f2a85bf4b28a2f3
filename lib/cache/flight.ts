/**
 * In-process request coalescing: while one request of this instance fills a key (and variant),
 * the others of that key await its flight instead of running the handler too.
 */
import type { StoredResponse } from './entry.js'
import type { Lookup } from './types.js'

/** What a fill hands to the requests that waited for it. */
export interface FlightResult {
  response: StoredResponse
  /** The Vary names of the response, when it varies. */
  vary: readonly string[] | undefined
  /** The field (variant) it was stored under: followers of another variant must not use it. */
  field: string
  stale: boolean
}

/** A fill in progress. Followers await `result`; it resolves once, possibly with `undefined`. */
export class Flight {
  readonly result: Promise<FlightResult | undefined>
  private resolveResult: (result: FlightResult | undefined) => void = () => {}
  private settled = false

  constructor() {
    this.result = new Promise((resolve) => { this.resolveResult = resolve })
  }

  settle(result: FlightResult | undefined): void {
    if (this.settled) return
    this.settled = true
    this.resolveResult(result)
  }
}

/** The flights in progress of one kit, by id and field. */
export class Flights {
  private readonly byId = new Map<string, Flight>()

  /** NUL never occurs in URLs or header values, so it cannot join two ids into one. */
  static id(found: Pick<Lookup, 'key' | 'field'>): string {
    return `${found.key.id}\u0000${found.field}`
  }

  get(id: string): Flight | undefined {
    return this.byId.get(id)
  }

  has(id: string): boolean {
    return this.byId.has(id)
  }

  /** Registers a flight synchronously, before any await, so a concurrent miss cannot miss it. */
  start(id: string): Flight {
    const flight = new Flight()
    this.byId.set(id, flight)
    return flight
  }

  /** Forgets a flight once its store write is over, unless a newer one took its place. */
  end(id: string, flight: Flight): void {
    if (this.byId.get(id) === flight) this.byId.delete(id)
  }
}
