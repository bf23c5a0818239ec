// The Node-API binding of hnsw.h and json.h: `new HnswIndex({dimensions, metric, scalar, M,
// efConstruction})`, `loadIndex(path)`, `simd` (the distance kernels this CPU runs),
// `float32Json(vector)` and `extractVectors(body, dimension, list)`. Written against the C API of
// node_api.h only, so it builds with a plain compiler call (scripts/build-native.sh) and loads in
// any Node with that Node-API version. Every call is synchronous on the calling JS thread;
// `addMany` spreads one batch over threads and joins them before it returns.
#include <node_api.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sys/resource.h>
#endif

#include "hnsw.h"
#include "json.h"

namespace {

using akidb::Hnsw;

struct AddonData {
  napi_ref constructor = nullptr;
};

class JsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

#define CHECK(call)                                              \
  do {                                                           \
    if ((call) != napi_ok) throw JsError("Node-API call failed: " #call); \
  } while (0)

constexpr double kMaxKey = 9007199254740991.0;  // 2^53 - 1: keys travel as JS numbers

struct Args {
  napi_value self = nullptr;
  std::vector<napi_value> argv;
};

Args get_args(napi_env env, napi_callback_info info, size_t count) {
  Args args;
  args.argv.resize(count);
  size_t argc = count;
  CHECK(napi_get_cb_info(env, info, &argc, args.argv.data(), &args.self, nullptr));
  for (size_t i = argc; i < count; i++) CHECK(napi_get_undefined(env, &args.argv[i]));
  return args;
}

Hnsw& unwrap(napi_env env, napi_value self) {
  void* raw = nullptr;
  CHECK(napi_unwrap(env, self, &raw));
  return *static_cast<Hnsw*>(raw);
}

double number(napi_env env, napi_value value, const char* name) {
  double out;
  if (napi_get_value_double(env, value, &out) != napi_ok || !std::isfinite(out))
    throw JsError(std::string(name) + " must be a finite number");
  return out;
}

size_t count_arg(napi_env env, napi_value value, const char* name) {
  const double n = number(env, value, name);
  if (n < 0 || n != std::floor(n) || n > 4294967295.0) throw JsError(std::string(name) + " must be an integer >= 0");
  return static_cast<size_t>(n);
}

uint64_t key_arg(napi_env env, napi_value value) {
  const double key = number(env, value, "key");
  if (key < 0 || key != std::floor(key) || key > kMaxKey) throw JsError("key must be an integer in 0..2^53-1");
  return static_cast<uint64_t>(key);
}

template <typename T>
T* typed_array(napi_env env, napi_value value, napi_typedarray_type want, const char* name, size_t* length) {
  bool is_typed = false;
  CHECK(napi_is_typedarray(env, value, &is_typed));
  napi_typedarray_type type;
  void* data = nullptr;
  if (is_typed) CHECK(napi_get_typedarray_info(env, value, &type, length, &data, nullptr, nullptr));
  if (!is_typed || type != want) {
    static const char* names[] = {"Int8Array",  "Uint8Array",   "Uint8ClampedArray", "Int16Array",
                                  "Uint16Array", "Int32Array",  "Uint32Array",       "Float32Array",
                                  "Float64Array", "BigInt64Array", "BigUint64Array"};
    throw JsError(std::string(name) + " must be a " + names[want]);
  }
  return static_cast<T*>(data);
}

std::string string_arg(napi_env env, napi_value value, const char* name) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok)
    throw JsError(std::string(name) + " must be a string");
  std::string out(length, '\0');
  CHECK(napi_get_value_string_utf8(env, value, out.data(), length + 1, &length));
  return out;
}

napi_value property(napi_env env, napi_value object, const char* name) {
  napi_value value;
  CHECK(napi_get_named_property(env, object, name, &value));
  return value;
}

napi_value js_number(napi_env env, double value) {
  napi_value out;
  CHECK(napi_create_double(env, value, &out));
  return out;
}

napi_value js_bool(napi_env env, bool value) {
  napi_value out;
  CHECK(napi_get_boolean(env, value, &out));
  return out;
}

const char* metric_name(akidb::Metric metric) {
  return metric == akidb::Metric::ip ? "ip" : metric == akidb::Metric::l2sq ? "l2sq" : "cos";
}
const char* scalar_name(akidb::Scalar scalar) {
  return scalar == akidb::Scalar::f32 ? "f32" : scalar == akidb::Scalar::f16 ? "f16" : "i8";
}

/** Runs `body` and turns a C++ exception into a thrown JS Error. */
template <typename F>
napi_value guarded(napi_env env, F body) {
  try {
    return body();
  } catch (const std::exception& error) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "AKIDB_HNSW", error.what());
    return nullptr;
  }
}

