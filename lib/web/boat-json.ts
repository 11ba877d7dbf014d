/**
 * boat.json, the description an exported web folder carries: what the page and `boat predict` need to
 * run the model (classes, input size, preprocessing) and where it came from. Shared by the Node side
 * (lib/export) and the page (lib/web/page), so it imports nothing.
 */
export const EXPORT_FORMAT = 'boat-web-export/1';
/** `kind` of the ownership marker: `boat export --force` replaces only folders that carry it. */
export const EXPORT_MARKER_KIND = 'boat-web-export';
export const MODEL_JSON = 'model/model.json';

export type WebPreprocessing = 'imagenet' | 'caffe';
export type Quantization = 'none' | 'float16' | 'uint8';
export const QUANTIZATIONS: readonly Quantization[] = ['none', 'float16', 'uint8'];

export interface ExportManifest {
  format: string;
  classes: string[];
  inputSize: number;
  /** The eval transforms: Resize(resize) of the short side, CenterCrop(inputSize), then `normalization`. */
  preprocessing: {
    resize: number;
    crop: number;
    normalization: WebPreprocessing;
    /** caffe: RGB → BGR, minus this mean (0-255 pixels); imagenet: /255, minus mean, divided by std, RGB. */
    mean: [number, number, number];
    std: [number, number, number] | null;
  };
  /** float32 (no quantization), float16 or uint8 weights. */
  precision: 'float32' | 'float16' | 'uint8';
  model: {
    /** A tfjs LayersModel whose output is the class probabilities (softmax). */
    format: 'layers-model';
    path: string;
    bytes: number;
    shards: number;
    /** The feature layer, where the CLI splits the network back into backbone and head. */
    featureLayer: string;
    head: { hidden: number; dropout: number };
  };
  source: {
    path: string;
    /** SHA-256 of the source model's metadata.json, which holds the hash of each of its files. */
    metadataSha256: string;
    mode: string;
    weightsId: string;
    weightsChecksum: string;
    metrics: Record<string, unknown>;
  };
  options: { quantize: Quantization; shardBytes: number };
  exportedAt: string;
  /** SHA-256 of every file of the export but this one, by path relative to the folder. */
  files: Record<string, string>;
}
