// Builds dist/esm (import) and dist/cjs (require) from lib/ with the pinned TypeScript,
// each with a package.json that tells Node which module system the folder uses.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
rmSync('dist', { recursive: true, force: true })
const common = ['--rootDir', 'lib', '--declaration', '--sourceMap', '--noEmit', 'false', '--skipLibCheck',
  '--strict', '--target', 'ES2022', '--esModuleInterop', '--types', 'node']
const builds = [
  { dir: 'dist/esm', type: 'module', args: ['--module', 'ES2022', '--moduleResolution', 'Bundler'] },
  { dir: 'dist/cjs', type: 'commonjs', args: ['--module', 'NodeNext', '--moduleResolution', 'NodeNext'] },
]
for (const { dir, type, args } of builds) {
  execFileSync(process.execPath, [tsc, ...common, ...args, '--outDir', dir, 'lib/index.ts', 'lib/doctor/cli.ts'], { stdio: 'inherit' })
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/package.json`, JSON.stringify({ type }) + '\n')
}