void finalize(napi_env, void* data, void*) { delete static_cast<Hnsw*>(data); }

/** Grows `index` geometrically so that `extra` more nodes fit. */
void make_room(Hnsw& index, size_t extra) {
  const size_t need = index.size() + extra;
  if (need <= index.capacity()) return;
  index.reserve(Hnsw::grown_capacity(need, index.capacity()));
}

void check_dimension(const Hnsw& index, size_t length, const char* name) {
  if (length != index.params().dim)
    throw JsError(std::string(name) + ": expected " + std::to_string(index.params().dim) + " values, got " +
                  std::to_string(length));
}

// new HnswIndex({dimensions, metric, scalar, M, efConstruction}) or, from loadIndex, an external.
napi_value construct(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args args = get_args(env, info, 1);
    napi_valuetype kind;
    CHECK(napi_typeof(env, args.argv[0], &kind));
    std::unique_ptr<Hnsw> index;
    if (kind == napi_external) {
      void* raw = nullptr;
      CHECK(napi_get_value_external(env, args.argv[0], &raw));
      index.reset(static_cast<Hnsw*>(raw));
    } else if (kind == napi_object) {
      akidb::Params params;
      params.dim = static_cast<uint32_t>(count_arg(env, property(env, args.argv[0], "dimensions"), "dimensions"));
      const std::string metric = string_arg(env, property(env, args.argv[0], "metric"), "metric");
      const std::string scalar = string_arg(env, property(env, args.argv[0], "scalar"), "scalar");
      params.M = static_cast<uint32_t>(count_arg(env, property(env, args.argv[0], "M"), "M"));
      params.ef_construction =
          static_cast<uint32_t>(count_arg(env, property(env, args.argv[0], "efConstruction"), "efConstruction"));
      if (metric == "ip") params.metric = akidb::Metric::ip;
      else if (metric == "l2sq") params.metric = akidb::Metric::l2sq;
      else if (metric == "cos") params.metric = akidb::Metric::cos;
      else throw JsError("metric must be ip, l2sq or cos");
      if (scalar == "f32") params.scalar = akidb::Scalar::f32;
      else if (scalar == "f16") params.scalar = akidb::Scalar::f16;
      else if (scalar == "i8") params.scalar = akidb::Scalar::i8;
      else throw JsError("scalar must be f32, f16 or i8");
      index = std::make_unique<Hnsw>(params);
    } else {
      throw JsError("HnswIndex takes an options object");
    }
    CHECK(napi_wrap(env, args.self, index.get(), finalize, nullptr, nullptr));
    index.release();
    return args.self;
  });
}

// add(key, vector: Float32Array): whether it was added (false: the key is in the graph).
napi_value add(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 2);
    Hnsw& index = unwrap(env, args.self);
    const uint64_t key = key_arg(env, args.argv[0]);
    size_t length;
    const float* vector = typed_array<float>(env, args.argv[1], napi_float32_array, "vector", &length);
    check_dimension(index, length, "vector");
    if (index.contains(key)) return js_bool(env, false);
    make_room(index, 1);
    return js_bool(env, index.insert(key, vector));
  });
}

// Index inserts run on threads of their own at a lower CPU priority (nice + 10; on Linux the nice
// value is per thread), so when an ingest keeps more threads busy than there are cores the HTTP
// event loop and the upsert parser are scheduled first: inserts take the CPU that is left, and
// `/health` is answered meanwhile. RocksDB lowers its compaction threads the same way. Elsewhere
// (macOS: priority is per process) the threads keep the process's priority.
void lower_thread_priority() {
#ifdef __linux__
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);
  if (errno == 0) setpriority(PRIO_PROCESS, 0, std::min(19, nice + 10));
#endif
}

