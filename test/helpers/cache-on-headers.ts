/** `on-headers` (a dependency of express-session), typed: runs a listener as headers go out. */
import type { ServerResponse } from 'node:http'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const onHeaders = require('on-headers') as (res: ServerResponse, listener: (this: ServerResponse) => void) => void
