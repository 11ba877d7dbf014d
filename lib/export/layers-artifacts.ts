/**
 * One tfjs LayersModel, input pixels to class probabilities, made from a BoatModel's backbone and head,
 * so that a page loads it with a plain tf.loadLayersModel. The two topologies are joined as JSON: the
 * head's layers are appended after the backbone's feature layer, its StepDropout becomes Keras' Dropout
 * (identity at inference) and its LogSoftmax a softmax Activation, so no custom layer class is needed
 * in the browser and the output is probabilities.
 */
import * as tf from '../engine/tf';

import { setInputSize, type BoatModel } from '../model';
import { concatBytes } from './quantize';

export const OUTPUT_LAYER = 'probabilities';

interface LayerJson {
  class_name: string;
  name?: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}
interface TopologyJson {
  class_name: string;
  config: {
    name: string;
    layers: LayerJson[];
    input_layers: unknown[];
    output_layers: Array<[string, number, number]>;
  };
  [key: string]: unknown;
}

export interface LayersArtifacts {
  modelTopology: TopologyJson;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: Uint8Array;
}

/** What model.save() hands its IOHandler, flattened to one byte array. */
export async function artifactsOf(model: tf.LayersModel): Promise<LayersArtifacts> {
  let out: LayersArtifacts | undefined;
  await model.save({
    save: async (a: tf.io.ModelArtifacts) => {
      const data = Array.isArray(a.weightData) ? a.weightData : [a.weightData as ArrayBuffer];
      out = {
        modelTopology: a.modelTopology as TopologyJson,
        weightSpecs: a.weightSpecs ?? [],
        weightData: concatBytes(data.map((d) => new Uint8Array(d))),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  if (!out) throw new Error('model.save produced no artifacts');
  return out;
}

/** Rewrites the head's layers so that a stock tfjs-layers loads them (see the file comment). */
function webHeadLayer(layer: LayerJson, featuresInput: string, featureLayer: string): LayerJson {
  const rewire = (nodes: unknown): unknown =>
    JSON.parse(JSON.stringify(nodes).replaceAll(JSON.stringify(featuresInput), JSON.stringify(featureLayer)));
  const inbound_nodes = rewire(layer.inbound_nodes) as unknown[];
  const name = (layer.config.name ?? layer.name) as string;
  switch (layer.class_name) {
    case 'StepDropout':
      return {
        class_name: 'Dropout',
        name,
        config: { name, trainable: false, rate: layer.config.rate, noise_shape: null, seed: null },
        inbound_nodes,
      };
    case 'LogSoftmax':
      return {
        class_name: 'Activation',
        name: OUTPUT_LAYER,
        config: { name: OUTPUT_LAYER, trainable: false, activation: 'softmax' },
        inbound_nodes,
      };
    default:
      return { ...layer, inbound_nodes };
  }
}

/** The backbone and head as one LayersModel's artifacts (full-precision weights, backbone's first). */
export async function webModelArtifacts(model: BoatModel): Promise<LayersArtifacts & { featureLayer: string }> {
  const backbone = await artifactsOf(model.backbone);
  // The size the model takes now, which progressive resizing may have changed since it was built.
  setInputSize(backbone.modelTopology, model.info.inputSize);
  const head = await artifactsOf(model.head);
  const [featureLayer] = backbone.modelTopology.config.output_layers[0];
  const headInput = head.modelTopology.config.layers.find((l) => l.class_name === 'InputLayer');
  if (!headInput) throw new Error('the head has no input layer');
  const inputName = (headInput.config.name ?? headInput.name) as string;
  const headLayers = head.modelTopology.config.layers
    .filter((l) => l !== headInput)
    .map((l) => webHeadLayer(l, inputName, featureLayer));
  const clash = headLayers.find((l) =>
    backbone.modelTopology.config.layers.some((b) => b.config.name === l.config.name),
  );
  if (clash) throw new Error(`head layer ${String(clash.config.name)} has the name of a backbone layer`);
  const modelTopology: TopologyJson = {
    ...backbone.modelTopology,
    config: {
      ...backbone.modelTopology.config,
      name: 'boat',
      layers: [...backbone.modelTopology.config.layers, ...headLayers],
      output_layers: [[OUTPUT_LAYER, 0, 0]],
    },
  };
  return {
    modelTopology,
    weightSpecs: [...backbone.weightSpecs, ...head.weightSpecs],
    weightData: concatBytes([backbone.weightData, head.weightData]),
    featureLayer,
  };
}
