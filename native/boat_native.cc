// Convolutions for the wasm backend through oneDNN, the library PyTorch's CPU convolutions use.
//
// tfjs-backend-wasm runs XNNPACK with 128-bit SIMD on at most the threads Node lends it; oneDNN
// JIT-compiles AVX2/AVX-512 kernels and runs them on an OpenMP pool. The JavaScript side
// (lib/engine/native-kernels.ts) passes Float32Array views on the wasm heap, so nothing is copied:
// oneDNN reads the input tensors and writes the output tensor where wasm keeps them.
//
// Layouts are TensorFlow's: activations NHWC, filters HWIO ([KH, KW, Ci, Co]). oneDNN may want
// the filter in a blocked layout; it is reordered per call (small next to the convolution), except
// where inference keeps the reordered copy (the filter cache below).
//
// Precision: fp32, or bf16 (setPrecision). In bf16 the convolutions and matrix products read bf16
// copies of their inputs (oneDNN reorders, into whatever layout the primitive prefers) and write fp32
// outputs straight onto the wasm heap, as PyTorch's CPU autocast does: weights, gradients and
// everything outside these primitives stay fp32. bf16 is only offered where the CPU computes it
// natively (AVX512_BF16 or AMX); oneDNN would otherwise emulate it, several times slower than fp32.
//
// Every call takes the geometry as one Int32Array:
//   [n, h, w, ci, kh, kw, co, oh, ow, strideH, strideW, dilationH, dilationW, padTop, padLeft, padBottom, padRight]
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <immintrin.h>
#include <initializer_list>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::algorithm;
using dnnl::engine;
using dnnl::memory;
using dnnl::prop_kind;
using dnnl::stream;
using tag = memory::format_tag;
using dt = memory::data_type;

engine& cpu() {
  static engine e(engine::kind::cpu, 0);
  return e;
}

stream& cpuStream() {
  static stream s(cpu());
  return s;
}

// Whether this CPU runs bf16 convolutions and matrix products in hardware (not oneDNN's emulation).
bool bf16Native() {
  auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;  // the ISA values are nested bit masks: AMX includes avx512_core_bf16
}

bool useBf16 = false;
// Whether bf16 gradients read NHWC inputs (Geometry::nhwcGradients), or the blocked layouts oneDNN picks.
bool nhwcBackward = true;

// The type the primitives compute in.
dt computeType() { return useBf16 ? dt::bf16 : dt::f32; }

// A packed activation or gradient (see bf16 storage), NHWC like its float32 form.
memory::desc packedDesc(memory::dim n, memory::dim c, memory::dim h, memory::dim w) {
  return {{n, c, h, w}, dt::bf16, tag::nhwc};
}

struct Geometry {
  memory::dim n, h, w, ci, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr;

  memory::desc src() const { return {{n, ci, h, w}, dt::f32, tag::nhwc}; }
  memory::desc dst() const { return {{n, co, oh, ow}, dt::f32, tag::nhwc}; }
  memory::desc userWeights() const { return {{co, ci, kh, kw}, dt::f32, tag::hwio}; }
  memory::desc anyWeights() const { return {{co, ci, kh, kw}, computeType(), tag::any}; }
  // What the primitives read: src and dst (as diff_dst) in the compute type
  memory::desc srcIn() const { return {{n, ci, h, w}, computeType(), inputTag()}; }
  memory::desc dstIn() const { return {{n, co, oh, ow}, computeType(), inputTag()}; }

  // Whether this convolution's bf16 gradients read NHWC copies of dy and x, the user's layout, rather
  // than the blocked one oneDNN picks: its bf16 gradients run about as fast on NHWC, and the input
  // gradient then writes the user's NHWC output directly instead of a blocked one reordered after (52
  // reorders of a ResNet50 step). Only for channel counts in whole 16s (all of ResNet50's but the stem's
  // input): oneDNN 2.6.3's NHWC bf16 1×1 input gradient is wrong for 5 output channels.
  bool nhwcGradients() const { return useBf16 && nhwcBackward && ci % 16 == 0 && co % 16 == 0; }
  // The layout the primitives read their inputs in: in bf16 those are reordered copies anyway, so the
  // primitive may pick its preferred one, except for the NHWC gradients (above).
  tag inputTag() const { return useBf16 && !nhwcGradients() ? tag::any : tag::nhwc; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }  // oneDNN counts the gaps
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
  size_t srcSize() const { return n * h * w * ci; }
  size_t dstSize() const { return n * oh * ow * co; }
  size_t weightsSize() const { return kh * kw * ci * co; }

  std::vector<int64_t> key(int kind, int extra) const {
    return {kind, extra, useBf16 ? 1 : 0, nhwcBackward ? 1 : 0, n, h, w, ci, kh, kw, co, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr};
  }

  // The forward description, also the "hint" the backward primitives need.
  // With `sum` the primitive adds what dst holds before it writes (a residual copied there first),
  // then applies the ReLU: oneDNN's fused conv + sum + ReLU, the residual block's tail.
  // With `bf16Dst` it writes dst in bf16 (packed: see bf16 storage).
  dnnl::convolution_forward::primitive_desc forward(prop_kind prop, bool bias, bool relu, bool sum = false,
                                                    bool bf16Dst = false) const {
    memory::desc biasDesc = bias ? memory::desc({co}, dt::f32, tag::x) : memory::desc();
    memory::desc dstDesc = bf16Dst ? packedDesc(n, co, oh, ow) : dst();
    dnnl::convolution_forward::desc d(prop, algorithm::convolution_direct, srcIn(), anyWeights(), biasDesc, dstDesc,
                                      strides(), dilates(), padL(), padR());
    dnnl::primitive_attr attr;
    dnnl::post_ops ops;
    if (sum) ops.append_sum(1.f);
    if (relu) ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
    if (sum || relu) attr.set_post_ops(ops);
    return {d, attr, cpu()};
  }
};

// Primitive descriptors take a dispatch over implementations to create; keep one per geometry.
template <typename Primitive>
struct Cached {
  typename Primitive::primitive_desc pd;
  Primitive primitive;
};

template <typename Primitive>
using Cache = std::map<std::vector<int64_t>, std::unique_ptr<Cached<Primitive>>>;

template <typename Primitive, typename MakeDesc>
Cached<Primitive>& cached(Cache<Primitive>& cache, const std::vector<int64_t>& key, MakeDesc makeDesc) {
  auto& slot = cache[key];
  if (!slot) {
    typename Primitive::primitive_desc pd = makeDesc();
    slot.reset(new Cached<Primitive>{pd, Primitive(pd)});
  }
  return *slot;
}

// Reordered copies live in a few buffers that every call reuses (calls run one at a time, on one
// stream) and that grow to the largest tensor seen: allocating them per call cost page faults worth
// more than what bf16 saves.
enum Slot { kSrc, kWeights, kDiffDst, kOut, kSlots };

// A page-aligned buffer that grows to the largest size asked of it and is reused after that.
struct Buffer {
  void* data = nullptr;
  size_t size = 0;

  void* reserve(size_t want) {
    if (want > size) {
      std::free(data);
      size = (want + 4095) / 4096 * 4096;
      data = std::aligned_alloc(4096, size);
      if (!data) {
        size = 0;
        throw std::bad_alloc();
      }
    }
    return data;
  }
  void release() {
    std::free(data);
    data = nullptr;
    size = 0;
  }
};

memory scratch(const memory::desc& d, Slot slot) {
  static Buffer buffers[kSlots];
  return memory(d, cpu(), buffers[slot].reserve(d.get_size()));
}

// ---- bf16 storage ----
// In bf16, a tensor that only these kernels read can be written as bf16 into the first half of its own
// float32 buffer: "packed" (a BatchNorm + ReLU's output that only a convolution reads, a BatchNorm
// gradient's dx, a convolution's output that only its BatchNorm reads, a block's output; which ones is
// JavaScript's choice, lib/engine/bf16-storage.ts). The writer converts, as oneDNN's reorder would have,
// and the readers read it in place; JavaScript marks which tensors are packed and expands one back
// (expandBf16) before anything else reads it.

// float → bf16 as oneDNN's reorder converts on AVX512_BF16 (vcvtneps2bf16), bit for bit: round to nearest
// even, denormals to a signed zero, NaN kept a (quiet) NaN.
inline uint16_t bf16Of(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// n floats to bf16 with the conversion instruction itself, 16 at a time (bf16Of for the rest). Packing
// happens only in bf16, which needs a CPU with AVX512_BF16 (bf16Native).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void bf16Row(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh b = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<__m256i&>(b));
  }
  for (; i < n; i++) out[i] = bf16Of(in[i]);
}

