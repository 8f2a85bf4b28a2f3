/**
 * Decoded entries of recent hits, so a hit does not parse the same meta JSON again and again.
 *
 * - From memory: values are immutable strings, so the very same string decodes to the very same
 *   entry (an identity check; the body is a slice of that string, nothing is copied).
 * - From Redis: a fresh Buffer arrives each time; its meta bytes (status, headers, times, tags)
 *   are compared with the remembered ones and, when equal, only the body is taken from the new
 *   Buffer. A refilled entry has a new storedAt, so it never matches an older one.
 *
 * Bounded by entries and by bytes; the oldest slot goes first.
 */
import { decode, layout, type Decoded, type StoredResponse } from './entry.js'

interface Slot {
  /** The memory string, or a copy of the meta bytes of a Redis value. */
  raw: string | Buffer
  response: StoredResponse
  bytes: number
}

export class EntryCache {
  private readonly slots = new Map<string, Slot>()
  private bytes = 0

  constructor(private readonly maxEntries = 1000, private readonly maxBytes = 16 * 1024 * 1024) {}

  read(slotKey: string, raw: Buffer | string | undefined): Decoded | undefined {
    if (raw === undefined) return undefined
    const shape = layout(raw)
    if (shape?.kind !== 'response') return decode(raw)
    const slot = this.slots.get(slotKey)
    if (slot !== undefined) {
      if (typeof raw === 'string') {
        if (slot.raw === raw) return { kind: 'response', response: slot.response }
      } else if (Buffer.isBuffer(slot.raw) && slot.raw.length === shape.bodyStart
        && raw.compare(slot.raw, 0, shape.bodyStart, 0, shape.bodyStart) === 0) {
        return { kind: 'response', response: { ...slot.response, body: raw.subarray(shape.bodyStart) } }
      }
    }
    const decoded = decode(raw)
    if (decoded?.kind === 'response') {
      // A Redis slot keeps a copy of the meta bytes only, never the body (nor the Buffer under it).
      const slot: Slot = typeof raw === 'string'
        ? { raw, response: decoded.response, bytes: raw.length + slotKey.length }
        : { raw: Buffer.from(raw.subarray(0, shape.bodyStart)), response: { ...decoded.response, body: '' }, bytes: shape.bodyStart + slotKey.length }
      this.remember(slotKey, slot)
    }
    return decoded
  }

  private remember(slotKey: string, slot: Slot): void {
    const old = this.slots.get(slotKey)
    if (old) {
      this.bytes -= old.bytes
      this.slots.delete(slotKey)
    }
    if (slot.bytes > this.maxBytes / 16) return
    this.slots.set(slotKey, slot)
    this.bytes += slot.bytes
    while (this.slots.size > this.maxEntries || this.bytes > this.maxBytes) {
      const oldest = this.slots.keys().next()
      if (oldest.done) break
      this.bytes -= (this.slots.get(oldest.value) as Slot).bytes
      this.slots.delete(oldest.value)
    }
  }

  clear(): void {
    this.slots.clear()
    this.bytes = 0
  }
}
