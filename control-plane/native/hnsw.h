// An HNSW graph (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
// using Hierarchical Navigable Small World graphs") in one class, written for AkiDB's store.
//
// Layout: every node's level-0 record is one fixed-size slot of one contiguous block (neighbour
// count, 2M neighbour ids, then the stored vector at a 64-byte offset), so expanding a node touches
// its own slot and its neighbours' slots and nothing else; upper levels (a node has one with
// probability 1/M) live in small per-node blocks. Visited marks are a per-thread array of epochs,
// reset by bumping the epoch, not a hash set. Keys are the caller's 64-bit integers; node ids are
// dense 32-bit slots in insertion order. Insert-only: a node is never removed (the caller keeps
// dead ones out of results with a key bitset), so no insert ever relinks a slot that someone
// else's links point at.
//
// Threads: `insert` may run on several threads at once (each node's neighbour list has its own
// spin lock and no thread ever holds two of them; a new top level takes the graph's entry lock for
// the whole insert). `search`, `reserve` and `save` must not overlap inserts: the
// addon calls them on the JS thread only, and its threaded inserts finish before they return.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/mman.h>

#include "distance.h"

namespace akidb {

enum class Metric : uint8_t { ip = 0, l2sq = 1, cos = 2 };
enum class Scalar : uint8_t { f32 = 0, f16 = 1, i8 = 2 };

struct Params {
  uint32_t dim = 0;
  Metric metric = Metric::ip;
  Scalar scalar = Scalar::f32;
  uint32_t M = 16;
  uint32_t ef_construction = 128;
};

/** The results of one search, best first. */
struct Hit {
  float distance;
  uint64_t key;
};

/** Which keys a search may return: bit `key` of a bitset (keys past its end are excluded). */
struct KeyFilter {
  const uint8_t* bits = nullptr;
  size_t bytes = 0;
  bool admits(uint64_t key) const { return (key >> 3) < bytes && (bits[key >> 3] >> (key & 7)) & 1; }
};

/**
 * One anonymous memory mapping that holds an array of fixed-size records (a graph's slots, its
 * sketches) and grows without a copy where the OS can move pages: on Linux `mremap` gives the
 * pages a larger range, elsewhere growing maps a new range and copies. (Growing by a copy made a
 * 100k x 1024 ingest's store thread spend ~10% of its time in memmove and in zeroing the new
 * pages it copied into.) Transparent huge pages were tried too: no gain measurable above this
 * machine's noise in 4 paired runs, and their fault-time compaction can stall, so pages stay 4 KB.
 */
class Region {
 public:
  Region() = default;
  ~Region() {
    if (data_) munmap(data_, bytes_);
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  char* data() const { return data_; }

  /** Grows to at least `bytes`, keeping the contents; bytes never written read as zero. */
  void grow(size_t bytes) {
    constexpr size_t kPage = 4096;
    bytes = (bytes + kPage - 1) / kPage * kPage;
    if (bytes <= bytes_) return;
    void* grown;
    if (!data_) {
      grown = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    } else {
#ifdef __linux__
      grown = mremap(data_, bytes_, bytes, MREMAP_MAYMOVE);
#else
      grown = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (grown != MAP_FAILED) {
        std::memcpy(grown, data_, bytes_);
        munmap(data_, bytes_);
      }
#endif
    }
    if (grown == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<char*>(grown);
    bytes_ = bytes;
  }

 private:
  char* data_ = nullptr;
  size_t bytes_ = 0;
};

class Hnsw {
 public:
  static constexpr uint32_t kFileVersion = 1;
  static constexpr char kMagic[8] = {'A', 'K', 'I', 'H', 'N', 'S', 'W', '\0'};
  static constexpr uint32_t kMaxLevel = 15;
  /** How many neighbours' vectors an insert's walk fetches ahead of the one it scores. */
  static constexpr uint32_t kPrefetchAhead = 8;

  explicit Hnsw(const Params& params) : p_(params) {
    if (p_.dim == 0 || p_.dim > 65536) throw std::invalid_argument("dimension must be 1..65536");
    if (p_.M < 2 || p_.M > 512) throw std::invalid_argument("M must be 2..512");
    if (p_.metric == Metric::cos && p_.scalar != Scalar::i8)
      throw std::invalid_argument("metric cos is for i8 only (normalise and use ip otherwise)");
    m0_ = 2 * p_.M;
    level_mult_ = 1.0 / std::log(static_cast<double>(p_.M));
    const size_t scalar_bytes = p_.scalar == Scalar::f32 ? 4 : p_.scalar == Scalar::f16 ? 2 : 1;
    vector_bytes_ = p_.dim * scalar_bytes;
    data_offset_ = round_up(4 + 4 * static_cast<size_t>(m0_), 64);
    slot_bytes_ = round_up(data_offset_ + vector_bytes_, 64);
    upper_bytes_ = 4 + 4 * static_cast<size_t>(p_.M);
    distance_ = pick_distance(p_, cpu_level());
    sketch_dot_ = pick_sketch_dot(cpu_level());
    sketched_ = p_.scalar == Scalar::f32;
    sketch_bytes_ = sketched_ ? round_up(kSketchHeader + p_.dim, 16) : 0;
  }

  ~Hnsw() {
    for (char* u : upper_) std::free(u);
  }

  Hnsw(const Hnsw&) = delete;
  Hnsw& operator=(const Hnsw&) = delete;

  const Params& params() const { return p_; }
  size_t size() const { return count_.load(); }
  size_t capacity() const { return capacity_; }

  /** Room for `need` nodes, and at least half again `capacity`: growth is geometric. */
  static size_t grown_capacity(size_t need, size_t capacity) {
    return std::max(need, capacity + capacity / 2 + 64);
  }

  /** Grows the slots to hold `n` nodes (never shrinks). Not concurrent with anything. */
  void reserve(size_t n) {
    if (n <= capacity_) return;
    if (n > UINT32_MAX) throw std::length_error("an index holds at most 2^32 - 1 nodes");
    level0_.grow(n * slot_bytes_);
    if (sketched_) sketches_.grow(n * sketch_bytes_);
    keys_.resize(n);
    levels_.resize(n);
    upper_.resize(n, nullptr);
    std::unique_ptr<std::atomic<uint8_t>[]> locks(new std::atomic<uint8_t>[n]);
    std::unique_ptr<std::atomic<uint8_t>[]> ready(new std::atomic<uint8_t>[n]);
    const size_t have = count_.load();
    for (size_t i = 0; i < n; i++) {
      locks[i].store(0, std::memory_order_relaxed);
      ready[i].store(i < have && ready_ ? ready_[i].load(std::memory_order_relaxed) : 0, std::memory_order_relaxed);
    }
    locks_ = std::move(locks);
    ready_ = std::move(ready);
    capacity_ = n;
    lookup_.reserve(n);
  }

  bool contains(uint64_t key) const { return lookup_.count(key) != 0; }

  /**
   * Adds `vector` (f32, `dim` values) under `key`; false when the key is already in the graph.
   * Safe on several threads at once provided the capacity was reserved beforehand.
   */
  bool insert(uint64_t key, const float* vector) {
    uint32_t id;
    {
      std::lock_guard<std::mutex> guard(lookup_mutex_);
      if (lookup_.count(key)) return false;
      const uint32_t next = count_.load();
      if (next >= capacity_) throw std::length_error("index full: reserve before inserting");
      id = next;
      lookup_.emplace(key, id);
      count_.store(next + 1);
    }
    const int level = random_level();
    keys_[id] = key;
    levels_[id] = static_cast<uint8_t>(level);
    char* slot = slot_of(id);
    std::memset(slot, 0, slot_bytes_);
    encode(vector, slot + data_offset_);
    if (sketched_) sketch(vector, sketch_of(id));
    if (level > 0) {
      upper_[id] = static_cast<char*>(std::calloc(level, upper_bytes_));
      if (!upper_[id]) throw std::bad_alloc();
      upper_levels_.fetch_add(level, std::memory_order_relaxed);
    }
    link(id, level);
    ready_[id].store(1, std::memory_order_release);
    return true;
  }

  /**
   * The `k` nearest nodes to `vector` that `filter` admits (any when it has no bits), found
   * with a beam of `ef`. Nodes it does not admit are walked through but take no place in the
   * beam, so a filter needs no oversampling: the walk goes on until the beam holds `ef` admitted
   * nodes or the reachable graph is exhausted. In an f32 graph the walk scores sketches and the
   * beam is scored again exactly, so the distances returned are the f32 ones. Single-threaded
   * with respect to inserts.
   */
  std::vector<Hit> search(const float* vector, size_t k, size_t ef, const KeyFilter& filter) const {
    std::vector<Hit> hits;
    const size_t n = count_.load();
    if (n == 0 || k == 0) return hits;
    thread_local std::vector<char> query;
    query.resize(vector_bytes_ + 64);
    char* q = align64(query.data());
    encode(vector, q);
    uint32_t current = entry_;
    float best = distance(q, current);
    for (int level = max_level_; level > 0; level--) {
      for (bool changed = true; changed;) {
        changed = false;
        const uint32_t* list = links(current, level);
        const uint32_t size = list[0];
        for (uint32_t i = 1; i <= size; i++) {
          const float d = distance(q, list[i]);
          if (d < best) {
            best = d;
            current = list[i];
            changed = true;
          }
        }
      }
    }
    const bool filtered = filter.bits != nullptr;
    const size_t beam = std::max(ef, k);
    MaxHeap top;
    if (sketched_) {
      // An f32 graph's base layer is walked on the sketches (a quarter of the bytes per step), and
      // the beam it ends with is scored again on the f32 vectors: the hits and their distances
      // are exact, and only which nodes reach the beam rests on the sketches.
      thread_local std::vector<char> query_sketch;
      query_sketch.resize(sketch_bytes_);
      sketch(vector, query_sketch.data());
      MaxHeap walked = filtered ? search_level0<true, true>(query_sketch.data(), current, beam, filter)
                                : search_level0<false, true>(query_sketch.data(), current, beam, filter);
      for (; !walked.empty(); walked.pop()) top.emplace(distance(q, walked.top().second), walked.top().second);
    } else {
      top = filtered ? search_level0<true, false>(q, current, beam, filter)
                     : search_level0<false, false>(q, current, beam, filter);
    }
    while (top.size() > k) top.pop();
    hits.resize(top.size());
    for (size_t i = top.size(); i-- > 0;) {
      hits[i] = {top.top().first, keys_[top.top().second]};
      top.pop();
    }
    return hits;
  }

  /** RAM held: slots, per-node arrays, upper levels and the key map (an estimate for the map). */
  size_t memory_bytes() const {
    // Constant time: the store reports it with every collection's info, searches included.
    const size_t upper = upper_levels_.load(std::memory_order_relaxed) * upper_bytes_;
    return capacity_ * (slot_bytes_ + sketch_bytes_ + sizeof(uint64_t) + 2 + sizeof(char*) + 1) + upper +
           lookup_.size() * 32 + lookup_.bucket_count() * sizeof(void*);
  }

  /**
   * Writes the graph to `path` (little-endian, versioned; see `load`). The caller makes it
   * atomic (temp file, fsync, rename) and checksums it.
   */
  void save(const std::string& path) const {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), std::fclose);
    if (!file) throw std::runtime_error("cannot open " + path + " for writing");
    const uint64_t n = count_.load();
    Header h{};
    std::memcpy(h.magic, kMagic, 8);
    h.version = kFileVersion;
    h.header_bytes = sizeof(Header);
    h.dim = p_.dim;
    h.metric = static_cast<uint8_t>(p_.metric);
    h.scalar = static_cast<uint8_t>(p_.scalar);
    h.M = p_.M;
    h.ef_construction = p_.ef_construction;
    h.slot_bytes = slot_bytes_;
    h.data_offset = data_offset_;
    h.count = n;
    h.max_level = max_level_;
    h.entry = entry_;
    write(file.get(), &h, sizeof h);
    write(file.get(), keys_.data(), n * sizeof(uint64_t));
    write(file.get(), levels_.data(), n);
    // A reserved byte per node (zero), where the first files of this version kept dead flags.
    write(file.get(), std::vector<uint8_t>(n, 0).data(), n);
    write(file.get(), level0_.data(), n * slot_bytes_);
    for (size_t i = 0; i < n; i++)
      if (levels_[i] > 0) write(file.get(), upper_[i], levels_[i] * upper_bytes_);
    if (std::fflush(file.get()) != 0) throw std::runtime_error("cannot write " + path);
  }

