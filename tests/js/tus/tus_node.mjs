// One tus-js-client upload in Node, driven by tests/test_tus_clients.py.
//
// argv[2] is a JSON object:
//   endpoint, ticket, file                 where to, with which ticket, what
//   chunkSize, parallelUploads, protocol   passed to tus-js-client as they are
//   uploadDataDuringCreation               idem (creation-with-upload)
//   stream                                 send the file as a plain Readable with a deferred length
//   metadata                               Upload-Metadata pairs
//   storage                                a FileUrlStorage path (fingerprints survive the process)
//   resume                                 resume from the stored fingerprint; fail if none is stored
//   delayMs                                wait this long before every PATCH (leaves time to kill us)
//   terminateAfter                         abort(true) once this many bytes were accepted
// Every event is one JSON line on stdout: request, response, url, chunk, success, terminated, error.
import { createReadStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { FileUrlStorage, Upload } from 'tus-js-client';

const cfg = JSON.parse(process.argv[2]);
const emit = (event, extra = {}) => process.stdout.write(`${JSON.stringify({ event, ...extra })}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Headers the tests assert on; tus-js-client's Node stack answers getHeader case-insensitively.
const WATCHED = ['Location', 'Upload-Offset', 'Upload-Length', 'Upload-Complete', 'Vasset-Vid', 'Vasset-Md5', 'Vasset-Status'];

let input;
if (cfg.stream) {
  // A Readable that is no fs.ReadStream: tus-js-client cannot stat it, so the length is deferred.
  input = createReadStream(cfg.file).pipe(new PassThrough());
} else {
  input = createReadStream(cfg.file);
}

let terminating = false;
let finished = false;
// Nothing left to wait for but no outcome: the client stalled (it never said success or error).
process.on('beforeExit', () => {
  if (!finished) {
    finished = true;
    emit('error', { message: 'tus-js-client stopped without success or error' });
    process.exitCode = 1;
  }
});
const upload = new Upload(input, {
  endpoint: cfg.endpoint,
  headers: { Authorization: `Bearer ${cfg.ticket}` },
  chunkSize: cfg.chunkSize ?? Number.POSITIVE_INFINITY,
  parallelUploads: cfg.parallelUploads ?? 1,
  protocol: cfg.protocol ?? 'tus-v1',
  uploadDataDuringCreation: cfg.uploadDataDuringCreation ?? false,
  uploadLengthDeferred: Boolean(cfg.stream),
  metadata: cfg.metadata ?? {},
  // No retries: a server error must fail the test, not be papered over by a second attempt.
  retryDelays: null,
  storeFingerprintForResuming: Boolean(cfg.storage),
  // Spread, not `urlStorage: undefined`: an undefined key would replace the default storage.
  ...(cfg.storage ? { urlStorage: new FileUrlStorage(cfg.storage) } : {}),
  async onBeforeRequest(req) {
    const method = req.getMethod();
    emit('request', {
      method,
      url: req.getURL(),
      offset: req.getHeader('Upload-Offset') ?? null,
      concat: req.getHeader('Upload-Concat') ?? null,
      interop: req.getHeader('Upload-Draft-Interop-Version') ?? null,
      complete: req.getHeader('Upload-Complete') ?? null,
    });
    if (method === 'PATCH' && cfg.delayMs) await sleep(cfg.delayMs);
  },
  onAfterResponse(req, res) {
    const headers = {};
    for (const name of WATCHED) {
      const value = res.getHeader(name);
      if (value !== undefined && value !== null) headers[name] = value;
    }
    emit('response', { method: req.getMethod(), url: req.getURL(), status: res.getStatus(), headers });
  },
  onUploadUrlAvailable() {
    emit('url', { url: upload.url });
  },
  onChunkComplete(chunkSize, accepted, total) {
    emit('chunk', { size: chunkSize, accepted, total });
    if (cfg.terminateAfter != null && accepted >= cfg.terminateAfter && !terminating) {
      terminating = true;
      upload
        .abort(true)
        .then(() => {
          finished = true;
          emit('terminated', { url: upload.url });
        })
        .catch((err) => {
          emit('error', { message: String(err) });
          process.exitCode = 1;
        });
    }
  },
  onSuccess() {
    finished = true;
    emit('success', { url: upload.url });
  },
  onError(err) {
    finished = true;
    emit('error', { message: String(err), status: err.originalResponse?.getStatus?.() ?? null });
    process.exitCode = 1;
  },
});

if (cfg.resume) {
  const previous = await upload.findPreviousUploads();
  emit('previous', { count: previous.length, urls: previous.map((p) => p.uploadUrl) });
  if (previous.length === 0) {
    emit('error', { message: 'no stored upload to resume' });
    process.exit(1);
  }
  upload.resumeFromPreviousUpload(previous[0]);
}
upload.start();
