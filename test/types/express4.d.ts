/** `express4` is an npm alias of express@4.21 for the Express 4 smoke tests; its API is typed as express's. */
declare module 'express4' {
  import express from 'express'
  export default express
}
