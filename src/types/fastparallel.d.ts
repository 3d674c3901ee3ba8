// fastparallel (mqemitter's own dependency) ships no types; the one call we make
declare module 'fastparallel' {
  function fastparallel(opts: { results: boolean; released?: () => void }): unknown
  export default fastparallel
}