inline float floatOfBf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

// Packed data is converted in chunks of this many values.
constexpr size_t kChunk = 4096;

// Element i of a float32 or a packed bf16 array, as a float.
inline float valueAt(const float* p, size_t i) { return p[i]; }
inline float valueAt(const uint16_t* p, size_t i) { return floatOfBf16(p[i]); }

// Calls f with p typed as what it holds: float32, or with `packed` bf16 (a null p stays null).
template <typename F>
void asStored(const float* p, bool packed, F f) {
  if (packed)
    f(reinterpret_cast<const uint16_t*>(p));
  else
    f(p);
}

// An input in the layout and type a primitive wants: a view of the user's buffer, or a reordered (and in
// bf16, converted) copy.
memory inputFor(const memory::desc& wanted, const memory::desc& userDesc, void* data, Slot slot) {
  memory user(userDesc, cpu(), data);
  if (wanted == userDesc) return user;
  memory reordered = scratch(wanted, slot);
  dnnl::reorder(user, reordered).execute(cpuStream(), user, reordered);
  return reordered;
}

// Inference's filters, reordered once. A forward pass on weights that stay the same (evaluation,
// feature extraction, predict, val passes) would reorder every filter, and in bf16 convert it, at every
// call: 5-10% of the pass. JavaScript gives such a call a key naming the filter's data (0: none, as in a
// training pass, whose filters change at every step); data never changes under its key, so a copy stays
// right until it is evicted, least recently used first, beyond `capacity` bytes.
struct FilterCopy {
  double key;
  memory::desc desc;
  void* data;
  size_t size;
};

struct FilterCache {
  std::list<FilterCopy> copies;  // most recently used first
  size_t bytes = 0;
  size_t capacity = size_t(256) << 20;
  double hits = 0, misses = 0;

  void evictTo(size_t limit) {
    while (bytes > limit && !copies.empty()) {
      bytes -= copies.back().size;
      std::free(copies.back().data);
      copies.pop_back();
    }
  }
};

FilterCache& filterCache() {
  static FilterCache cache;
  return cache;
}

memory weightsFor(const memory::desc& wanted, const Geometry& g, float* data, double key = 0) {
  FilterCache& c = filterCache();
  if (key <= 0 || c.capacity == 0 || wanted == g.userWeights()) return inputFor(wanted, g.userWeights(), data, kWeights);
  for (auto it = c.copies.begin(); it != c.copies.end(); ++it) {
    if (it->key == key && it->desc == wanted) {
      c.copies.splice(c.copies.begin(), c.copies, it);
      c.hits++;
      return memory(wanted, cpu(), c.copies.front().data);
    }
  }
  size_t size = wanted.get_size();
  c.evictTo(c.capacity > size ? c.capacity - size : 0);
  void* buffer = std::aligned_alloc(4096, (size + 4095) / 4096 * 4096);
  if (!buffer) throw std::bad_alloc();
  memory user(g.userWeights(), cpu(), data), copy(wanted, cpu(), buffer);
  dnnl::reorder(user, copy).execute(cpuStream(), user, copy);
  c.copies.push_front({key, wanted, buffer, size});
  c.bytes += size;
  c.misses++;
  return copy;
}

// The backward pass's converted inputs, kept for the next call. In bf16 both gradients of a convolution
// read its output gradient dy converted to bf16 in the same layout, and the two filter
// gradients of convolutions that share an input (a stage's first block) read it so too; converting
// it once per gradient made a third of the backward pass's input conversions (47 of 140 in a ResNet50
// step). JavaScript passes keys naming the data (as for filters: data never changes under its key).
// The copies live in a few slots whose buffers are reused, least recently used first: calls for one
// convolution are adjacent, and fresh buffers per call would cost page faults.
struct GradientInput {
  double key = 0;
  memory::desc desc;
  Buffer buffer;
  uint64_t used = 0;
};

struct GradientInputs {
  std::vector<GradientInput> slots = std::vector<GradientInput>(3);
  uint64_t clock = 0;
  double hits = 0, misses = 0;

  void resize(size_t count) {
    for (GradientInput& s : slots) s.buffer.release();
    slots.assign(count, GradientInput{});
  }
  size_t bytes() const {
    size_t total = 0;
    for (const GradientInput& s : slots) total += s.buffer.size;
    return total;
  }
};

GradientInputs& gradientInputs() {
  static GradientInputs inputs;
  return inputs;
}

memory gradientInputFor(const memory::desc& wanted, const memory::desc& userDesc, void* data, double key, Slot slot) {
  GradientInputs& c = gradientInputs();
  if (key <= 0 || c.slots.empty() || wanted == userDesc) return inputFor(wanted, userDesc, data, slot);
  GradientInput* oldest = &c.slots[0];
  for (GradientInput& s : c.slots) {
    if (s.key == key && s.desc == wanted) {
      s.used = ++c.clock;
      c.hits++;
      return memory(wanted, cpu(), s.buffer.data);
    }
    if (s.used < oldest->used) oldest = &s;
  }
  oldest->key = 0;  // until the copy below is made
  memory user(userDesc, cpu(), data), copy(wanted, cpu(), oldest->buffer.reserve(wanted.get_size()));
  dnnl::reorder(user, copy).execute(cpuStream(), user, copy);
  oldest->key = key;
  oldest->desc = wanted;
  oldest->used = ++c.clock;
  c.misses++;
  return copy;
}

// ---- N-API plumbing ----

struct CallError {
  std::string message;
};

void check(napi_env env, napi_status status, const char* what) {
  if (status != napi_ok) throw CallError{std::string("boat_native: ") + what};
}

// A Float32Array's data (it may live on a SharedArrayBuffer: the threaded wasm heap).
float* floats(napi_env env, napi_value value, size_t expected, const char* name) {
  bool isTyped = false;
  check(env, napi_is_typedarray(env, value, &isTyped), "napi_is_typedarray");
  if (!isTyped) throw CallError{std::string("boat_native: ") + name + " must be a Float32Array"};
  napi_typedarray_type type;
  size_t length;
  void* data;
  check(env, napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr), "napi_get_typedarray_info");
  if (type != napi_float32_array) throw CallError{std::string("boat_native: ") + name + " must be a Float32Array"};
  if (length != expected) {
    throw CallError{std::string("boat_native: ") + name + " has " + std::to_string(length) + " values, expected " +
                    std::to_string(expected)};
  }
  return static_cast<float*>(data);
}

std::vector<int64_t> int32s(napi_env env, napi_value value, size_t expected, const char* name) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  check(env, napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr), name);
  if (type != napi_int32_array || length != expected)
    throw CallError{std::string("boat_native: ") + name + " must be an Int32Array of " + std::to_string(expected) +
                    " values"};
  const int32_t* v = static_cast<const int32_t*>(data);
  return std::vector<int64_t>(v, v + length);
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Geometry geometry(napi_env env, napi_value value) {
  auto v = int32s(env, value, 17, "geometry");
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16]};
}

std::vector<napi_value> arguments(napi_env env, napi_callback_info info, size_t count) {
  std::vector<napi_value> args(count);
  size_t got = count;
  check(env, napi_get_cb_info(env, info, &got, args.data(), nullptr, nullptr), "napi_get_cb_info");
  if (got < count) throw CallError{"boat_native: expected " + std::to_string(count) + " arguments"};
  return args;
}

bool isNullish(napi_env env, napi_value value) {
  napi_valuetype t;
  check(env, napi_typeof(env, value, &t), "napi_typeof");
  return t == napi_null || t == napi_undefined;
}

// An optional argument after a call's required ones: nullptr when absent, null or undefined.
napi_value optionalArgument(napi_env env, napi_callback_info info, size_t index) {
  size_t got = index + 1;
  std::vector<napi_value> args(got);
  check(env, napi_get_cb_info(env, info, &got, args.data(), nullptr, nullptr), "napi_get_cb_info");
  return got <= index || isNullish(env, args[index]) ? nullptr : args[index];
}

// An optional data key after a call's arguments (absent or null: 0, no key).
double dataKey(napi_env env, napi_callback_info info, size_t index) {
  napi_value arg = optionalArgument(env, info, index);
  double key = 0;
  if (arg) check(env, napi_get_value_double(env, arg, &key), "a data key must be a number");
  return key;
}