// addMany(keys: Float64Array, vectors: Float32Array (rows), threads): the number added; keys in
// the graph already, or repeated, are skipped. Runs on `threads` threads at a lower priority and
// returns when they are done.
napi_value add_many(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 3);
    Hnsw& index = unwrap(env, args.self);
    size_t count, length;
    const double* keys = typed_array<double>(env, args.argv[0], napi_float64_array, "keys", &count);
    const float* vectors = typed_array<float>(env, args.argv[1], napi_float32_array, "vectors", &length);
    const size_t threads = std::max<size_t>(1, count_arg(env, args.argv[2], "threads"));
    const size_t dim = index.params().dim;
    if (length != count * dim) throw JsError("vectors: expected keys.length * dimensions values");
    for (size_t i = 0; i < count; i++)
      if (!(keys[i] >= 0 && keys[i] <= kMaxKey && keys[i] == std::floor(keys[i])))
        throw JsError("keys[" + std::to_string(i) + "] must be an integer in 0..2^53-1");
    make_room(index, count);
    std::atomic<size_t> next{0};
    std::atomic<size_t> added{0};
    std::mutex failure_mutex;
    std::string failure;
    // A worker's exception must not escape its thread (that would end the process): the first one
    // stops the others and is thrown here after the join.
    auto work = [&] {
      try {
        for (size_t i = next++; i < count; i = next++)
          if (index.insert(static_cast<uint64_t>(keys[i]), vectors + i * dim)) added++;
      } catch (const std::exception& error) {
        next = count;
        std::lock_guard<std::mutex> guard(failure_mutex);
        if (failure.empty()) failure = error.what();
      }
    };
    std::vector<std::thread> pool;
    pool.reserve(std::min(threads, count));
    for (size_t t = 0; t < std::min(threads, count); t++)
      pool.emplace_back([&] {
        lower_thread_priority();
        work();
      });
    for (std::thread& t : pool) t.join();
    if (!failure.empty()) throw JsError(failure);
    return js_number(env, static_cast<double>(added.load()));
  });
}

// search(query, k, ef, filter: Uint8Array | null, outKeys: Float64Array, outDistances: Float32Array):
// the number of hits written, best first. `filter` is a bitset by key (bit key of byte key >> 3).
napi_value search(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 6);
    Hnsw& index = unwrap(env, args.self);
    size_t length, key_room, distance_room;
    const float* query = typed_array<float>(env, args.argv[0], napi_float32_array, "query", &length);
    check_dimension(index, length, "query");
    const size_t k = count_arg(env, args.argv[1], "k");
    const size_t ef = count_arg(env, args.argv[2], "ef");
    akidb::KeyFilter filter;
    napi_valuetype kind;
    CHECK(napi_typeof(env, args.argv[3], &kind));
    if (kind != napi_null && kind != napi_undefined)
      filter.bits = typed_array<uint8_t>(env, args.argv[3], napi_uint8_array, "filter", &filter.bytes);
    double* out_keys = typed_array<double>(env, args.argv[4], napi_float64_array, "outKeys", &key_room);
    float* out_distances = typed_array<float>(env, args.argv[5], napi_float32_array, "outDistances", &distance_room);
    if (key_room < k || distance_room < k) throw JsError("outKeys and outDistances must hold k results");
    const std::vector<akidb::Hit> hits = index.search(query, k, ef, filter);
    for (size_t i = 0; i < hits.size(); i++) {
      out_keys[i] = static_cast<double>(hits[i].key);
      out_distances[i] = hits[i].distance;
    }
    return js_number(env, static_cast<double>(hits.size()));
  });
}

napi_value save(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 1);
    unwrap(env, args.self).save(string_arg(env, args.argv[0], "path"));
    napi_value undefined;
    CHECK(napi_get_undefined(env, &undefined));
    return undefined;
  });
}

// size(), memoryBytes(): numbers.
template <size_t (Hnsw::*Getter)() const>
napi_value getter(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 0);
    return js_number(env, static_cast<double>((unwrap(env, args.self).*Getter)()));
  });
}

// info(): {dimensions, metric, scalar, M, efConstruction}.
napi_value describe(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 0);
    const akidb::Params& p = unwrap(env, args.self).params();
    napi_value out, metric, scalar;
    CHECK(napi_create_object(env, &out));
    CHECK(napi_create_string_utf8(env, metric_name(p.metric), NAPI_AUTO_LENGTH, &metric));
    CHECK(napi_create_string_utf8(env, scalar_name(p.scalar), NAPI_AUTO_LENGTH, &scalar));
    CHECK(napi_set_named_property(env, out, "dimensions", js_number(env, p.dim)));
    CHECK(napi_set_named_property(env, out, "metric", metric));
    CHECK(napi_set_named_property(env, out, "scalar", scalar));
    CHECK(napi_set_named_property(env, out, "M", js_number(env, p.M)));
    CHECK(napi_set_named_property(env, out, "efConstruction", js_number(env, p.ef_construction)));
    return out;
  });
}

// loadIndex(path): the HnswIndex saved there; throws when the file is not a valid index.
napi_value load_index(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 1);
    const std::string path = string_arg(env, args.argv[0], "path");
    std::unique_ptr<Hnsw> loaded = Hnsw::load(path);
    AddonData* data = nullptr;
    CHECK(napi_get_instance_data(env, reinterpret_cast<void**>(&data)));
    napi_value constructor, external, instance;
    CHECK(napi_get_reference_value(env, data->constructor, &constructor));
    CHECK(napi_create_external(env, loaded.get(), nullptr, nullptr, &external));
    Hnsw* raw = loaded.release();
    if (napi_new_instance(env, constructor, 1, &external, &instance) != napi_ok) {
      delete raw;
      throw JsError("could not wrap the loaded index");
    }
    return instance;
  });
}

