/**
 * A decode worker: runs the transform pipeline for images sent by DecodePool, on its own event loop,
 * so decoding goes on while the main thread is busy with a (synchronous) training step.
 */
import { parentPort } from 'node:worker_threads';

import { errorLine, Random } from '../util';
import { loadImage } from './folder';
import { setJpegAddon, setJpegExact } from './jpeg';
import { ImageDecodeError } from './sample';
import { Transform, transformFromSpec } from './transforms';
import type { DecodeReply, DecodeRequest } from './decode-pool';

const transforms = new Map<string, Transform>();

async function answer(request: DecodeRequest): Promise<void> {
  let reply: DecodeReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const key = JSON.stringify(request.spec);
    let transform = transforms.get(key);
    if (!transform) transforms.set(key, (transform = transformFromSpec(request.spec)));
    setJpegAddon(request.jpegAddon);
    setJpegExact(request.jpegExact);
    const rng = new Random(0);
    rng.setState(request.rngState);
    const image = await loadImage(request.file, transform, rng);
    const data =
      image.data.byteOffset === 0 && image.data.byteLength === image.data.buffer.byteLength
        ? image.data
        : image.data.slice();
    reply = { id: request.id, ok: true, data, width: image.width, height: image.height };
    transfer = [data.buffer as ArrayBuffer];
  } catch (err) {
    reply =
      err instanceof ImageDecodeError
        ? { id: request.id, ok: false, reason: err.reason }
        : { id: request.id, ok: false, fatal: errorLine(err) };
  }
  parentPort!.postMessage(reply, transfer);
}

parentPort?.on('message', (request: DecodeRequest) => void answer(request));