template <typename F>
napi_value guarded(napi_env env, F body) {
  try {
    body();
  } catch (const CallError& e) {
    napi_throw_error(env, nullptr, e.message.c_str());
  } catch (const dnnl::error& e) {
    napi_throw_error(env, nullptr, (std::string("oneDNN: ") + e.what()).c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

// ---- the three convolutions ----

// Copies n floats over the OpenMP threads (a residual into the output, before the fused sum).
void copyFloats(const float* from, float* to, size_t n) {
  const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < (int64_t)((n + chunk - 1) / chunk); c++) {
    size_t begin = c * chunk;
    std::copy(from + begin, from + std::min(n, begin + chunk), to + begin);
  }
}

// y = relu?(conv(x, filter) + bias + add): a[0..5] as conv2d's, and with `withAdd` the residual add (y's shape) in a[6].
// packed: 1 when x holds bf16, 2 to write y as bf16 (see bf16 storage).
void convForward(napi_env env, const std::vector<napi_value>& a, bool withAdd, double key, int32_t packed) {
  const bool packedX = packed & 1, packY = packed & 2;
  if (packY && withAdd) throw CallError{"boat_native: a convolution with a residual add writes float32"};
  Geometry g = geometry(env, a[0]);
  float* x = floats(env, a[1], g.srcSize(), "x");
  float* w = floats(env, a[2], g.weightsSize(), "filter");
  bool hasBias = !isNullish(env, a[3]);
  float* b = hasBias ? floats(env, a[3], g.co, "bias") : nullptr;
  float* y = floats(env, a[4], g.dstSize(), "y");
  bool relu = false;
  check(env, napi_get_value_bool(env, a[5], &relu), "relu must be a boolean");
  // The residual goes into y first; the primitive's sum post-op adds the convolution to it.
  // (Unless y is the residual's own buffer: JavaScript lets the kernel write in place when nothing
  // else reads the residual.)
  if (withAdd) {
    const float* add = floats(env, a[6], g.dstSize(), "add");
    if (add != y) copyFloats(add, y, g.dstSize());
  }

  static Cache<dnnl::convolution_forward> cache;
  auto& conv = cached(cache, g.key(0, (hasBias ? 1 : 0) | (relu ? 2 : 0) | (withAdd ? 4 : 0) | (packY ? 8 : 0)),
                      [&] { return g.forward(prop_kind::forward_inference, hasBias, relu, withAdd, packY); });
  memory::desc userSrc = packedX ? packedDesc(g.n, g.ci, g.h, g.w) : g.src();
  memory src = inputFor(conv.pd.src_desc(), userSrc, x, kSrc);
  memory dst(packY ? packedDesc(g.n, g.co, g.oh, g.ow) : g.dst(), cpu(), y);
  memory weights = weightsFor(conv.pd.weights_desc(), g, w, key);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
  if (hasBias) args.insert({DNNL_ARG_BIAS, memory({{g.co}, dt::f32, tag::x}, cpu(), b)});
  conv.primitive.execute(cpuStream(), args);
  cpuStream().wait();
}

// Optional flags after a call's arguments (absent or null: 0), bits naming its packed tensors.
int32_t flagsArgument(napi_env env, napi_callback_info info, size_t index) {
  napi_value arg = optionalArgument(env, info, index);
  int32_t flags = 0;
  if (arg) check(env, napi_get_value_int32(env, arg, &flags), "flags must be a number");
  if (flags && !useBf16) throw CallError{"boat_native: packed bf16 tensors need the bf16 precision"};
  return flags;
}

// conv2d(geometry, x, filter, bias | null, y, relu[, filterKey, packed]): y = relu?(conv(x, filter) + bias);
// packed: 1 when x is packed bf16, 2 to write y packed
napi_value Conv2D(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    convForward(env, arguments(env, info, 6), false, dataKey(env, info, 6), flagsArgument(env, info, 7));
  });
}

// conv2dAdd(geometry, x, filter, bias | null, y, relu, add[, filterKey, packed]): y = relu?(conv(x, filter) +
// bias + add) in one primitive, a residual block's tail. A name of its own, so that JavaScript can tell an
// addon built without it.
napi_value Conv2DAdd(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    convForward(env, arguments(env, info, 7), true, dataKey(env, info, 7), flagsArgument(env, info, 8) & 1);
  });
}

// conv2dBackpropInput(geometry, dy, filter, dx[, dyKey, packed]): dx = the gradient of conv(x, filter)
// w.r.t. x; packed: 1 when dy is packed bf16
napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 4);
    double dyKey = dataKey(env, info, 4);
    bool packedDy = flagsArgument(env, info, 5) & 1;
    Geometry g = geometry(env, a[0]);
    float* dy = floats(env, a[1], g.dstSize(), "dy");
    float* w = floats(env, a[2], g.weightsSize(), "filter");
    float* dx = floats(env, a[3], g.srcSize(), "dx");

    static Cache<dnnl::convolution_backward_data> cache;
    auto& conv = cached(cache, g.key(1, 0), [&] {
      memory::desc diffSrc({g.n, g.ci, g.h, g.w}, dt::f32, g.inputTag());
      dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, diffSrc, g.anyWeights(), g.dstIn(), g.strides(),
                                              g.dilates(), g.padL(), g.padR());
      return dnnl::convolution_backward_data::primitive_desc(d, cpu(), g.forward(prop_kind::forward_training, false, false));
    });
    memory::desc userDy = packedDy ? packedDesc(g.n, g.co, g.oh, g.ow) : g.dst();
    memory diffDst = gradientInputFor(conv.pd.diff_dst_desc(), userDy, dy, dyKey, kDiffDst);
    memory weights = weightsFor(conv.pd.weights_desc(), g, w);
    memory user(g.src(), cpu(), dx);
    bool direct = conv.pd.diff_src_desc() == g.src();
    memory diffSrc = direct ? user : scratch(conv.pd.diff_src_desc(), kOut);
    conv.primitive.execute(cpuStream(), {{DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diffSrc}});
    if (!direct) dnnl::reorder(diffSrc, user).execute(cpuStream(), diffSrc, user);
    cpuStream().wait();
  });
}

// conv2dBackpropFilter(geometry, x, dy, dw[, xKey, dyKey, packed]): dw = the gradient of conv(x, filter)
// w.r.t. filter; packed: 1 when x is packed bf16, 2 when dy is
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 4);
    double xKey = dataKey(env, info, 4), dyKey = dataKey(env, info, 5);
    int32_t packed = flagsArgument(env, info, 6);
    Geometry g = geometry(env, a[0]);
    float* x = floats(env, a[1], g.srcSize(), "x");
    float* dy = floats(env, a[2], g.dstSize(), "dy");
    float* dw = floats(env, a[3], g.weightsSize(), "dw");

    static Cache<dnnl::convolution_backward_weights> cache;
    auto& conv = cached(cache, g.key(2, 0), [&] {
      // fp32 gradients, also in bf16 (oneDNN accumulates in fp32 and writes them as such)
      memory::desc diffWeights({g.co, g.ci, g.kh, g.kw}, dt::f32, tag::any);
      dnnl::convolution_backward_weights::desc d(algorithm::convolution_direct, g.srcIn(), diffWeights, g.dstIn(), g.strides(),
                                                 g.dilates(), g.padL(), g.padR());
      return dnnl::convolution_backward_weights::primitive_desc(d, cpu(), g.forward(prop_kind::forward_training, false, false));
    });
    memory::desc userX = packed & 1 ? packedDesc(g.n, g.ci, g.h, g.w) : g.src();
    memory::desc userDy = packed & 2 ? packedDesc(g.n, g.co, g.oh, g.ow) : g.dst();
    memory src = gradientInputFor(conv.pd.src_desc(), userX, x, xKey, kSrc);
    memory diffDst = gradientInputFor(conv.pd.diff_dst_desc(), userDy, dy, dyKey, kDiffDst);
    memory user(g.userWeights(), cpu(), dw);
    bool direct = conv.pd.diff_weights_desc() == g.userWeights();
    memory diffWeights = direct ? user : scratch(conv.pd.diff_weights_desc(), kOut);
    conv.primitive.execute(cpuStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_DIFF_WEIGHTS, diffWeights}});
    if (!direct) dnnl::reorder(diffWeights, user).execute(cpuStream(), diffWeights, user);
    cpuStream().wait();
  });
}

