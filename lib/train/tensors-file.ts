/** A small file format for named tensors (checkpoints): a JSON manifest plus one binary blob. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { readFileSha256Checked, sha256Hex, UserError } from '../util';

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

/** Writes <stem>.bin and <stem>.json; returns their SHA-256s, for the reader to check. */
export async function writeTensors(dir: string, stem: string, tensors: NamedTensor[]): Promise<Record<string, string>> {
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
  const blob = Buffer.concat(parts);
  const manifest = JSON.stringify(entries);
  fs.writeFileSync(path.join(dir, `${stem}.bin`), blob);
  fs.writeFileSync(path.join(dir, `${stem}.json`), manifest);
  return { [`${stem}.bin`]: sha256Hex(blob), [`${stem}.json`]: sha256Hex(manifest) };
}

/** Reads what writeTensors wrote, checking both files against the hashes it returned. */
export function readTensors(dir: string, stem: string, hashes: Record<string, string>): NamedTensor[] {
  const read = (name: string): Buffer =>
    readFileSha256Checked(path.join(dir, name), hashes[name], 'checkpoint file', 'damaged');
  const entries = JSON.parse(read(`${stem}.json`).toString('utf8')) as Entry[];
  const blob = read(`${stem}.bin`);
  return entries.map((e) => {
    if (e.offset + e.length > blob.length)
      throw new UserError(`checkpoint damaged: ${path.join(dir, stem)}.bin is too short`);
    const slice = blob.buffer.slice(blob.byteOffset + e.offset, blob.byteOffset + e.offset + e.length);
    const values = e.dtype === 'int32' ? new Int32Array(slice) : new Float32Array(slice);
    return { name: e.name, tensor: tf.tensor(values, e.shape, e.dtype) };
  });
}
