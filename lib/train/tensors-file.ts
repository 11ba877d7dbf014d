/** A small file format for named tensors (checkpoints): a JSON manifest plus one binary blob. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

import { UserError } from '../util';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

interface Entry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  length: number;
}

export async function writeTensors(dir: string, stem: string, tensors: NamedTensor[]): Promise<void> {
  const entries: Entry[] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const { name, tensor } of tensors) {
    const data = await tensor.data();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    entries.push({ name, shape: tensor.shape, dtype: tensor.dtype as Entry['dtype'], offset, length: bytes.length });
    parts.push(bytes);
    offset += bytes.length;
  }
  fs.writeFileSync(path.join(dir, `${stem}.bin`), Buffer.concat(parts));
  fs.writeFileSync(path.join(dir, `${stem}.json`), JSON.stringify(entries));
}

export function readTensors(dir: string, stem: string): NamedTensor[] {
  let entries: Entry[];
  let blob: Buffer;
  try {
    entries = JSON.parse(fs.readFileSync(path.join(dir, `${stem}.json`), 'utf8')) as Entry[];
    blob = fs.readFileSync(path.join(dir, `${stem}.bin`));
  } catch {
    throw new UserError(`checkpoint incomplete or damaged: ${path.join(dir, stem)}.{json,bin}`);
  }
  return entries.map((e) => {
    if (e.offset + e.length > blob.length) throw new UserError(`checkpoint damaged: ${path.join(dir, stem)}.bin is too short`);
    const slice = blob.buffer.slice(blob.byteOffset + e.offset, blob.byteOffset + e.offset + e.length);
    const values = e.dtype === 'int32' ? new Int32Array(slice) : new Float32Array(slice);
    return { name: e.name, tensor: tf.tensor(values, e.shape, e.dtype) };
  });
}