// ---- the matrix product ----

// matMul(dims, a, b, bias | null, c, relu): c = relu?(a·b + bias) batched, where dims is an
// Int32Array [batchA, batchB, m, k, n, transposeA, transposeB] (a batch of 1 broadcasts), a is
// [batchA, m, k] ([batchA, k, m] when transposed), b is [batchB, k, n] ([batchB, n, k]), c is
// [max(batchA, batchB), m, n] and bias has n values.
napi_value MatMul(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 6);
    auto v = int32s(env, a[0], 7, "dims");
    memory::dim ba = v[0], bb = v[1], m = v[2], k = v[3], n = v[4];
    bool ta = v[5] != 0, tb = v[6] != 0;
    if (ba != bb && ba != 1 && bb != 1) throw CallError{"boat_native: matMul batches must match or be 1"};
    memory::dim bc = std::max(ba, bb);
    float* x = floats(env, a[1], ba * m * k, "a");
    float* y = floats(env, a[2], bb * k * n, "b");
    bool hasBias = !isNullish(env, a[3]);
    float* bias = hasBias ? floats(env, a[3], n, "bias") : nullptr;
    float* out = floats(env, a[4], bc * m * n, "c");
    bool relu = false;
    check(env, napi_get_value_bool(env, a[5], &relu), "relu must be a boolean");

    // The user's buffers, transposed ones read through their strides.
    memory::desc userA({ba, m, k}, dt::f32, ta ? memory::dims{k * m, 1, m} : memory::dims{m * k, k, 1});
    memory::desc userB({bb, k, n}, dt::f32, tb ? memory::dims{n * k, 1, k} : memory::dims{k * n, n, 1});
    memory::desc userC({bc, m, n}, dt::f32, tag::abc);
    memory::desc biasDesc({1, 1, n}, dt::f32, tag::abc);

    static std::map<std::vector<int64_t>, std::unique_ptr<Cached<dnnl::matmul>>> cache;
    auto& mm = cached(cache, {3, (hasBias ? 1 : 0) | (relu ? 2 : 0), useBf16 ? 1 : 0, ba, bb, m, k, n, ta, tb}, [&] {
      memory::desc srcDesc = useBf16 ? memory::desc({ba, m, k}, dt::bf16, tag::abc) : userA;
      memory::desc weightsDesc = useBf16 ? memory::desc({bb, k, n}, dt::bf16, tag::any) : userB;
      dnnl::matmul::desc d = hasBias ? dnnl::matmul::desc(srcDesc, weightsDesc, biasDesc, userC)
                                     : dnnl::matmul::desc(srcDesc, weightsDesc, userC);
      dnnl::primitive_attr attr;
      if (relu) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
        attr.set_post_ops(ops);
      }
      return dnnl::matmul::primitive_desc(d, attr, cpu());
    });
    memory src = inputFor(mm.pd.src_desc(), userA, x, kSrc);
    memory weights = inputFor(mm.pd.weights_desc(), userB, y, kWeights);
    memory dst(userC, cpu(), out);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (hasBias) args.insert({DNNL_ARG_BIAS, memory(biasDesc, cpu(), bias)});
    mm.primitive.execute(cpuStream(), args);
    cpuStream().wait();
  });
}

// ---- BatchNorm over the last axis of x viewed as [rows, channels] ----
// tfjs' wasm BatchNorm runs on one thread, and a training BatchNorm composed of its reductions cost
// more than the convolutions. These are plain loops; OpenMP splits the rows.

int32_t intArg(napi_env env, napi_value v, const char* name) {
  int32_t n = 0;
  check(env, napi_get_value_int32(env, v, &n), name);
  return n;
}

double doubleArg(napi_env env, napi_value v, const char* name) {
  double d = 0;
  check(env, napi_get_value_double(env, v, &d), name);
  return d;
}

size_t lengthOf(napi_env env, napi_value v, const char* name) {
  bool isTyped = false;
  check(env, napi_is_typedarray(env, v, &isTyped), "napi_is_typedarray");
  if (!isTyped) throw CallError{std::string("boat_native: ") + name + " must be a Float32Array"};
  napi_typedarray_type type;
  size_t length;
  check(env, napi_get_typedarray_info(env, v, &type, &length, nullptr, nullptr, nullptr), "napi_get_typedarray_info");
  return length;
}

// ReLU's step as tfjs computes its gradient: 1 where v > 0, NaN where v is NaN, else 0. Two flat
// selects, which GCC vectorizes (a nested one it leaves as branches, 10× slower on mixed signs).
inline float reluStep(float v) {
  float positive = v > 0.f ? 1.f : 0.f;
  return v != v ? v : positive;
}

// Per-channel sums over the rows of x (and of x·y when y is given), in double, split over threads.
// With `mask` (a ReLU's output, y's shape) y counts as y·step(mask): the gradient through that ReLU.
// x and the mask are float32, or packed bf16 as uint16_t (see bf16 storage).
template <typename X, typename M = float>
void channelSums(const X* x, const float* y, size_t rows, size_t c, const float* shift, const float* scale,
                 std::vector<double>& sumX, std::vector<double>& sumXY, const M* mask = nullptr) {
  sumX.assign(c, 0.0);
  sumXY.assign(c, 0.0);
#pragma omp parallel
  {
    std::vector<double> px(c, 0.0), pxy(c, 0.0);
    std::vector<float> fx(c), fxy(c);
#pragma omp for schedule(static)
    for (int64_t block = 0; block < (int64_t)((rows + 63) / 64); block++) {
      // float partials over 64 rows, then into double: fast and accurate enough
      std::fill(fx.begin(), fx.end(), 0.f);
      std::fill(fxy.begin(), fxy.end(), 0.f);
      size_t end = std::min(rows, (size_t)(block + 1) * 64);
      for (size_t r = block * 64; r < end; r++) {
        const X* xr = x + r * c;
        if (y && mask) {
          const float* yr = y + r * c;
          const M* mr = mask + r * c;
#pragma omp simd
          for (size_t k = 0; k < c; k++) {
            float v = yr[k] * reluStep(valueAt(mr, k));
            fx[k] += v;
            fxy[k] += v * (valueAt(xr, k) - shift[k]) * scale[k];
          }
        } else if (y) {
          const float* yr = y + r * c;
          for (size_t k = 0; k < c; k++) {
            fx[k] += yr[k];
            fxy[k] += yr[k] * (valueAt(xr, k) - shift[k]) * scale[k];
          }
        } else {
          for (size_t k = 0; k < c; k++) {
            float d = valueAt(xr, k) - shift[k];
            fx[k] += d;
            fxy[k] += d * d;
          }
        }
      }
      for (size_t k = 0; k < c; k++) {
        px[k] += fx[k];
        pxy[k] += fxy[k];
      }
    }
#pragma omp critical
    for (size_t k = 0; k < c; k++) {
      sumX[k] += px[k];
      sumXY[k] += pxy[k];
    }
  }
}

// y = x·a + b per channel, and with `relu` x·a + b where it is not negative, else 0 (a NaN passes through);
// with `packed`, y is written as packed bf16 (see bf16 storage)
template <typename X>
void affine(const X* x, float* y, size_t rows, size_t c, const float* a, const float* b, bool relu = false,
            bool packed = false) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < (int64_t)rows; r++) {
    const X* xr = x + r * c;
    float* yr = y + r * c;
    if (packed) {
      thread_local std::vector<float> row;
      row.resize(c);
      for (size_t k = 0; k < c; k++) {
        float v = valueAt(xr, k) * a[k] + b[k];
        row[k] = relu && v < 0.f ? 0.f : v;
      }
      bf16Row(row.data(), reinterpret_cast<uint16_t*>(y) + r * c, c);
    } else if (relu) {
      for (size_t k = 0; k < c; k++) {
        float v = valueAt(xr, k) * a[k] + b[k];
        yr[k] = v < 0.f ? 0.f : v;
      }
    } else {
      for (size_t k = 0; k < c; k++) yr[k] = valueAt(xr, k) * a[k] + b[k];
    }
  }
}

