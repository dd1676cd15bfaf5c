// The lowest supported versions of the data layers, installed under npm aliases for the contract.
declare module 'pg-lowest' {
  import pg from 'pg'
  export default pg
}