  /**
   * The graph `save` wrote, with room to grow (`grown_capacity`): growing copies every slot, and
   * a loaded 1M x 384 graph's first insert spent 4-5 s doing so, which the first search after a
   * restart waited for. The room costs address space until it is written. Throws on a file that is
   * not a graph, or is truncated or inconsistent.
   */
  static std::unique_ptr<Hnsw> load(const std::string& path) {
    if (!little_endian()) throw std::runtime_error("index files are little-endian; this CPU is not");
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!file) throw std::runtime_error("cannot open " + path);
    Header h{};
    read(file.get(), &h, sizeof h);
    if (std::memcmp(h.magic, kMagic, 8) != 0) throw std::runtime_error("not an AkiDB HNSW file");
    if (h.version != kFileVersion || h.header_bytes != sizeof(Header))
      throw std::runtime_error("unsupported HNSW file version " + std::to_string(h.version));
    if (h.metric > 2 || h.scalar > 2) throw std::runtime_error("bad metric or scalar in HNSW file");
    Params params;
    params.dim = h.dim;
    params.metric = static_cast<Metric>(h.metric);
    params.scalar = static_cast<Scalar>(h.scalar);
    params.M = h.M;
    params.ef_construction = h.ef_construction;
    auto index = std::make_unique<Hnsw>(params);
    if (h.slot_bytes != index->slot_bytes_ || h.data_offset != index->data_offset_ || h.count > UINT32_MAX ||
        (h.count > 0 && (h.entry >= h.count || h.max_level < 0 || h.max_level > static_cast<int32_t>(kMaxLevel))))
      throw std::runtime_error("inconsistent HNSW file header");
    const size_t n = h.count;
    index->reserve(grown_capacity(n, n));
    read(file.get(), index->keys_.data(), n * sizeof(uint64_t));
    read(file.get(), index->levels_.data(), n);
    std::vector<uint8_t> reserved(n);
    read(file.get(), reserved.data(), n);
    read(file.get(), index->level0_.data(), n * index->slot_bytes_);
    for (size_t i = 0; i < n; i++) {
      const uint8_t level = index->levels_[i];
      if (level > kMaxLevel) throw std::runtime_error("inconsistent HNSW file: node level");
      if (level == 0) continue;
      index->upper_[i] = static_cast<char*>(std::malloc(level * index->upper_bytes_));
      if (!index->upper_[i]) throw std::bad_alloc();
      index->upper_levels_ += level;
      read(file.get(), index->upper_[i], level * index->upper_bytes_);
    }
    if (std::fgetc(file.get()) != EOF) throw std::runtime_error("trailing bytes in HNSW file");
    // Every link must name a node, and every list fit its level, or a search could run off the end.
    for (size_t i = 0; i < n; i++) {
      for (int level = 0; level <= index->levels_[i]; level++) {
        const uint32_t* list = index->links(static_cast<uint32_t>(i), level);
        if (list[0] > (level == 0 ? index->m0_ : index->p_.M)) throw std::runtime_error("inconsistent HNSW file: links");
        for (uint32_t j = 1; j <= list[0]; j++)
          if (list[j] >= n) throw std::runtime_error("inconsistent HNSW file: links");
      }
      if (!index->lookup_.emplace(index->keys_[i], static_cast<uint32_t>(i)).second)
        throw std::runtime_error("inconsistent HNSW file: duplicate key");
    }
    if (n > 0 && index->levels_[h.entry] != h.max_level) throw std::runtime_error("inconsistent HNSW file: entry");
    if (index->sketched_) index->sketch_all(n);
    for (size_t i = 0; i < n; i++) index->ready_[i].store(1, std::memory_order_relaxed);
    index->count_.store(static_cast<uint32_t>(n));
    index->max_level_ = n > 0 ? h.max_level : -1;
    index->entry_ = h.entry;
    return index;
  }

