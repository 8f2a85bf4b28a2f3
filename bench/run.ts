/**
 * `npm run bench`: every feature benchmark, one after another (never in parallel, so they do not
 * compete for the 2 cores), each in its own process. Each writes bench/results/<name>.md.
 * `npm run bench -- client cache` runs a subset. The chaos run is separate: `npm run bench:chaos`.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const ALL = ['client', 'cache', 'session', 'rate-limit', 'jobs', 'metrics']
const chosen = process.argv.slice(2).filter((name) => !name.startsWith('-'))
const unknown = chosen.filter((name) => !ALL.includes(name))
if (unknown.length > 0) {
  console.error(`Unknown benchmark ${unknown.join(', ')}; choose from ${ALL.join(', ')}`)
  process.exit(2)
}
let failed = false
for (const name of chosen.length > 0 ? chosen : ALL) {
  const file = join(__dirname, `${name}.ts`)
  if (!existsSync(file)) continue
  console.log(`\n## ${name}\n`)
  const result = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'ignore', 'inherit'] })
  if (result.status !== 0) {
    console.error(`${name} benchmark failed (exit ${result.status})`)
    failed = true
    continue
  }
  console.log(readFileSync(join(__dirname, 'results', `${name}.md`), 'utf8'))
}
process.exit(failed ? 1 : 0)
