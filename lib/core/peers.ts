/**
 * Optional peer dependencies (prom-client, @opentelemetry/api): loaded only when a feature that
 * needs one is used, synchronously, so a missing one fails at start-up rather than mid-request.
 */
import { createRequire } from 'node:module'

/**
 * Loads `name` as the app would: the CommonJS build has `require`; the ES module build resolves
 * from the app's directory. Throws as `require` does when it is not installed.
 */
export function optionalPeer<T>(name: string): T {
  const load = typeof require === 'function' ? require : createRequire(`${process.cwd()}/`)
  return load(name) as T
}
