/**
 * vxtun's layering: dependencies point one way, from the pure packet rules up to the command line.
 *   util, packet  <-  io  <-  datapath  <-  control, trace  <-  node  <-  tools  <-  cli
 * A folder may import its own layer or any layer to its left, never one to its right. Of the two
 * folders that share a layer, trace may use control (the control socket), never the other way.
 * test/architecture/layering.test.ts runs these rules and also fails on any cycle between folders.
 */
const layers = [
  ['util', 'packet'],
  ['io'],
  ['datapath'],
  ['control', 'trace'],
  ['node'],
  ['tools'],
  ['cli'],
];
const folder = (names) => `^src/(${names.join('|')})/`;
const forbidden = [];
layers.forEach((own, level) => {
  const higher = layers.slice(level + 1).flat();
  if (higher.length === 0) return;
  forbidden.push({
    name: `${own.join('-')}-imports-higher-layer`,
    comment: `${own.join(', ')} may not import ${higher.join(', ')}: dependencies point one way`,
    severity: 'error',
    from: { path: folder(own) },
    to: { path: folder(higher) },
  });
});
forbidden.push(
  {
    name: 'packet-is-pure',
    comment: 'packet/ holds pure rules: no Node I/O modules',
    severity: 'error',
    from: { path: '^src/packet/' },
    to: { dependencyTypes: ['core'], pathNot: '^(node:)?(buffer)$' },
  },
  {
    name: 'control-imports-trace',
    comment: 'trace may use control (its socket), never the other way',
    severity: 'error',
    from: { path: '^src/control/' },
    to: { path: '^src/trace/' },
  },
  {
    name: 'no-circular',
    comment: 'no import cycles between modules',
    severity: 'error',
    from: { path: '^src/' },
    to: { circular: true },
  },
);
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