// batchNorm(x, mean, variance, offset | null, scale | null, epsilon, y[, packed]): inference with given
// statistics. batchNormRelu(…): the same followed by a ReLU, in the same pass. packed: 1 to write y as
// packed bf16, 2 when x is packed.
void batchNormInference(napi_env env, napi_callback_info info, bool relu) {
  auto a = arguments(env, info, 7);
  const int32_t flags = flagsArgument(env, info, 7);
  const bool packY = flags & 1;
  size_t c = lengthOf(env, a[1], "mean");
  size_t total = lengthOf(env, a[0], "x");
  if (c == 0 || total % c) throw CallError{"boat_native: x's size is not a multiple of the channels"};
  const float* x = floats(env, a[0], total, "x");
  const float* mean = floats(env, a[1], c, "mean");
  const float* var = floats(env, a[2], c, "variance");
  const float* offset = isNullish(env, a[3]) ? nullptr : floats(env, a[3], c, "offset");
  const float* scale = isNullish(env, a[4]) ? nullptr : floats(env, a[4], c, "scale");
  double eps = doubleArg(env, a[5], "epsilon");
  float* y = floats(env, a[6], total, "y");
  std::vector<float> mul(c), add(c);
  for (size_t k = 0; k < c; k++) {
    mul[k] = (scale ? scale[k] : 1.f) / std::sqrt((float)(var[k] + eps));
    add[k] = (offset ? offset[k] : 0.f) - mean[k] * mul[k];
  }
  asStored(x, flags & 2, [&](auto xs) { affine(xs, y, total / c, c, mul.data(), add.data(), relu, packY); });
}

napi_value BatchNorm(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormInference(env, info, false); });
}

napi_value BatchNormRelu(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormInference(env, info, true); });
}

// batchNormTrain(x, gamma, beta, epsilon, y, mean, variance, invStd[, packed]): normalise with the batch's
// own statistics (biased variance, as tf.moments); writes them too. batchNormTrainRelu(…): then a ReLU, in
// the same pass (a conv → BatchNorm → ReLU chain's middle, where nothing else reads the BatchNorm's output).
// packed: 1 to write y as packed bf16, 2 when x is packed.
template <typename X>
void batchNormTrainOf(const X* x, size_t rows, size_t c, const float* gamma, const float* beta, double eps, float* y,
                      float* mean, float* variance, float* invStd, bool relu, bool packY);

void batchNormTrain(napi_env env, napi_callback_info info, bool relu) {
  auto a = arguments(env, info, 8);
  const int32_t flags = flagsArgument(env, info, 8);
  size_t c = lengthOf(env, a[1], "gamma");
  size_t total = lengthOf(env, a[0], "x");
  if (c == 0 || total % c) throw CallError{"boat_native: x's size is not a multiple of the channels"};
  size_t rows = total / c;
  const float* x = floats(env, a[0], total, "x");
  const float* gamma = floats(env, a[1], c, "gamma");
  const float* beta = floats(env, a[2], c, "beta");
  double eps = doubleArg(env, a[3], "epsilon");
  float* y = floats(env, a[4], total, "y");
  float* mean = floats(env, a[5], c, "mean");
  float* variance = floats(env, a[6], c, "variance");
  float* invStd = floats(env, a[7], c, "invStd");
  asStored(x, flags & 2, [&](auto xs) {
    batchNormTrainOf(xs, rows, c, gamma, beta, eps, y, mean, variance, invStd, relu, flags & 1);
  });
}

template <typename X>
void batchNormTrainOf(const X* x, size_t rows, size_t c, const float* gamma, const float* beta, double eps, float* y,
                      float* mean, float* variance, float* invStd, bool relu, bool packY) {
  // One pass over x for both sums, of deviations from a shift near the mean, so that a large mean does
  // not cancel the variance away: the mean of up to 64 rows spread over x (a second full pass for the
  // mean first cost a sixth of the kernel's time, and a fixed row such as the first can be an outlier:
  // a corner of a zero-padded convolution's output).
  std::vector<float> shift(c, 0.f), one(c, 1.f);
  const size_t samples = std::min<size_t>(rows, 64);
  for (size_t k = 0; k < c; k++) {
    double total = 0;
    for (size_t i = 0; i < samples; i++) total += valueAt(x, (i * rows / samples) * c + k);
    shift[k] = (float)(total / samples);
  }
  std::vector<double> dev, sq;
  channelSums(x, nullptr, rows, c, shift.data(), one.data(), dev, sq);
  std::vector<float> mul(c), add(c);
  for (size_t k = 0; k < c; k++) {
    double d = dev[k] / rows;
    mean[k] = (float)(shift[k] + d);
    variance[k] = (float)(sq[k] / rows - d * d);
    invStd[k] = 1.f / std::sqrt(variance[k] + (float)eps);
    mul[k] = gamma[k] * invStd[k];
    add[k] = beta[k] - mean[k] * mul[k];
  }
  affine(x, y, rows, c, mul.data(), add.data(), relu, packY);
}

napi_value BatchNormTrain(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormTrain(env, info, false); });
}

napi_value BatchNormTrainRelu(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormTrain(env, info, true); });
}

// The arguments of both BatchNorm gradients, (dy, x, mean, invStd, gamma, dx, dGamma, dBeta) with dy, x
// and dx viewed as [rows, c], and what both compute first, with x̂ = (x − mean)·invStd:
//   dβ = Σdy,  dγ = Σ(dy·x̂)
// Their ReLU variants take the ReLU's output y last and read dy·step(y) wherever they read dy: the
// gradient through the ReLU, without the activation-sized tensor ReLU's own gradient would write.
struct BatchNormGrad {
  size_t c, rows;
  const float *dy, *x, *mean, *invStd, *gamma, *reluOut = nullptr;
  bool xPacked = false, reluOutPacked = false;  // bf16 storage
  float *dx, *dGamma, *dBeta;
  std::vector<double> sumDy, sumDyXHat;
  // Optional, after the arguments: dx's column sums (the bias gradient of the convolution before it),
  // then flags: 1 when y is packed bf16, 2 to write dx packed, 4 when x is packed.
  float* dxSums = nullptr;
  bool packDx = false;

  // Calls f(x, mask) with x and the ReLU's output typed as they are stored (the mask null without a ReLU).
  template <typename F>
  void withInputs(F f) const {
    asStored(x, xPacked, [&](auto xs) { asStored(reluOut, reluOutPacked, [&](auto mask) { f(xs, mask); }); });
  }
};

// dx row by row through `row(r, dxr)`, and its column sums when asked: rows go in blocks of 64 split
// statically between the threads and are summed as channelSums sums them (float within a block, then
// double), so that the sums equal columnSums' of dx bit for bit.
template <typename Row>
void writeGradRows(BatchNormGrad& g, Row row) {
  const size_t c = g.c;
  const bool sums = g.dxSums != nullptr;
  std::vector<double> total(sums ? c : 0, 0.0);
#pragma omp parallel
  {
    std::vector<double> partial(sums ? c : 0, 0.0);
    std::vector<float> block(sums ? c : 0, 0.f);
    std::vector<float> packedRow(g.packDx ? c : 0);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (int64_t)((g.rows + 63) / 64); b++) {
      std::fill(block.begin(), block.end(), 0.f);
      const size_t end = std::min(g.rows, (size_t)(b + 1) * 64);
      for (size_t r = b * 64; r < end; r++) {
        // A packed dx is computed in float32 (its sums too), then converted
        float* dxr = g.packDx ? packedRow.data() : g.dx + r * c;
        row(r, dxr);
        if (sums)
          for (size_t k = 0; k < c; k++) block[k] += dxr[k];
        if (g.packDx) bf16Row(dxr, reinterpret_cast<uint16_t*>(g.dx) + r * c, c);
      }
      for (size_t k = 0; k < block.size(); k++) partial[k] += block[k];
    }
    if (sums) {
#pragma omp critical
      for (size_t k = 0; k < c; k++) total[k] += partial[k];
    }
  }
  for (size_t k = 0; k < total.size(); k++) g.dxSums[k] = (float)total[k];
}