  static const char* simd() { return cpu_has_vnni() ? "avx512+vnni" : level_name(cpu_level()); }

 private:
  using Candidate = std::pair<float, uint32_t>;
  using MaxHeap = std::priority_queue<Candidate>;
  using MinHeap = std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>>;

#pragma pack(push, 1)
  struct Header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint32_t dim;
    uint8_t metric;
    uint8_t scalar;
    uint16_t reserved;
    uint32_t M;
    uint32_t ef_construction;
    uint64_t slot_bytes;
    uint64_t data_offset;
    uint64_t count;
    int32_t max_level;
    uint32_t entry;
  };
#pragma pack(pop)

  /** Epoch-tagged visited marks, one array per thread, grown with the graph. */
  struct Visited {
    std::vector<uint16_t> marks;
    uint16_t epoch = 0;
    void start(size_t n) {
      if (marks.size() < n) marks.resize(n, 0);
      if (++epoch == 0) {
        std::fill(marks.begin(), marks.end(), 0);
        epoch = 1;
      }
    }
    bool visit(uint32_t id) {
      if (marks[id] == epoch) return false;
      marks[id] = epoch;
      return true;
    }
  };

  static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
  static char* align64(char* p) {
    return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + 63) & ~static_cast<uintptr_t>(63));
  }
  static bool little_endian() {
    const uint16_t one = 1;
    uint8_t first;
    std::memcpy(&first, &one, 1);
    return first == 1;
  }
  static void write(FILE* f, const void* data, size_t bytes) {
    if (bytes && std::fwrite(data, 1, bytes, f) != bytes) throw std::runtime_error("short write of HNSW file");
  }
  static void read(FILE* f, void* data, size_t bytes) {
    if (bytes && std::fread(data, 1, bytes, f) != bytes) throw std::runtime_error("truncated HNSW file");
  }

  template <Level L>
  static DistanceFn distance_for(const Params& p) {
    switch (p.scalar) {
      case Scalar::f32:
        return p.metric == Metric::l2sq ? l2_f32<L> : ip_f32<L>;
      case Scalar::f16:
        return p.metric == Metric::l2sq ? l2_f16<L> : ip_f16<L>;
      default:
        return p.metric == Metric::l2sq ? l2_i8<L> : p.metric == Metric::cos ? cos_i8<L> : ip_i8<L>;
    }
  }
  static SketchDotFn pick_sketch_dot(Level level) {
#ifdef AKIDB_X86
    if (cpu_has_vnni()) return dot_i8_vnni;
#endif
    if (level == Level::avx512) return sketch_dot<Level::avx512>;
    if (level == Level::avx2) return sketch_dot<Level::avx2>;
    return sketch_dot<Level::portable>;
  }
  static DistanceFn pick_distance(const Params& p, Level level) {
    if (level == Level::avx512) return distance_for<Level::avx512>(p);
    if (level == Level::avx2) return distance_for<Level::avx2>(p);
    return distance_for<Level::portable>(p);
  }

  char* slot_of(uint32_t id) const { return level0_.data() + static_cast<size_t>(id) * slot_bytes_; }
  const char* data_of(uint32_t id) const { return slot_of(id) + data_offset_; }
  /** A neighbour list: its length, then the ids. Level 0 is in the slot, the others in `upper_`. */
  uint32_t* links(uint32_t id, int level) const {
    if (level == 0) return reinterpret_cast<uint32_t*>(slot_of(id));
    return reinterpret_cast<uint32_t*>(upper_[id] + (level - 1) * upper_bytes_);
  }
  float distance(const char* q, uint32_t id) const { return distance_(q, data_of(id), p_.dim); }
  float distance(uint32_t a, uint32_t b) const { return distance_(data_of(a), data_of(b), p_.dim); }

  /**
   * Sketches (f32 graphs only): each vector again as int8 codes of its own scale (x[i] ~ scale *
   * code[i], scale = max |x[i]| / 127) with its squared norm, in one array beside the slots.
   * An f32 graph is built on them (every distance an insert computes: its walk, the neighbour
   * heuristic, re-choosing a full list), reading a quarter of the bytes; queries walk the base
   * layer on them too, then score their beam on the f32 vectors. Record: float scale, float
   * squared norm, int32 sum of the codes (for `dot_i8_vnni`), then `dim` codes.
   */
  static constexpr size_t kSketchHeader = 12;
  char* sketch_of(uint32_t id) const { return sketches_.data() + static_cast<size_t>(id) * sketch_bytes_; }
  void sketch(const float* v, char* out) const {
    // Plain loops over a local length into a local buffer, so they vectorise: a load sketches every
    // vector, and written per value through `out` (a char pointer, which may alias anything) they
    // took ~2-5 us per 384 floats.
    const uint32_t dim = p_.dim;
    // The largest |x| as the largest of the bit patterns with the sign cleared: for floats >= 0
    // the integers order as the floats do, and integer maxima vectorise (float ones do not,
    // for NaN's sake, without -ffast-math).
    int32_t largest = 0;
    for (uint32_t i = 0; i < dim; i++) {
      int32_t bits;
      std::memcpy(&bits, v + i, 4);
      largest = std::max(largest, bits & 0x7fffffff);
    }
    float max;
    std::memcpy(&max, &largest, 4);
    const float norm = dot_f32_portable(v, v, dim);
    const float scale = max > 0 && std::isfinite(max) ? max / 127.0f : 1.0f;
    const float inverse = 1.0f / scale;
    // Rounds half away from zero by truncating x +- 0.5 (std::nearbyint is a libm call per value
    // on the x86-64 baseline).
    thread_local std::vector<int8_t> codes;
    codes.resize(dim);
    int8_t* c = codes.data();
    int32_t sum = 0;
    for (uint32_t i = 0; i < dim; i++) {
      const float x = std::max(-127.0f, std::min(127.0f, v[i] * inverse));
      c[i] = static_cast<int8_t>(static_cast<int32_t>(x + (x < 0 ? -0.5f : 0.5f)));
      sum += c[i];
    }
    std::memcpy(out, &scale, 4);
    std::memcpy(out + 4, &norm, 4);
    std::memcpy(out + 8, &sum, 4);
    std::memcpy(out + kSketchHeader, c, dim);
  }
  /** Sketches nodes 0..n-1 from their stored vectors, on up to 8 threads (a load: ~0.85 us a 384-float vector). */
  void sketch_all(size_t n) {
    const size_t threads = std::max<size_t>(1, std::min<size_t>(8, std::thread::hardware_concurrency()));
    const size_t per = (n + threads - 1) / threads;
    auto work = [&](size_t from, size_t to) {
      for (size_t i = from; i < to; i++) {
        const auto id = static_cast<uint32_t>(i);
        sketch(reinterpret_cast<const float*>(data_of(id)), sketch_of(id));
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads && t * per < n; t++) pool.emplace_back(work, t * per, std::min(n, (t + 1) * per));
    work(0, std::min(n, per));
    for (std::thread& thread : pool) thread.join();
  }

  /** The metric's distance between the sketches of two nodes. */
  float sketch_distance(uint32_t x, uint32_t y) const { return sketch_distance(sketch_of(x), sketch_of(y)); }
  float sketch_distance(const char* a, const char* b) const {
    float sa, sb;
    int32_t b_sum;
    std::memcpy(&sa, a, 4);
    std::memcpy(&sb, b, 4);
    std::memcpy(&b_sum, b + 8, 4);
    const float dot = sa * sb *
                      static_cast<float>(sketch_dot_(reinterpret_cast<const int8_t*>(a + kSketchHeader),
                                                     reinterpret_cast<const int8_t*>(b + kSketchHeader), p_.dim, b_sum));
    if (p_.metric != Metric::l2sq) return 1.0f - dot;
    float na, nb;
    std::memcpy(&na, a + 4, 4);
    std::memcpy(&nb, b + 4, 4);
    return na + nb - 2 * dot;
  }

  void encode(const float* v, char* out) const {
    switch (p_.scalar) {
      case Scalar::f32:
        std::memcpy(out, v, vector_bytes_);
        break;
      case Scalar::f16: {
        auto* h = reinterpret_cast<uint16_t*>(out);
        for (uint32_t i = 0; i < p_.dim; i++) h[i] = float_to_half(v[i]);
        break;
      }
      default: {
        auto* b = reinterpret_cast<int8_t*>(out);
        for (uint32_t i = 0; i < p_.dim; i++) b[i] = float_to_i8(v[i]);
      }
    }
  }

  bool ready(uint32_t id) const { return ready_[id].load(std::memory_order_acquire) != 0; }

  void lock(uint32_t id) const {
    while (locks_[id].exchange(1, std::memory_order_acquire)) {
      while (locks_[id].load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock(uint32_t id) const { locks_[id].store(0, std::memory_order_release); }

  int random_level() {
    std::lock_guard<std::mutex> guard(rng_mutex_);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const double r = -std::log(std::max(uniform(rng_), 1e-300)) * level_mult_;
    return static_cast<int>(std::min<double>(r, kMaxLevel));
  }

  /** Visited marks from the index's pool (one per concurrent search or insert), returned on scope exit. */
  class VisitedLease {
   public:
    explicit VisitedLease(const Hnsw& index) : index_(index) {
      std::lock_guard<std::mutex> guard(index_.visited_mutex_);
      if (index_.visited_pool_.empty()) {
        marks_ = std::make_unique<Visited>();
      } else {
        marks_ = std::move(index_.visited_pool_.back());
        index_.visited_pool_.pop_back();
      }
    }
    ~VisitedLease() {
      std::lock_guard<std::mutex> guard(index_.visited_mutex_);
      index_.visited_pool_.push_back(std::move(marks_));
    }
    VisitedLease(const VisitedLease&) = delete;
    VisitedLease& operator=(const VisitedLease&) = delete;
    Visited& operator*() const { return *marks_; }

   private:
    const Hnsw& index_;
    std::unique_ptr<Visited> marks_;
  };

  /**
   * Fetches what inserts score node `id` on (its sketch, or its vector) into the L2 cache. A vector
   * spans many cache lines (24 at 384 f32 dimensions) and the graph is far larger than the cache,
   * so scoring a neighbour whose vector was not fetched ahead waits on memory for most of its
   * lines. L2, not L1: the L1 has too few miss buffers for several vectors in flight, and stalls
   * on them (measured: 100k x 384 inserts cost ~165 us each fetching 2 vectors ahead into L1,
   * ~123 us fetching 8 into L2, 200 us with none).
   */
  void prefetch_build(uint32_t id) const {
    const char* data = sketched_ ? sketch_of(id) : data_of(id);
    const size_t bytes = sketched_ ? sketch_bytes_ : vector_bytes_;
    for (size_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(data + offset, 0, 2);
  }
  /** The distance inserts build the graph on: between sketches in an f32 graph, else the stored values. */
  float build_distance(uint32_t a, uint32_t b) const { return sketched_ ? sketch_distance(a, b) : distance(a, b); }

  /**
   * The beam search of one level during inserts (reads neighbour lists under their locks). Each
   * expanded node's neighbours are first marked visited and the unseen ones kept, so only those
   * vectors are fetched, kPrefetchAhead vectors ahead of the one being scored.
   */
  MaxHeap search_level_locked(uint32_t query, uint32_t start, int level, size_t ef, Visited& seen) const {
    seen.start(capacity_);
    MaxHeap top;
    MinHeap frontier;
    const float d0 = build_distance(query, start);
    top.emplace(d0, start);
    frontier.emplace(d0, start);
    seen.visit(start);
    thread_local std::vector<uint32_t> unseen;
    unseen.resize(std::max(m0_, p_.M));
    while (!frontier.empty()) {
      const Candidate current = frontier.top();
      if (current.first > top.top().first && top.size() >= ef) break;
      frontier.pop();
      if (!frontier.empty()) __builtin_prefetch(links(frontier.top().second, level));
      lock(current.second);
      const uint32_t* src = links(current.second, level);
      const uint32_t size = src[0];
      uint32_t count = 0;
      for (uint32_t i = 1; i <= size; i++)
        if (seen.visit(src[i])) unseen[count++] = src[i];
      unlock(current.second);
      for (uint32_t i = 0; i < std::min<uint32_t>(count, kPrefetchAhead); i++) prefetch_build(unseen[i]);
      for (uint32_t i = 0; i < count; i++) {
        const uint32_t next = unseen[i];
        if (i + kPrefetchAhead < count) prefetch_build(unseen[i + kPrefetchAhead]);
        // A node's vector is written before anything links to it, so it can be scored before the
        // (separate, rarely needed) ready flag is read.
        const float d = build_distance(query, next);
        if ((top.size() < ef || d < top.top().first) && ready(next)) {
          frontier.emplace(d, next);
          top.emplace(d, next);
          if (top.size() > ef) top.pop();
        }
      }
    }
    return top;
  }

  /** The beam search of level 0 for queries: no locks, prefetching the next neighbours' slots (or sketches). */
  template <bool Filtered, bool Sketched>
  MaxHeap search_level0(const char* q, uint32_t start, size_t ef, const KeyFilter& filter) const {
    // `q` is the query encoded as the slots hold vectors, or (Sketched) as a sketch.
    auto score = [&](uint32_t id) { return Sketched ? sketch_distance(q, sketch_of(id)) : distance(q, id); };
    VisitedLease lease(*this);
    Visited& seen = *lease;
    seen.start(capacity_);
    MaxHeap top;
    MinHeap frontier;
    auto admitted = [&](uint32_t id) {
      return filter.admits(keys_[id]);
    };
    const float d0 = score(start);
    float bound = std::numeric_limits<float>::max();
    if (!Filtered || admitted(start)) {
      top.emplace(d0, start);
      bound = d0;
    }
    frontier.emplace(d0, start);
    seen.visit(start);
    while (!frontier.empty()) {
      const Candidate current = frontier.top();
      if (current.first > bound && top.size() >= ef) break;
      frontier.pop();
      const uint32_t* list = links(current.second, 0);
      const uint32_t size = list[0];
      if (size > 0) {
        __builtin_prefetch(seen.marks.data() + list[1]);
        __builtin_prefetch(Sketched ? sketch_of(list[1]) : slot_of(list[1]) + data_offset_);
      }
      for (uint32_t i = 1; i <= size; i++) {
        const uint32_t next = list[i];
        if (i < size) {
          __builtin_prefetch(seen.marks.data() + list[i + 1]);
          if (Sketched) {
            const char* ahead = sketch_of(list[i + 1]);
            for (size_t offset = 0; offset < sketch_bytes_; offset += 64) __builtin_prefetch(ahead + offset);
          } else {
            const char* ahead = slot_of(list[i + 1]) + data_offset_;
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 64);
          }
        }
        if (!seen.visit(next)) continue;
        const float d = score(next);
        if (top.size() < ef || d < bound) {
          frontier.emplace(d, next);
          __builtin_prefetch(slot_of(frontier.top().second));
          if (!Filtered || admitted(next)) {
            top.emplace(d, next);
            if (top.size() > ef) top.pop();
            bound = top.top().first;
          }
        }
      }
    }
    return top;
  }

  /**
   * The paper's neighbour heuristic (its Algorithm 4 without extension): closest first, a
   * candidate is kept only when it is closer to the base than to every neighbour kept so far, so
   * the links spread around the node instead of bunching in its nearest cluster.
   */
  void select_neighbors(std::vector<Candidate>& candidates, size_t limit) const {
    std::sort(candidates.begin(), candidates.end());
    if (candidates.size() <= limit) return;
    std::vector<Candidate> kept;
    kept.reserve(limit);
    for (const Candidate& c : candidates) {
      if (kept.size() >= limit) break;
      bool good = true;
      for (const Candidate& k : kept) {
        if (build_distance(c.second, k.second) < c.first) {
          good = false;
          break;
        }
      }
      if (good) kept.push_back(c);
    }
    candidates.swap(kept);
  }

  void link(uint32_t id, int level) {
    std::unique_lock<std::mutex> top_lock(entry_mutex_);
    const int top_level = max_level_;
    if (top_level < 0) {
      entry_ = id;
      max_level_ = level;
      return;
    }
    if (level <= top_level) top_lock.unlock();
    uint32_t current = entry_;
    float best = build_distance(id, current);
    std::vector<uint32_t> list(std::max(m0_, p_.M) + 1);
    for (int l = top_level; l > level; l--) {
      for (bool changed = true; changed;) {
        changed = false;
        lock(current);
        const uint32_t* src = links(current, l);
        const uint32_t size = src[0];
        std::memcpy(list.data(), src + 1, size * sizeof(uint32_t));
        unlock(current);
        for (uint32_t i = 0; i < size; i++) {
          if (!ready(list[i])) continue;
          const float d = build_distance(id, list[i]);
          if (d < best) {
            best = d;
            current = list[i];
            changed = true;
          }
        }
      }
    }
    VisitedLease lease(*this);
    Visited& seen = *lease;
    std::vector<Candidate> chosen;
    for (int l = std::min(level, top_level); l >= 0; l--) {
      MaxHeap found = search_level_locked(id, current, l, p_.ef_construction, seen);
      chosen.clear();
      while (!found.empty()) {
        if (found.top().second != id) chosen.push_back(found.top());
        found.pop();
      }
      select_neighbors(chosen, p_.M);
      lock(id);
      uint32_t* own = links(id, l);
      own[0] = static_cast<uint32_t>(chosen.size());
      for (size_t i = 0; i < chosen.size(); i++) own[i + 1] = chosen[i].second;
      unlock(id);
      for (const Candidate& c : chosen) connect(c.second, id, l);
      if (!chosen.empty()) current = chosen.front().second;
    }
    if (level > top_level) {
      entry_ = id;
      max_level_ = level;
    }
  }

  /** Adds `id` to `node`'s list at `level`, re-choosing the list by the heuristic when it is full. */
  void connect(uint32_t node, uint32_t id, int level) {
    const uint32_t limit = level == 0 ? m0_ : p_.M;
    lock(node);
    uint32_t* list = links(node, level);
    const uint32_t size = list[0];
    for (uint32_t i = 1; i <= size; i++) {
      if (list[i] == id) {
        unlock(node);
        return;
      }
    }
    if (size < limit) {
      list[size + 1] = id;
      list[0] = size + 1;
      unlock(node);
      return;
    }
    for (uint32_t i = 1; i <= size; i++) prefetch_build(list[i]);
    std::vector<Candidate> candidates;
    candidates.reserve(size + 1);
    candidates.emplace_back(build_distance(node, id), id);
    for (uint32_t i = 1; i <= size; i++) candidates.emplace_back(build_distance(node, list[i]), list[i]);
    select_neighbors(candidates, limit);
    list[0] = static_cast<uint32_t>(candidates.size());
    for (size_t i = 0; i < candidates.size(); i++) list[i + 1] = candidates[i].second;
    unlock(node);
  }

  Params p_;
  uint32_t m0_;
  double level_mult_;
  size_t vector_bytes_, data_offset_, slot_bytes_, upper_bytes_;
  DistanceFn distance_;
  SketchDotFn sketch_dot_;
  bool sketched_;
  size_t sketch_bytes_;
  Region sketches_;

  Region level0_;
  size_t capacity_ = 0;
  std::atomic<uint32_t> count_{0};
  /** Upper-level lists allocated (the sum of every node's level), for `memory_bytes`. */
  std::atomic<size_t> upper_levels_{0};
  std::vector<uint64_t> keys_;
  std::vector<uint8_t> levels_;
  std::vector<char*> upper_;
  std::unique_ptr<std::atomic<uint8_t>[]> locks_;
  /**
   * Set once a node's insert has finished (all its levels linked). Inserts skip nodes still being
   * inserted: starting a level's search from one whose links at that level are not written yet
   * would see an empty list and link the new node to almost nothing, and linking to one would race
   * with it writing its own lists.
   */
  std::unique_ptr<std::atomic<uint8_t>[]> ready_;

  std::unordered_map<uint64_t, uint32_t> lookup_;
  std::mutex lookup_mutex_;
  std::mutex entry_mutex_;
  int max_level_ = -1;
  uint32_t entry_ = 0;
  std::mt19937_64 rng_{100};
  std::mutex rng_mutex_;

  mutable std::mutex visited_mutex_;
  mutable std::vector<std::unique_ptr<Visited>> visited_pool_;
};

}  // namespace akidb
