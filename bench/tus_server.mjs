// The @tus/server + @tus/file-store baseline for `bench/ingest.py --protocol tus`.
//
//   node bench/tus_server.mjs <node_modules dir> <port> <upload dir>
//
// The packages live in the bench's npm cache (bench/.cache/tus-node, pinned by
// bench/tus_node/package-lock.json), not next to this file, so they are resolved from the
// directory given: a bare import here would look in bench/node_modules.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, port, directory] = process.argv.slice(2);
if (!modules || !port || !directory) {
  console.error('usage: node tus_server.mjs <node_modules dir> <port> <upload dir>');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), 'resolve-from-here.js'));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);
const { Server } = await load('@tus/server');
const { FileStore } = await load('@tus/file-store');

const server = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const http = server.listen({ host: '127.0.0.1', port: Number(port) }, () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
// The bench stops this process with SIGTERM; close so the port is free at once.
process.on('SIGTERM', () => http.close(() => process.exit(0)));
