// Compiles the dvp Solidity contracts with the pinned solc-js into build/<Name>.json
// (abi, bytecode, deployedBytecode). Skips work when sources are unchanged.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')
const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, 'build')
const sources = Object.fromEntries(
  readdirSync(here).filter((f) => f.endsWith('.sol')).sort().map((f) => [f, { content: readFileSync(join(here, f), 'utf8') }]),
)
const digest = createHash('sha256').update(solc.version()).update(JSON.stringify(sources)).digest('hex')
const stamp = join(out, '.stamp')
if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) process.exit(0)

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
}
const findImports = (path) => {
  try {
    return { contents: readFileSync(require.resolve(path), 'utf8') }
  } catch {
    return { error: `not found: ${path}` }
  }
}
const result = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }))
const errors = (result.errors || []).filter((e) => e.severity === 'error')
for (const e of result.errors || []) console.error(e.formattedMessage)
if (errors.length) process.exit(1)
mkdirSync(out, { recursive: true })
for (const file of Object.keys(sources)) {
  for (const [name, c] of Object.entries(result.contracts[file])) {
    writeFileSync(
      join(out, `${name}.json`),
      JSON.stringify({ contractName: name, compiler: solc.version(), abi: c.abi, bytecode: '0x' + c.evm.bytecode.object, deployedBytecode: '0x' + c.evm.deployedBytecode.object }, null, 1),
    )
  }
}
writeFileSync(stamp, digest)
console.log(`compiled ${Object.keys(sources).length} contracts with solc ${solc.version()}`)
