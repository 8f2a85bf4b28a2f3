/** `on-headers` (a dependency of express-session), typed: runs a listener as headers go out. */
import type { ServerResponse } from 'node:http'

 
export const onHeaders = require('on-headers') as (res: ServerResponse, listener: (this: ServerResponse) => void) => void