BatchNormGrad batchNormGrad(napi_env env, napi_callback_info info, bool relu) {
  auto a = arguments(env, info, relu ? 9 : 8);
  BatchNormGrad g;
  g.c = lengthOf(env, a[2], "mean");
  size_t total = lengthOf(env, a[0], "dy");
  if (g.c == 0 || total % g.c) throw CallError{"boat_native: dy's size is not a multiple of the channels"};
  g.rows = total / g.c;
  g.dy = floats(env, a[0], total, "dy");
  g.x = floats(env, a[1], total, "x");
  g.mean = floats(env, a[2], g.c, "mean");
  g.invStd = floats(env, a[3], g.c, "invStd");
  g.gamma = floats(env, a[4], g.c, "gamma");
  g.dx = floats(env, a[5], total, "dx");
  g.dGamma = floats(env, a[6], g.c, "dGamma");
  g.dBeta = floats(env, a[7], g.c, "dBeta");
  if (relu) g.reluOut = floats(env, a[8], total, "y");
  const int32_t flags = flagsArgument(env, info, relu ? 10 : 9);
  g.reluOutPacked = flags & 1;
  g.packDx = flags & 2;
  g.xPacked = flags & 4;
  if (napi_value sums = optionalArgument(env, info, relu ? 9 : 8)) g.dxSums = floats(env, sums, g.c, "dx's column sums");
  g.withInputs([&](auto x, auto mask) {
    channelSums(x, g.dy, g.rows, g.c, g.mean, g.invStd, g.sumDy, g.sumDyXHat, mask);
  });
  for (size_t k = 0; k < g.c; k++) {
    g.dBeta[k] = (float)g.sumDy[k];
    g.dGamma[k] = (float)g.sumDyXHat[k];
  }
  return g;
}

// batchNormTrainGrad(…): the batch statistics depend on x, so
//   dx = γ·invStd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))
void batchNormTrainGrad(napi_env env, napi_callback_info info, bool relu) {
  BatchNormGrad g = batchNormGrad(env, info, relu);
  size_t c = g.c;
  std::vector<float> k1(c), k2(c), k3(c);
  for (size_t k = 0; k < c; k++) {
    float s = g.gamma[k] * g.invStd[k];
    // dx = s·dy − s/M·Σdy − s/M·Σ(dy·x̂)·invStd·(x − mean)
    k1[k] = s;
    k2[k] = (float)(s * g.sumDyXHat[k] / g.rows) * g.invStd[k];
    k3[k] = (float)(s * g.sumDy[k] / g.rows) - k2[k] * g.mean[k];
  }
  g.withInputs([&](auto x, auto mask) {
    writeGradRows(g, [&](size_t r, float* dxr) {
      const float* dyr = g.dy + r * c;
      const auto* xr = x + r * c;
      if (mask) {
        const auto* yr = mask + r * c;
#pragma omp simd
        for (size_t k = 0; k < c; k++)
          dxr[k] = k1[k] * (dyr[k] * reluStep(valueAt(yr, k))) - k2[k] * valueAt(xr, k) - k3[k];
      } else {
        for (size_t k = 0; k < c; k++) dxr[k] = k1[k] * dyr[k] - k2[k] * valueAt(xr, k) - k3[k];
      }
    });
  });
}

napi_value BatchNormTrainGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormTrainGrad(env, info, false); });
}

// batchNormTrainReluGrad(dy, x, mean, invStd, gamma, dx, dGamma, dBeta, y)
napi_value BatchNormTrainReluGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormTrainGrad(env, info, true); });
}

// batchNormFrozenGrad(…): the statistics are given (moving) constants, so dx = γ·invStd·dy
void batchNormFrozenGrad(napi_env env, napi_callback_info info, bool relu) {
  BatchNormGrad g = batchNormGrad(env, info, relu);
  std::vector<float> scale(g.c);
  for (size_t k = 0; k < g.c; k++) scale[k] = g.gamma[k] * g.invStd[k];
  const size_t c = g.c;
  // (x does not enter dx here, only dγ's sums, which batchNormGrad took)
  asStored(g.reluOut, g.reluOutPacked, [&](auto mask) {
    writeGradRows(g, [&](size_t r, float* dxr) {
      const float* dyr = g.dy + r * c;
      if (mask) {
        const auto* yr = mask + r * c;
#pragma omp simd
        for (size_t k = 0; k < c; k++) dxr[k] = (dyr[k] * reluStep(valueAt(yr, k))) * scale[k];
      } else {
        // as affine(dy, dx, scale, 0) computed it: dy·scale + 0
        for (size_t k = 0; k < c; k++) dxr[k] = dyr[k] * scale[k] + 0.f;
      }
    });
  });
}

napi_value BatchNormFrozenGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormFrozenGrad(env, info, false); });
}

// batchNormFrozenReluGrad(dy, x, mean, invStd, gamma, dx, dGamma, dBeta, y)
napi_value BatchNormFrozenReluGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] { batchNormFrozenGrad(env, info, true); });
}

// columnSums(x, out): out[k] = Σ_r x[r, k], x viewed as [rows, out.length]. The bias gradient of
// every convolution is this sum over N·H·W, which wasm's Sum computes by transposing first.
napi_value ColumnSums(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 2);
    size_t c = lengthOf(env, a[1], "out");
    size_t total = lengthOf(env, a[0], "x");
    if (c == 0 || total % c) throw CallError{"boat_native: x's size is not a multiple of out's"};
    const float* x = floats(env, a[0], total, "x");
    float* out = floats(env, a[1], c, "out");
    std::vector<float> ones(c, 1.f);
    std::vector<double> sums, unused;
    channelSums(x, x, total / c, c, ones.data(), ones.data(), sums, unused);  // with y = x it sums x (and x·(x−1), unused)
    for (size_t k = 0; k < c; k++) out[k] = (float)sums[k];
  });
}

// reluGrad(dy, x, dx): dx = dy · step(x), ReLU's gradient as tfjs computes it (mul(dy, cast(step(x)))),
// in one pass instead of three kernels and two temporaries. step is 1 where x > 0, NaN where x is NaN,
// else 0, so each value is the same product: dy itself, a zero of dy's sign, or NaN.
// (reluGrad(dy, x, dx[, packed]): packed 4 when x is packed bf16, see bf16 storage)
// reluGradSum(dy, x, dy2, dx[, packed]): dx = (dy + dy2) · step(x), ReLU's gradient of a tensor that two
// readers sent gradients to, in one pass instead of an add and reluGrad (the sum is the add's, dy + dy2)
napi_value reluGradient(napi_env env, napi_callback_info info, bool summed) {
  return guarded(env, [&] {
    const size_t count = summed ? 4 : 3;
    auto a = arguments(env, info, count);
    const int32_t flags = flagsArgument(env, info, count);
    size_t total = lengthOf(env, a[0], "dy");
    const float* dy = floats(env, a[0], total, "dy");
    const float* x = floats(env, a[1], total, "x");
    const float* dy2 = summed ? floats(env, a[2], total, "dy2") : nullptr;
    float* dx = floats(env, a[count - 1], total, "dx");
    const int64_t n = (int64_t)total;
    asStored(x, flags & 4, [&](auto xs) {
      if (dy2) {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = (dy[i] + dy2[i]) * reluStep(valueAt(xs, i));
      } else {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * reluStep(valueAt(xs, i));
      }
    });
  });
}

napi_value ReluGrad(napi_env env, napi_callback_info info) { return reluGradient(env, info, false); }
napi_value ReluGradSum(napi_env env, napi_callback_info info) { return reluGradient(env, info, true); }

// maxPoolGrad(geometry, dy, x, dx): each output's gradient goes to the first maximum of its window
// (the cpu backend's choice). Geometry as for convolutions, with kh, kw the window and co = ci.
// The window's first pixel sets each channel's maximum and the later ones replace it only where
// strictly greater, over all channels at once; images are split between the threads, since
// neighbouring windows overlap.
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 4);
    Geometry g = geometry(env, a[0]);
    const float* dy = floats(env, a[1], g.n * g.oh * g.ow * g.ci, "dy");
    const float* x = floats(env, a[2], g.srcSize(), "x");
    float* dx = floats(env, a[3], g.srcSize(), "dx");
    const int64_t c = g.ci, image = g.h * g.w * c;
    if (image > INT32_MAX) throw CallError{"boat_native: maxPoolGrad's image is too large"};
