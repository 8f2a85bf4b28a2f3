/** Plain-language readings of a failed connection: the cause and the setting that fixes it. */
import type { KitConfig } from '../core/config.js'
import { connectionHint } from '../core/hints.js'

/** host:port the report is about: the URL's, else the configured topology. */
export function where(config: KitConfig): string {
  return config.url ? `${config.url.hostname}:${config.url.port || 6379}` : config.server
}

/** Plain-language reading of a connection failure. `beforeFirstReply`: it connected, then no reply came (hints.ts). */
export function diagnose(error: Error, config: KitConfig, beforeFirstReply = false): string[] {
  const host = where(config)
  const hostname = config.url?.hostname ?? config.server
  const text = `${error.message} ${(error as { code?: string }).code ?? ''}`
  if (/WRONGPASS|invalid password|invalid username-password/i.test(text)) {
    return ['Authentication failed: the password (REDIS_PASSWORD or the URL) is wrong for this server. Check it matches `requirepass` (or the ACL user).']
  }
  if (/NOAUTH|Authentication required/i.test(text)) {
    return ['The server requires a password and none was sent: set REDIS_PASSWORD or put it in REDIS_URL (redis://:password@host:6379).']
  }
  if (/DB index is out of range|invalid DB index/i.test(text)) {
    return [`Database ${config.db} does not exist on this server: set REDIS_DB to a number below its \`databases\` setting (16 by default).`]
  }
  if (/ECONNREFUSED/.test(text)) {
    return [`Nothing accepts connections on ${host}: start Redis (e.g. \`docker compose up -d redis\`) or correct REDIS_URL.`]
  }
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) {
    return [`The host name \`${hostname}\` does not resolve: correct REDIS_URL.`]
  }
  if (/All sentinels are unreachable/.test(text)) {
    return [`No sentinel answers (${config.server}): check REDIS_SENTINELS, that the sentinels run, and REDIS_SENTINEL_PASSWORD if they require one.`]
  }
  const hint = connectionHint(error, { tls: config.tls !== undefined, clientCert: config.tls?.cert !== undefined, beforeFirstReply, server: host })
  if (hint !== undefined && config.tls !== undefined) return [`TLS handshake failed with ${host}: ${hint}.`]
  if (hint !== undefined) return [`${host}: ${hint}.`]
  if (config.tls !== undefined && /EPROTO|ssl|tls|ECONNRESET|socket hang up/i.test(text)) {
    return [`TLS handshake failed with ${host} (${error.message.trim()}): check that the server speaks TLS on this port and trusts this client.`]
  }
  if (/ECONNRESET|Connection is closed|timed out|ETIMEDOUT|not ready/i.test(text)) {
    return [`No reply from ${host} within the timeout. If the server requires TLS, use rediss://; otherwise check firewalls, \`bind\` and \`protected-mode\` in redis.conf, and that the server is not stuck.`]
  }
  return [`Could not use Redis: ${error.message}`]
}
