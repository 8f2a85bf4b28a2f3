/** The doctor's SLOWLOG redaction (lib/doctor/slowlog.ts): what a command was, never its values. */
import assert from 'node:assert/strict'
import { redactCommand } from '../../lib/doctor/slowlog.js'

const SET = { first: 1, last: 1, step: 1 }
const MGET = { first: 1, last: -1, step: 1 }
const MSET = { first: 1, last: -1, step: 2 }

describe('SLOWLOG redaction', () => {
  it('keys and values become placeholders, runs of three or more are counted', () => {
    assert.equal(redactCommand(['SET', 'dr:api-token', 'tok_live_4f9a8b7c6d5e'], SET), 'set <key> <value>')
    assert.equal(redactCommand(['set', 'session:abc', '{"user":"alice"}', 'EX', '60'], SET), 'set <key> <3 values>')
    assert.equal(redactCommand(['MGET', 'a', 'b', 'c'], MGET), 'mget <3 keys>')
    assert.equal(redactCommand(['MSET', 'a', '1', 'b', '2'], MSET), 'mset <key> <value> <key> <value>')
    assert.equal(redactCommand(['GET', 'only'], SET), 'get <key>')
    assert.equal(redactCommand(['PING']), 'ping')
  })

  it('scripts show their key and argument counts; subcommands of container commands stay', () => {
    assert.equal(redactCommand(['EVALSHA', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db', '2', 'k1', 'k2', 'secret', 'x', 'y']), 'evalsha <sha> <key> <key> <3 values>')
    assert.equal(redactCommand(['EVAL', "return redis.call('GET', KEYS[1])", '1', 'token']), 'eval <script> <key>')
    assert.equal(redactCommand(['CONFIG', 'SET', 'requirepass', 'hunter2']), 'config set <value> <value>')
    assert.equal(redactCommand(['CLIENT', 'SETNAME', 'express-redis-kit']), 'client setname <value>')
  })

  it('without COMMAND INFO every argument is a value; an odd command name is hidden too', () => {
    assert.equal(redactCommand(['SET', 'k', 'v']), 'set <value> <value>')
    assert.equal(redactCommand(['tok_live_abc!', 'x']), '<command> <value>')
  })
})