#pragma omp parallel
    {
      std::vector<int32_t> best(c);
      std::vector<float> top(c);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < g.n; b++) {
        const float* xb = x + b * image;
        float* dxb = dx + b * image;
        std::fill(dxb, dxb + image, 0.f);
        for (int64_t oy = 0; oy < g.oh; oy++) {
          for (int64_t ox = 0; ox < g.ow; ox++) {
            bool first = true;
            for (int64_t i = 0; i < g.kh; i++) {
              int64_t iy = oy * g.sh + i * g.dh - g.pt;
              if (iy < 0 || iy >= g.h) continue;
              for (int64_t j = 0; j < g.kw; j++) {
                int64_t ix = ox * g.sw + j * g.dw - g.pl;
                if (ix < 0 || ix >= g.w) continue;
                const int32_t at = static_cast<int32_t>((iy * g.w + ix) * c);
                const float* p = xb + at;
                float* t = top.data();
                int32_t* w = best.data();
                if (first) {
                  for (int64_t k = 0; k < c; k++) {
                    t[k] = p[k];
                    w[k] = at + static_cast<int32_t>(k);
                  }
                  first = false;
                  continue;
                }
                // The index select as a mask: written with ?: as well, GCC leaves it scalar (3× slower).
#pragma omp simd
                for (int64_t k = 0; k < c; k++) {
                  const int32_t greater = -static_cast<int32_t>(p[k] > t[k]);
                  t[k] = p[k] > t[k] ? p[k] : t[k];
                  w[k] = (w[k] & ~greater) | ((at + static_cast<int32_t>(k)) & greater);
                }
              }
            }
            if (first) continue;  // a window wholly in the padding
            const float* d = dy + ((b * g.oh + oy) * g.ow + ox) * c;
            for (int64_t k = 0; k < c; k++) dxb[best[k]] += d[k];
          }
        }
      }
    }
  });
}

// A block of one row-major float array copied into another of the same rank: `size` elements along
// each axis, from `srcBegin` in src to `dstBegin` in dst. The trailing axes that are whole in both
// become one run per memcpy; the runs are split between the threads.
void copyBlock(const float* src, const std::vector<int64_t>& srcShape, const std::vector<int64_t>& srcBegin, float* dst,
               const std::vector<int64_t>& dstShape, const std::vector<int64_t>& dstBegin,
               const std::vector<int64_t>& size) {
  const size_t rank = size.size();
  std::vector<int64_t> srcStride(rank, 1), dstStride(rank, 1);
  for (size_t k = rank - 1; k > 0; k--) {
    srcStride[k - 1] = srcStride[k] * srcShape[k];
    dstStride[k - 1] = dstStride[k] * dstShape[k];
  }
  int64_t srcStart = 0, dstStart = 0;
  for (size_t k = 0; k < rank; k++) {
    if (size[k] == 0) return;
    srcStart += srcBegin[k] * srcStride[k];
    dstStart += dstBegin[k] * dstStride[k];
  }
  // The run: the innermost axis that is not whole, and every axis after it.
  size_t outer = rank;
  while (outer > 0 && size[outer - 1] == srcShape[outer - 1] && size[outer - 1] == dstShape[outer - 1]) outer--;
  if (outer > 0) outer--;
  const int64_t run = size[outer] * srcStride[outer];
  int64_t rows = 1;
  for (size_t k = 0; k < outer; k++) rows *= size[k];
  // One long run (a contiguous slice) is cut into pieces, so that both threads copy.
  const int64_t pieces = rows == 1 && run >= (int64_t(1) << 16) ? omp_get_max_threads() : 1;
  const int64_t piece = (run + pieces - 1) / pieces;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows * pieces; r++) {
    int64_t row = r / pieces, from = (r % pieces) * piece;
    if (from >= run) continue;
    int64_t s = srcStart, d = dstStart;
    for (size_t k = outer; k-- > 0;) {
      int64_t i = row % size[k];
      row /= size[k];
      s += i * srcStride[k];
      d += i * dstStride[k];
    }
    std::memcpy(dst + d + from, src + s + from, sizeof(float) * std::min(piece, run - from));
  }
}

// Throws unless the block of `size` from `begin` lies inside `shape` along every axis.
void checkInside(const std::vector<int64_t>& shape, const std::vector<int64_t>& begin, const std::vector<int64_t>& size,
                 const char* what) {
  for (size_t k = 0; k < shape.size(); k++)
    if (begin[k] < 0 || size[k] < 0 || begin[k] + size[k] > shape[k])
      throw CallError{std::string("boat_native: ") + what};
}

// slice(x, xShape, begin, size, y): y = x[begin : begin + size] along every axis (tfjs' Slice, which
// wasm computes one element at a time). The shapes are Int32Arrays of the same rank.
napi_value Slice(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 5);
    size_t rank = lengthOf(env, a[1], "xShape");
    auto shape = int32s(env, a[1], rank, "xShape"), begin = int32s(env, a[2], rank, "begin");
    auto size = int32s(env, a[3], rank, "size");
    checkInside(shape, begin, size, "slice outside the tensor");
    const float* x = floats(env, a[0], product(shape), "x");
    float* y = floats(env, a[4], product(size), "y");
    copyBlock(x, shape, begin, y, size, std::vector<int64_t>(rank, 0), size);
  });
}

// pad(x, xShape, before, value, y, yShape): y = x with `before` elements of `value` ahead of it along
// each axis and the rest of yShape after it (tfjs' PadV2).
napi_value Pad(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 6);
    size_t rank = lengthOf(env, a[1], "xShape");
    auto shape = int32s(env, a[1], rank, "xShape"), before = int32s(env, a[2], rank, "before");
    auto outShape = int32s(env, a[5], rank, "yShape");
    checkInside(outShape, before, shape, "pad outside the output");
    double value = 0;
    check(env, napi_get_value_double(env, a[3], &value), "the pad value must be a number");
    const float* x = floats(env, a[0], product(shape), "x");
    const int64_t total = product(outShape);
    float* y = floats(env, a[4], total, "y");
    const float v = static_cast<float>(value);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < total; i++) y[i] = v;
    copyBlock(x, shape, std::vector<int64_t>(rank, 0), y, outShape, before, shape);
  });
}

// addRelu(a, b, y): y = relu(a + b), the end of a residual block, in one pass: the sum rounded to float,
// then ReLU as wasm's Relu computes it, a signed-integer max of the bits with 0: +0 wherever the sign
// bit is set (−0 and a negative NaN too), the sum itself elsewhere.
inline float addRelu(float p, float q) {
  const float sum = p + q;
  int32_t bits;
  std::memcpy(&bits, &sum, sizeof bits);
  return bits < 0 ? 0.f : sum;
}

// (addRelu(a, b, y[, packed]): packed 1 to write y as packed bf16, 2 when a is packed, 4 when b is; see
// bf16 storage)
napi_value AddRelu(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 3);
    const int32_t flags = flagsArgument(env, info, 3);
    size_t n = lengthOf(env, a[0], "a");
    const float* x = floats(env, a[0], n, "a");
    const float* z = floats(env, a[1], n, "b");
    float* y = floats(env, a[2], n, "y");
    const int64_t count = static_cast<int64_t>(n);
    asStored(x, flags & 2, [&](auto p) {
      asStored(z, flags & 4, [&](auto q) {
        if (!(flags & 1)) {
#pragma omp parallel for simd schedule(static) if (count > 32768)
          for (int64_t i = 0; i < count; i++) y[i] = addRelu(valueAt(p, i), valueAt(q, i));
          return;
        }
        // A packed y: chunks of float sums, each converted as a whole
        const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (count > 32768)
        for (int64_t k = 0; k < chunks; k++) {
          const int64_t begin = k * kChunk, m = std::min<int64_t>(kChunk, count - begin);
          float sums[kChunk];
          for (int64_t i = 0; i < m; i++) sums[i] = addRelu(valueAt(p, begin + i), valueAt(q, begin + i));
          bf16Row(sums, reinterpret_cast<uint16_t*>(y) + begin, m);
        }
      });
    });
  });
}

// momentumStep(value, accumulation, gradient, momentum, rate, newValue, newAccumulation): one variable's
// step of tfjs' MomentumOptimizer (without Nesterov) in one pass instead of four kernels:
// newAccumulation = momentum·accumulation + gradient, newValue = (−rate)·newAccumulation + value.
// Every product and sum is rounded to float as tfjs' separate kernels round it (the baseline x86-64
// build has no FMA to contract them into), so the step is theirs bit for bit.
napi_value MomentumStep(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 7);
    size_t n = lengthOf(env, a[0], "value");
    const float* value = floats(env, a[0], n, "value");
    const float* acc = floats(env, a[1], n, "accumulation");
    const float* grad = floats(env, a[2], n, "gradient");
    double momentum = 0, rate = 0;
    check(env, napi_get_value_double(env, a[3], &momentum), "momentum must be a number");
    check(env, napi_get_value_double(env, a[4], &rate), "the learning rate must be a number");
    float* newValue = floats(env, a[5], n, "newValue");
    float* newAcc = floats(env, a[6], n, "newAccumulation");
    const float m = static_cast<float>(momentum), c = static_cast<float>(-rate);
    const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for simd schedule(static) if (count > 32768)
    for (int64_t i = 0; i < count; i++) {
      const float kept = m * acc[i];
      const float next = kept + grad[i];
      const float step = c * next;
      newAcc[i] = next;
      newValue[i] = step + value[i];
    }
  });
}

