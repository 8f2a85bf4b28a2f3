/**
 * The README's lists of error codes and logged problems are the lists the code uses: a code added
 * to either without the other fails here.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { KIT_ERROR_CODES } from '../../lib/core/errors.js'
import { WARNING_CODES } from '../../lib/core/log.js'

const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8')

/** The codes in the first column of the table that follows `header` in the README. */
function tableCodes(header: string): string[] {
  const start = readme.indexOf(header)
  assert.ok(start !== -1, `README has a table headed ${header}`)
  const rows = readme.slice(start).split('\n').slice(2)
  const codes: string[] = []
  for (const row of rows) {
    const match = /^\| `(ERR_KIT_[A-Z_]+)` \|/.exec(row)
    if (!match) break
    codes.push(match[1] as string)
  }
  return codes
}

describe('error codes and logged problems', () => {
  it('the README lists exactly the codes a KitError can carry', () => {
    assert.deepEqual(tableCodes('| `err.code` | When |').sort(), [...KIT_ERROR_CODES].sort())
  })

  it('the README lists exactly the codes the kit logs', () => {
    assert.deepEqual(tableCodes('| Logged code | Meaning |').sort(), [...WARNING_CODES].sort())
  })

  it('every ERR_KIT_ code the README mentions is one of those', () => {
    const known = new Set<string>([...KIT_ERROR_CODES, ...WARNING_CODES])
    const mentioned = new Set(readme.match(/ERR_KIT_[A-Z_]+/g) ?? [])
    assert.deepEqual([...mentioned].filter((code) => !known.has(code)), [])
  })

  it('every code logged in lib/ is in the list', () => {
    const source = (file: string): string => readFileSync(join(__dirname, '..', '..', 'lib', file), 'utf8')
    const files = ['core/manager.ts', 'session/index.ts', 'session/store.ts', 'rate-limit/store.ts']
    const used = new Set(files.flatMap((file) => source(file).match(/'ERR_KIT_[A-Z_]+'/g) ?? []).map((code) => code.slice(1, -1)))
    const known = new Set<string>([...KIT_ERROR_CODES, ...WARNING_CODES])
    assert.deepEqual([...used].filter((code) => !known.has(code)), [])
  })
})
