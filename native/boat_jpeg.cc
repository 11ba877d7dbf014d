// JPEG → resized crop, for the image loader: libjpeg-turbo decodes the file shrunk by 1, 2, 4 or 8 in the
// DCT domain, and a separable bilinear filter with PIL's antialiasing (torchvision's Resize on PIL images)
// resamples a box of it to the output size. One call per image, run on libuv's thread pool.
//
// Why not sharp: on the boat photos (1280 px baseline JPEGs) libvips' pipeline, not the JPEG decoder, was
// most of a loader's time per image; `npm run bench` shows the loader with and without this addon.
//
//   resizedCropJpeg(file, geometry: Float64Array, shrink) → Promise<Uint8Array>   8-bit RGB, outW×outH×3
//   geometry: [boxLeft, boxTop, boxWidth, boxHeight,   the source box in full-size pixels (fractional)
//              clipLeft, clipTop, clipRight, clipBottom,  pixels the filter may read (a crop made first)
//              outWidth, outHeight]
//
// It rejects, and the caller falls back to sharp, on anything unusual: a colour space other than YCbCr or
// grayscale, and any libjpeg warning (corrupt or truncated data), so that sharp decides about bad files.
// A header claiming more than kMaxPixels is rejected before any pixel buffer is made (a few bytes can
// claim 60,000 × 60,000), and a failed allocation is a rejection too, never an abort of the process.
//
//   maxPixels → number   the limit, the same as lib/images/limits.ts's MAX_IMAGE_PIXELS
#include <node_api.h>

#include <csetjmp>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>

