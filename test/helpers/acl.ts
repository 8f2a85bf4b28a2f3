/**
 * Small typed wrappers over ACL SETUSER, so tests can run the kit as a user with fewer rights than
 * the default one (the way production deployments often do) and see what a NOPERM does.
 *
 * ACLs live on one server: on a cluster, create the user on every node.
 */
import type { Redis } from 'ioredis'

export interface AclUser {
  name: string
  password: string
  /** Key patterns the user may read and write (`~pattern`). None: no key at all. */
  keys?: string[]
  /** Key patterns the user may only read (`%R~pattern`, Redis 7+). */
  readOnlyKeys?: string[]
  /** Pub/sub channel patterns (`&pattern`). None: no channel. */
  channels?: string[]
  /** Command rules, applied in order: `+@all`, `-@dangerous`, `+info`, `-eval`, ... */
  commands: string[]
}

/**
 * The ACL SETUSER rules for `user`. Starts with `reset`, so setting a user twice (a re-run test)
 * gives exactly these rights rather than adding to what a previous run left.
 */
export function aclRules(user: AclUser): string[] {
  return [
    'reset', 'on', `>${user.password}`,
    ...(user.keys ?? []).map((pattern) => `~${pattern}`),
    ...(user.readOnlyKeys ?? []).map((pattern) => `%R~${pattern}`),
    ...(user.channels ?? []).map((pattern) => `&${pattern}`),
    ...user.commands,
  ]
}

/** Creates (or redefines) the user on the server `admin` is connected to. */
export async function createAclUser(admin: Redis, user: AclUser): Promise<AclUser> {
  await admin.call('ACL', 'SETUSER', user.name, ...aclRules(user))
  return user
}

/** Removes users (unknown names are ignored by Redis). */
export async function deleteAclUsers(admin: Redis, ...names: string[]): Promise<void> {
  if (names.length > 0) await admin.call('ACL', 'DELUSER', ...names)
}

/**
 * Rights everyday traffic needs without the dangerous ones (FLUSHALL, KEYS, CONFIG, DEBUG, ...).
 * `+info` is added back because INFO is in @dangerous and ioredis sends it as its ready check:
 * without it every connect prints "Skipping the ready check because INFO command fails".
 */
const EVERYDAY = ['+@all', '-@dangerous', '+info']

/** A user confined to one key prefix, e.g. `ACL SETUSER app on >pw ~app:* +@all -@dangerous +info`. */
export function prefixLimitedUser(prefix: string, name = 'app', password = 'app-password'): AclUser {
  return { name, password, keys: [`${prefix}*`], channels: [`${prefix}*`], commands: EVERYDAY }
}

/** A user who may use every key but no Lua (EVAL, EVALSHA, FUNCTION, SCRIPT): scripts get NOPERM. */
export function noScriptingUser(name = 'noscript', password = 'noscript-password'): AclUser {
  return { name, password, keys: ['*'], channels: ['*'], commands: [...EVERYDAY, '-@scripting'] }
}

/**
 * A user denied some keys. ACLs can only grant, so "denied" means "not granted": the user gets
 * `allowed` read-write and `readOnly` read-only, and every other key (say `rl:*`) answers NOPERM.
 */
export function restrictedKeysUser(allowed: string[], readOnly: string[] = [], name = 'restricted', password = 'restricted-password'): AclUser {
  return { name, password, keys: allowed, readOnlyKeys: readOnly, commands: EVERYDAY }
}
