/**
 * The most pixels an input image may claim in its header: sharp's default limitInputPixels,
 * 0x3FFF × 0x3FFF = 268,402,689 (about 268 MP). A file over it is a reported skip before any pixel
 * buffer is made, on the JPEG addon's path as on sharp's, because a few bytes of header can claim
 * 60,000 × 60,000 (10.8 GB of RGB): a decompression bomb. native/boat_jpeg.cc checks the same number.
 */
export const MAX_IMAGE_PIXELS = 0x3fff * 0x3fff;

/** Why an image of this size is not decoded, or null when it is within the limit. */
export function pixelLimitProblem(width: number, height: number): string | null {
  if (width * height <= MAX_IMAGE_PIXELS) return null;
  const n = (v: number): string => v.toLocaleString('en-US');
  return `too large to decode: ${width}×${height} is ${n(width * height)} pixels, over the limit of ${n(MAX_IMAGE_PIXELS)} (16383×16383, sharp's default)`;
}