// setThreads(n): the OpenMP threads oneDNN computes with.
napi_value SetThreads(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 1);
    int32_t n = 0;
    check(env, napi_get_value_int32(env, a[0], &n), "threads must be a number");
    if (n < 1) throw CallError{"boat_native: threads must be at least 1"};
    omp_set_num_threads(n);
  });
}

// packBf16(x): converts x's values to packed bf16 in place (bf16 storage). expandBf16(x): back to float32,
// in place. Chunk by chunk through a copy (the two views of one buffer must not alias as C++ types), in
// the direction in which each chunk overwrites only what has been read: packing moves values down,
// expanding moves them up.
// The one argument's buffer as bytes, and its length in floats.
char* floatBytes(napi_env env, napi_callback_info info, size_t& n) {
  auto a = arguments(env, info, 1);
  n = lengthOf(env, a[0], "x");
  return reinterpret_cast<char*>(floats(env, a[0], n, "x"));
}

napi_value PackBf16(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    size_t n;
    char* bytes = floatBytes(env, info, n);
    float in[kChunk];
    uint16_t out[kChunk];
    for (size_t s = 0; s < n; s += kChunk) {
      size_t m = std::min(kChunk, n - s);
      std::memcpy(in, bytes + 4 * s, 4 * m);
      bf16Row(in, out, m);
      std::memcpy(bytes + 2 * s, out, 2 * m);
    }
  });
}

napi_value ExpandBf16(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    size_t n;
    char* bytes = floatBytes(env, info, n);
    uint16_t in[kChunk];
    float out[kChunk];
    for (size_t e = n; e > 0;) {
      size_t s = e > kChunk ? e - kChunk : 0, m = e - s;
      std::memcpy(in, bytes + 2 * s, 2 * m);
      for (size_t i = 0; i < m; i++) out[i] = floatOfBf16(in[i]);
      std::memcpy(bytes + 4 * s, out, 4 * m);
      e = s;
    }
  });
}

// bf16Native(): whether setPrecision("bf16") is allowed on this CPU.
napi_value Bf16Native(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_get_boolean(env, bf16Native(), &result);
  return result;
}

// setPrecision("fp32" | "bf16"): what the convolutions and matrix products compute in from now on.
napi_value SetPrecision(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    auto a = arguments(env, info, 1);
    char text[8] = {0};
    size_t got = 0;
    check(env, napi_get_value_string_utf8(env, a[0], text, sizeof(text), &got), "precision must be a string");
    std::string p(text, got);
    if (p != "fp32" && p != "bf16") throw CallError{"boat_native: precision must be fp32 or bf16, got " + p};
    if (p == "bf16" && !bf16Native()) throw CallError{"boat_native: this CPU has no native bf16 (AVX512_BF16 or AMX)"};
    useBf16 = p == "bf16";
  });
}

// A state call's optional argument: false when absent or null, else true with the number in *value.
bool optionalNumber(napi_env env, napi_callback_info info, const char* message, double* value) {
  size_t got = 1;
  napi_value arg;
  check(env, napi_get_cb_info(env, info, &got, &arg, nullptr, nullptr), "napi_get_cb_info");
  if (got < 1 || isNullish(env, arg)) return false;
  check(env, napi_get_value_double(env, arg, value), message);
  return true;
}

// A state call's answer: an object of named numbers.
napi_value numbers(napi_env env, std::initializer_list<std::pair<const char*, double>> fields) {
  napi_value result;
  check(env, napi_create_object(env, &result), "napi_create_object");
  for (const auto& [name, v] : fields) {
    napi_value n;
    check(env, napi_create_double(env, v, &n), "napi_create_double");
    check(env, napi_set_named_property(env, result, name, n), "napi_set_named_property");
  }
  return result;
}

// filterCache(capacity?): sets the filter cache's capacity in bytes when given (0 turns it off and
// frees every copy), and returns {copies, bytes, capacity, hits, misses}.
napi_value FilterCacheInfo(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  guarded(env, [&] {
    FilterCache& c = filterCache();
    double capacity = 0;
    if (optionalNumber(env, info, "the capacity must be a number of bytes", &capacity)) {
      if (!(capacity >= 0)) throw CallError{"boat_native: the capacity must be at least 0"};
      c.capacity = static_cast<size_t>(capacity);
      c.evictTo(c.capacity);
    }
    result = numbers(env, {{"copies", static_cast<double>(c.copies.size())},
                           {"bytes", static_cast<double>(c.bytes)},
                           {"capacity", static_cast<double>(c.capacity)},
                           {"hits", c.hits},
                           {"misses", c.misses}});
  });
  return result;
}

// gradientInputs(slots?): sets how many converted backward inputs are kept when given (0 turns it off
// and frees them), and returns {slots, bytes, hits, misses}.
napi_value GradientInputsInfo(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  guarded(env, [&] {
    GradientInputs& c = gradientInputs();
    double slots = 0;
    if (optionalNumber(env, info, "the slot count must be a number", &slots)) {
      if (!(slots >= 0 && slots <= 64) || slots != static_cast<double>(static_cast<size_t>(slots))) {
        throw CallError{"boat_native: the slot count must be a whole number from 0 to 64"};
      }
      c.resize(static_cast<size_t>(slots));
    }
    result = numbers(env, {{"slots", static_cast<double>(c.slots.size())},
                           {"bytes", static_cast<double>(c.bytes())},
                           {"hits", c.hits},
                           {"misses", c.misses}});
  });
  return result;
}

// gradientLayout("nhwc" | "blocked"?): sets the layout bf16 gradients read when given (Geometry::nhwcGradients)
// and returns it.
napi_value GradientLayout(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  guarded(env, [&] {
    size_t got = 1;
    napi_value arg;
    check(env, napi_get_cb_info(env, info, &got, &arg, nullptr, nullptr), "napi_get_cb_info");
    if (got >= 1 && !isNullish(env, arg)) {
      char text[16];
      size_t length = 0;
      if (napi_get_value_string_utf8(env, arg, text, sizeof(text), &length) != napi_ok) length = 0;
      std::string layout(text, length);
      if (layout != "nhwc" && layout != "blocked") throw CallError{"boat_native: the gradient layout must be nhwc or blocked"};
      nhwcBackward = layout == "nhwc";
    }
    const char* now = nhwcBackward ? "nhwc" : "blocked";
    napi_create_string_utf8(env, now, NAPI_AUTO_LENGTH, &result);
  });
  return result;
}

// describe(): "oneDNN 2.6.3 (cpu_omp), N threads"
napi_value Describe(napi_env env, napi_callback_info info) {
  const dnnl_version_t* v = dnnl_version();
  std::string text = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
                     ", " + std::to_string(omp_get_max_threads()) + " threads";
  napi_value result;
  napi_create_string_utf8(env, text.c_str(), text.size(), &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dAdd", nullptr, Conv2DAdd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, BatchNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrain", nullptr, BatchNormTrain, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrainGrad", nullptr, BatchNormTrainGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormFrozenGrad", nullptr, BatchNormFrozenGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormRelu", nullptr, BatchNormRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrainRelu", nullptr, BatchNormTrainRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormTrainReluGrad", nullptr, BatchNormTrainReluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNormFrozenReluGrad", nullptr, BatchNormFrozenReluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"columnSums", nullptr, ColumnSums, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reluGrad", nullptr, ReluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reluGradSum", nullptr, ReluGradSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"slice", nullptr, Slice, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"pad", nullptr, Pad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"momentumStep", nullptr, MomentumStep, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addRelu", nullptr, AddRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matMul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bf16Native", nullptr, Bf16Native, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"packBf16", nullptr, PackBf16, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expandBf16", nullptr, ExpandBf16, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setPrecision", nullptr, SetPrecision, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"describe", nullptr, Describe, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"filterCache", nullptr, FilterCacheInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gradientInputs", nullptr, GradientInputsInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gradientLayout", nullptr, GradientLayout, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