// float32Json(vector: Float32Array): the vector as JSON text (json.h).
napi_value float32_json(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 1);
    size_t length = 0;
    const float* values = typed_array<float>(env, args.argv[0], napi_float32_array, "vector", &length);
    const std::string text = akidb::float32_json(values, length);
    napi_value out;
    CHECK(napi_create_string_latin1(env, text.data(), text.size(), &out));
    return out;
  });
}

// extractVectors(body: Uint8Array, dimension, list: string | null): {text: Uint8Array, documents:
// Uint32Array, vectors: Float32Array} with the body's vectors (`list[i].vector`, or its own
// `vector` when list is null) taken out (json.h), or null when it takes none.
napi_value extract_vectors(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    Args args = get_args(env, info, 3);
    size_t length = 0;
    const auto* body = typed_array<uint8_t>(env, args.argv[0], napi_uint8_array, "body", &length);
    const size_t dimension = count_arg(env, args.argv[1], "dimension");
    napi_valuetype kind;
    CHECK(napi_typeof(env, args.argv[2], &kind));
    const std::string list = kind == napi_null ? std::string() : string_arg(env, args.argv[2], "list");
    akidb::ExtractedVectors extracted;
    akidb::VectorExtractor extractor(std::string_view(reinterpret_cast<const char*>(body), length), dimension, list);
    napi_value out;
    if (!extractor.run(extracted) || extracted.documents.empty()) {
      CHECK(napi_get_null(env, &out));
      return out;
    }
    auto array_of = [&](napi_typedarray_type type, const void* data, size_t count, size_t bytes_each) {
      void* raw = nullptr;
      napi_value buffer, array;
      CHECK(napi_create_arraybuffer(env, count * bytes_each, &raw, &buffer));
      if (count > 0) std::memcpy(raw, data, count * bytes_each);
      CHECK(napi_create_typedarray(env, type, count, buffer, 0, &array));
      return array;
    };
    CHECK(napi_create_object(env, &out));
    const std::string& text = extracted.text;
    CHECK(napi_set_named_property(env, out, "text", array_of(napi_uint8_array, text.data(), text.size(), 1)));
    CHECK(napi_set_named_property(env, out, "documents",
                                  array_of(napi_uint32_array, extracted.documents.data(), extracted.documents.size(), 4)));
    CHECK(napi_set_named_property(env, out, "vectors",
                                  array_of(napi_float32_array, extracted.values.data(), extracted.values.size(), 4)));
    return out;
  });
}

void delete_data(napi_env env, void* raw, void*) {
  auto* data = static_cast<AddonData*>(raw);
  if (data->constructor) napi_delete_reference(env, data->constructor);
  delete data;
}

napi_value init(napi_env env, napi_value exports) {
  return guarded(env, [&] {
    const napi_property_descriptor methods[] = {
        {"add", nullptr, add, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"addMany", nullptr, add_many, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"search", nullptr, search, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"save", nullptr, save, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"size", nullptr, getter<&Hnsw::size>, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"memoryBytes", nullptr, getter<&Hnsw::memory_bytes>, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"info", nullptr, describe, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    napi_value constructor;
    CHECK(napi_define_class(env, "HnswIndex", NAPI_AUTO_LENGTH, construct, nullptr,
                            sizeof(methods) / sizeof(methods[0]), methods, &constructor));
    auto* data = new AddonData();
    CHECK(napi_create_reference(env, constructor, 1, &data->constructor));
    CHECK(napi_set_instance_data(env, data, delete_data, nullptr));
    napi_value loader, simd, json, extract;
    CHECK(napi_create_function(env, "loadIndex", NAPI_AUTO_LENGTH, load_index, nullptr, &loader));
    CHECK(napi_create_function(env, "float32Json", NAPI_AUTO_LENGTH, float32_json, nullptr, &json));
    CHECK(napi_create_function(env, "extractVectors", NAPI_AUTO_LENGTH, extract_vectors, nullptr, &extract));
    CHECK(napi_set_named_property(env, exports, "extractVectors", extract));
    CHECK(napi_create_string_utf8(env, Hnsw::simd(), NAPI_AUTO_LENGTH, &simd));
    CHECK(napi_set_named_property(env, exports, "HnswIndex", constructor));
    CHECK(napi_set_named_property(env, exports, "loadIndex", loader));
    CHECK(napi_set_named_property(env, exports, "simd", simd));
    CHECK(napi_set_named_property(env, exports, "float32Json", json));
    return exports;
  });
}

}  // namespace

NAPI_MODULE_INIT() { return init(env, exports); }
