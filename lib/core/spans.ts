/**
 * Spans for the kit's slow operations (a replay after an outage, a cache fill, a doctor check)
 * through @opentelemetry/api, an optional peer. Core reaches the API through this file only, with
 * the few shapes it uses typed here: no OpenTelemetry type leaks into the kit's public types, and
 * without the API installed (or with `telemetry: false`) there is no tracer and `inSpan` just runs
 * the work. With the API but no provider registered by the app, its spans are no-ops.
 */
import { optionalPeer } from './peers.js'

export type SpanAttributes = Record<string, string | number | boolean>

/** What a span's work may do with it: add what it learnt (a hit, the backend …). */
export interface KitSpan {
  setAttribute(key: string, value: string | number | boolean): unknown
}

interface OtelSpan extends KitSpan {
  recordException(error: Error): void
  setStatus(status: { code: number; message?: string }): unknown
  end(): void
}

/** The slice of an OpenTelemetry Tracer the kit uses. */
export interface KitTracer {
  startActiveSpan<T>(name: string, options: { attributes: SpanAttributes }, work: (span: OtelSpan) => T): T
}

/** OpenTelemetry's `SpanStatusCode.ERROR`. */
const ERROR = 2

/** The kit's tracer when @opentelemetry/api is installed, else undefined. */
export function openTelemetryTracer(): KitTracer | undefined {
  try {
    return optionalPeer<{ trace: { getTracer(name: string): KitTracer } }>('@opentelemetry/api').trace.getTracer('express-redis-kit')
  } catch {
    return undefined
  }
}

/** Runs `work` in a span when there is a tracer; the span records the error when it throws. */
export function inSpan<T>(tracer: KitTracer | undefined, name: string, attributes: SpanAttributes, work: (span: KitSpan | undefined) => Promise<T>): Promise<T> {
  if (!tracer) return work(undefined)
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span)
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error))
      span.recordException(failure)
      span.setStatus({ code: ERROR, message: failure.message })
      throw error
    } finally {
      span.end()
    }
  })
}
