// The page's script: an inline Uppy Dashboard uploading with @uppy/tus (bundled by uppy_e2e.mjs).
//
// The query string says where to and with what: endpoint (the API's /files/ on another origin),
// ticket (sent as Authorization: Bearer) and chunk (bytes per PATCH). What happened is kept in
// window.tusRun for the driver: every response seen, the upload URL and the outcome.
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';

const params = new URLSearchParams(location.search);
const run = { responses: [], uploadURL: null, vid: null, error: null, done: false };
window.tusRun = run;

const uppy = new Uppy({ autoProceed: false, restrictions: { maxNumberOfFiles: 1 } })
  .use(Dashboard, { inline: true, target: '#dashboard', proudlyDisplayPoweredByUppy: false, height: 420 })
  .use(Tus, {
    endpoint: params.get('endpoint'),
    headers: { Authorization: `Bearer ${params.get('ticket')}` },
    chunkSize: Number(params.get('chunk')),
    // No retries: a failing server must show up as a failed upload, not a slow one.
    retryDelays: null,
    onAfterResponse(req, res) {
      // Reading Vasset-Vid cross-origin works only if the server exposes it (CORS).
      const vid = res.getHeader('Vasset-Vid');
      if (vid) run.vid = Number(vid);
      run.responses.push({
        method: req.getMethod(),
        status: res.getStatus(),
        offset: res.getHeader('Upload-Offset') ?? null,
        vid: vid ?? null,
      });
    },
  });

uppy.on('upload-success', (file, response) => {
  run.uploadURL = response.uploadURL;
});
uppy.on('upload-error', (file, error) => {
  run.error = String(error);
});
uppy.on('complete', (result) => {
  run.done = true;
  run.successful = result.successful.length;
  run.failed = result.failed.length;
});