namespace {

// sharp's default limitInputPixels, 0x3FFF * 0x3FFF (about 268 MP).
constexpr uint64_t kMaxPixels = 0x3FFFull * 0x3FFFull;

struct Geometry {
  double boxLeft, boxTop, boxWidth, boxHeight;
  double clipLeft, clipTop, clipRight, clipBottom;
  int outWidth, outHeight;
};

struct ErrorManager {
  jpeg_error_mgr base;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void onError(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

// Warnings (level -1: corrupt data, premature end) are errors here: sharp then decides about the file.
void onMessage(j_common_ptr cinfo, int level) {
  if (level < 0) onError(cinfo);
}

// PIL's bilinear filter and its coefficients for one axis (Resample.c, precompute_coeffs): each output
// pixel averages the inputs under a triangle widened by the scale when shrinking. Weights are fixed
// point with PIL's 22 fraction bits, and both passes round as PIL's 8-bit resampler does.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
  std::vector<int> first;        // first input pixel of each output pixel
  std::vector<int> count;        // how many inputs
  std::vector<int32_t> weights;  // count weights per output, padded to `stride`
  int stride = 0;
};

Coefficients coefficients(double in0, double in1, int clip0, int clip1, int outSize) {
  const double scale = (in1 - in0) / outSize;
  const double filterScale = std::max(scale, 1.0);
  const double support = filterScale;  // bilinear support 1
  Coefficients c;
  c.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(outSize);
  c.count.resize(outSize);
  c.weights.assign(static_cast<size_t>(outSize) * c.stride, 0);
  std::vector<double> w(c.stride);
  for (int x = 0; x < outSize; x++) {
    const double center = in0 + (x + 0.5) * scale;
    int lo = std::max(static_cast<int>(center - support + 0.5), clip0);
    int hi = std::min(static_cast<int>(center + support + 0.5), clip1);
    if (hi - lo > c.stride) hi = lo + c.stride;
    if (hi <= lo) {  // box outside the clip: nearest edge pixel
      lo = std::min(std::max(static_cast<int>(center), clip0), clip1 - 1);
      hi = lo + 1;
    }
    double total = 0;
    for (int i = lo; i < hi; i++) {
      const double d = std::fabs((i - center + 0.5) / filterScale);
      w[i - lo] = d < 1 ? 1 - d : 0;
      total += w[i - lo];
    }
    int32_t* fixed = &c.weights[static_cast<size_t>(x) * c.stride];
    for (int i = 0; i < hi - lo; i++) {
      const double k = total > 0 ? w[i] / total : 1.0 / (hi - lo);
      fixed[i] = static_cast<int32_t>(k < 0 ? -0.5 + k * (1 << kPrecisionBits) : 0.5 + k * (1 << kPrecisionBits));
    }
    c.first[x] = lo;
    c.count[x] = hi - lo;
  }
  return c;
}

// A fixed-point sum (with its rounding half already added) back to 8 bits.
inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

struct Job {
  std::string file;
  Geometry g{};
  int shrink = 1;
  std::vector<uint8_t> out;
  std::string error;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
};

// The image the filter reads: rows [top, top + rows) and columns [left, left + width) of the shrunk image.
struct Band {
  std::vector<uint8_t> pixels;  // RGB, `width` pixels per row
  int left = 0, top = 0, width = 0, rows = 0;
};

// Decodes the file shrunk by job.shrink, only the band the filter needs: libjpeg-turbo skips the
// colour conversion and IDCT of the columns left of and right of it (jpeg_crop_scanline), the rows
// above it (jpeg_skip_scanlines), and stops after its last row.
bool decodeBand(Job& job, const std::vector<uint8_t>& bytes, Coefficients& cx, Coefficients& cy, Band& band) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = onError;
  err.base.emit_message = onMessage;
  if (setjmp(err.jump)) {
    job.error = err.message;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<uint64_t>(cinfo.image_width) * cinfo.image_height > kMaxPixels) {
    job.error = "image too large: " + std::to_string(cinfo.image_width) + "x" + std::to_string(cinfo.image_height) + " is over the limit of " + std::to_string(kMaxPixels) + " pixels";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_GRAYSCALE) {
    job.error = "colour space not YCbCr or grayscale";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const int sourceWidth = cinfo.image_width;
  const int sourceHeight = cinfo.image_height;
  cinfo.scale_num = 1;
  cinfo.scale_denom = job.shrink;
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int width = cinfo.output_width;
  const int height = cinfo.output_height;

  // Full-size coordinates → the shrunk image's (libjpeg rounds its size up).
  const Geometry& g = job.g;
  const double sx = static_cast<double>(width) / sourceWidth;
  const double sy = static_cast<double>(height) / sourceHeight;
  const int clipLeft = std::max(0, static_cast<int>(std::floor(g.clipLeft * sx)));
  const int clipTop = std::max(0, static_cast<int>(std::floor(g.clipTop * sy)));
  const int clipRight = std::min(width, static_cast<int>(std::ceil(g.clipRight * sx)));
  const int clipBottom = std::min(height, static_cast<int>(std::ceil(g.clipBottom * sy)));
  if (clipRight <= clipLeft || clipBottom <= clipTop) {
    job.error = "box outside the image";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cx = coefficients(g.boxLeft * sx, (g.boxLeft + g.boxWidth) * sx, clipLeft, clipRight, g.outWidth);
  cy = coefficients(g.boxTop * sy, (g.boxTop + g.boxHeight) * sy, clipTop, clipBottom, g.outHeight);
  int colFirst = width, colLast = 0, rowFirst = height, rowLast = 0;
  for (int x = 0; x < g.outWidth; x++) colFirst = std::min(colFirst, cx.first[x]), colLast = std::max(colLast, cx.first[x] + cx.count[x]);
  for (int y = 0; y < g.outHeight; y++) rowFirst = std::min(rowFirst, cy.first[y]), rowLast = std::max(rowLast, cy.first[y] + cy.count[y]);

  // Chroma upsampling at a band's edge uses the edge, not the neighbour: keep a margin on every side.
  const int margin = 16;
  JDIMENSION left = std::max(0, colFirst - margin);
  JDIMENSION cropWidth = std::min(width, colLast + margin) - left;
  if (cropWidth < static_cast<JDIMENSION>(width)) jpeg_crop_scanline(&cinfo, &left, &cropWidth);  // widened to whole iMCUs
  const int skip = std::max(0, rowFirst - margin);
  band.left = left;
  band.width = cropWidth;
  band.top = skip;
  band.rows = rowLast - skip;
  if (skip > 0) jpeg_skip_scanlines(&cinfo, skip);
  band.pixels.resize(static_cast<size_t>(band.width) * band.rows * 3);
  while (static_cast<int>(cinfo.output_scanline) < rowLast) {
    JSAMPROW row = band.pixels.data() + static_cast<size_t>(cinfo.output_scanline - skip) * band.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  if (static_cast<int>(cinfo.output_scanline) < height) jpeg_abort_decompress(&cinfo);
  else jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

void run(Job& job) {
  std::vector<uint8_t> bytes;
  if (FILE* f = std::fopen(job.file.c_str(), "rb")) {
    uint8_t chunk[1 << 16];
    size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes.insert(bytes.end(), chunk, chunk + n);
    std::fclose(f);
  } else {
    job.error = "cannot open file";
    return;
  }
  Coefficients cx, cy;
  Band band;
  if (!decodeBand(job, bytes, cx, cy, band)) return;
  const Geometry& g = job.g;

  // Horizontal pass over the band's rows, rounded to 8 bits as PIL does.
  std::vector<uint8_t> across(static_cast<size_t>(band.rows) * g.outWidth * 3);
  for (int y = 0; y < band.rows; y++) {
    const uint8_t* in = &band.pixels[static_cast<size_t>(y) * band.width * 3];
    uint8_t* o = &across[static_cast<size_t>(y) * g.outWidth * 3];
    for (int x = 0; x < g.outWidth; x++) {
      const int32_t* w = &cx.weights[static_cast<size_t>(x) * cx.stride];
      const uint8_t* p = in + static_cast<size_t>(cx.first[x] - band.left) * 3;
      int32_t r = 1 << (kPrecisionBits - 1), gg = r, b = r;
      for (int k = 0; k < cx.count[x]; k++, p += 3) {
        r += w[k] * p[0];
        gg += w[k] * p[1];
        b += w[k] * p[2];
      }
      o[x * 3] = clip8(r);
      o[x * 3 + 1] = clip8(gg);
      o[x * 3 + 2] = clip8(b);
    }
  }
  // Vertical pass.
  const size_t rowBytes = static_cast<size_t>(g.outWidth) * 3;
  job.out.assign(rowBytes * g.outHeight, 0);
  std::vector<int32_t> sum(rowBytes);
  for (int y = 0; y < g.outHeight; y++) {
    std::fill(sum.begin(), sum.end(), 1 << (kPrecisionBits - 1));
    const int32_t* w = &cy.weights[static_cast<size_t>(y) * cy.stride];
    for (int k = 0; k < cy.count[y]; k++) {
      const uint8_t* in = &across[static_cast<size_t>(cy.first[y] + k - band.top) * rowBytes];
      for (size_t i = 0; i < rowBytes; i++) sum[i] += w[k] * in[i];
    }
    uint8_t* o = &job.out[y * rowBytes];
    for (size_t i = 0; i < rowBytes; i++) o[i] = clip8(sum[i]);
  }
}

void execute(napi_env, void* data) {
  Job& job = *static_cast<Job*>(data);
  try {
    run(job);
  } catch (const std::bad_alloc&) {
    job.error = "out of memory";
  } catch (const std::exception& e) {
    job.error = e.what();
  }
}

void complete(napi_env env, napi_status, void* data) {
  Job* job = static_cast<Job*>(data);
  if (job->error.empty()) {
    void* bytes;
    napi_value buffer, array;
    napi_create_arraybuffer(env, job->out.size(), &bytes, &buffer);
    std::memcpy(bytes, job->out.data(), job->out.size());
    napi_create_typedarray(env, napi_uint8_array, job->out.size(), buffer, 0, &array);
    napi_resolve_deferred(env, job->deferred, array);
  } else {
    napi_value message, error;
    napi_create_string_utf8(env, job->error.c_str(), job->error.size(), &message);
    napi_create_error(env, nullptr, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  delete job;
}

napi_value Throw(napi_env env, const char* message) {
  napi_throw_type_error(env, nullptr, message);
  return nullptr;
}

napi_value ResizedCropJpeg(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 3) return Throw(env, "resizedCropJpeg(file, geometry, shrink)");
  auto* job = new Job();
  size_t length;
  if (napi_get_value_string_utf8(env, argv[0], nullptr, 0, &length) != napi_ok) {
    delete job;
    return Throw(env, "file must be a string");
  }
  job->file.resize(length + 1);
  napi_get_value_string_utf8(env, argv[0], &job->file[0], length + 1, &length);
  job->file.resize(length);
  napi_typedarray_type type;
  size_t count;
  void* values;
  if (napi_get_typedarray_info(env, argv[1], &type, &count, &values, nullptr, nullptr) != napi_ok || type != napi_float64_array || count != 10) {
    delete job;
    return Throw(env, "geometry must be a Float64Array of 10 numbers");
  }
  const double* v = static_cast<const double*>(values);
  job->g = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], static_cast<int>(v[8]), static_cast<int>(v[9])};
  int32_t shrink;
  napi_get_value_int32(env, argv[2], &shrink);
  if (shrink != 1 && shrink != 2 && shrink != 4 && shrink != 8) {
    delete job;
    return Throw(env, "shrink must be 1, 2, 4 or 8");
  }
  if (job->g.outWidth < 1 || job->g.outHeight < 1 || !(job->g.boxWidth > 0) || !(job->g.boxHeight > 0) || !(job->g.clipRight > job->g.clipLeft) || !(job->g.clipBottom > job->g.clipTop)) {
    delete job;
    return Throw(env, "empty box or output");
  }
  job->shrink = shrink;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "boat_jpeg", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

// describe(): "libjpeg-turbo, libjpeg API 62"
napi_value Describe(napi_env env, napi_callback_info) {
  std::string text = "libjpeg-turbo, libjpeg API " + std::to_string(JPEG_LIB_VERSION);
  napi_value result;
  napi_create_string_utf8(env, text.c_str(), text.size(), &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value maxPixels;
  napi_create_double(env, static_cast<double>(kMaxPixels), &maxPixels);
  const napi_property_descriptor fns[] = {
      {"maxPixels", nullptr, nullptr, nullptr, nullptr, maxPixels, napi_enumerable, nullptr},
      {"resizedCropJpeg", nullptr, ResizedCropJpeg, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"describe", nullptr, Describe, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
