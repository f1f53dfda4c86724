// build/xsktun-microbench: per-operation costs of the hot path (Google Benchmark). Packets/s
// are reported as items_per_second.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "xsktun/common/sharded_map.h"
#include "xsktun/io/offload.h"
#include "xsktun/protocol/cookie.h"
#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/data_aead.h"
#include "xsktun/protocol/keypair.h"
#include "xsktun/protocol/noise.h"
#include "xsktun/protocol/replay.h"
#include "xsktun/routing/allowed_ips.h"
#include "xsktun/xdp/frame.h"

using namespace xsktun;
using namespace xsktun::proto;

namespace {

void BM_Seal(benchmark::State& st) {
  auto be = static_cast<aead::Backend>(st.range(1));
  size_t len = static_cast<size_t>(st.range(0));
  uint8_t key[32] = {7};
  std::vector<uint8_t> buf(len + 16);
  uint64_t ctr = 0;
  for (auto _ : st) {
    aead::seal_with(be, buf.data(), buf.data(), len, ctr++, key);
    benchmark::DoNotOptimize(buf.data());
  }
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * len));
  st.SetLabel(aead::name(be));
}

void BM_Open(benchmark::State& st) {
  auto be = static_cast<aead::Backend>(st.range(1));
  size_t len = static_cast<size_t>(st.range(0));
  uint8_t key[32] = {7};
  std::vector<uint8_t> sealed(len + 16), out(len + 16);
  aead::seal_with(be, sealed.data(), sealed.data(), len, 1, key);
  for (auto _ : st) {
    bool ok = aead::open_with(be, out.data(), sealed.data(), sealed.size(), 1, key);
    benchmark::DoNotOptimize(ok);
  }
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * len));
  st.SetLabel(aead::name(be));
}

void aead_args(benchmark::internal::Benchmark* b) {
  for (int be : {0, 1})
    // 1408 next to 1420: the TUN split's aligned segments against the default MTU's full packet
    // (tun.h, kSegmentAlign).
    for (int len : {64, 128, 256, 512, 1024, 1408, 1420}) b->Args({len, be});
}
BENCHMARK(BM_Seal)->Apply(aead_args);
BENCHMARK(BM_Open)->Apply(aead_args);

struct Pair {
  StaticIdentity a, b;
  Handshake ha, hb;
  Pair() {
    crypto::init();
    SecretKey k;
    crypto::generate_private(k);
    a.set_private(k);
    crypto::generate_private(k);
    b.set_private(k);
    ha.remote_static = b.public_key;
    ha.precompute(a);
    hb.remote_static = a.public_key;
    hb.precompute(b);
  }
};

void BM_HandshakeCreateInitiation(benchmark::State& st) {
  Pair p;
  uint8_t ts[kTimestampLen];
  tai64n(ts, 1, 0);
  MessageInitiation m;
  for (auto _ : st) benchmark::DoNotOptimize(create_initiation(&m, p.ha, p.a, 1, ts));
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_HandshakeCreateInitiation);

void BM_HandshakeConsumeInitiation(benchmark::State& st) {
  Pair p;
  MessageInitiation m;
  int64_t sec = 1;
  Nanos now = 0;
  for (auto _ : st) {
    st.PauseTiming();
    uint8_t ts[kTimestampLen];
    tai64n(ts, sec++, 0);
    create_initiation(&m, p.ha, p.a, 1, ts);
    now += kSecond;
    st.ResumeTiming();
    Handshake* found = nullptr;
    benchmark::DoNotOptimize(consume_initiation(
        m, p.b, [&](const Key&) { return &p.hb; }, now, &found));
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_HandshakeConsumeInitiation);

void BM_AllowedIpsLookup(benchmark::State& st) {
  routing::AllowedIps t;
  std::mt19937 rng(1);
  for (int64_t i = 0; i < st.range(0); ++i) {
    Prefix p;
    p.addr.family = AF_INET;
    uint32_t a = rng();
    std::memcpy(p.addr.bytes.data(), &a, 4);
    p.cidr = static_cast<uint8_t>(16 + rng() % 17);
    t.insert(p, static_cast<uint32_t>(i));
  }
  std::vector<uint32_t> probes(4096);
  for (auto& x : probes) x = rng();
  size_t i = 0;
  for (auto _ : st) {
    auto r = t.lookup(AF_INET, reinterpret_cast<const uint8_t*>(&probes[i++ & 4095]));
    benchmark::DoNotOptimize(r);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_AllowedIpsLookup)->Arg(1000)->Arg(100000);

// The receiver-index lookup every worker makes once per received run, each thread for peers
// of its own (a gateway's workers serve different peers). range(0) = 0: one map under one
// std::shared_mutex (what Device had); 1: ShardedMap. Compare items/s at 1 and 2 threads: with
// one lock, the second thread's reader locks bounce the lock's line.
struct IndexTables {
  std::shared_mutex mu;
  std::unordered_map<uint32_t, std::shared_ptr<int>> one;
  ShardedMap<uint32_t, std::shared_ptr<int>> sharded;
  IndexTables() {
    for (uint32_t i = 0; i < 10000; ++i) {
      auto v = std::make_shared<int>(static_cast<int>(i));
      one.emplace(i * 2654435761u, v);
      sharded.insert(i * 2654435761u, v);
    }
  }
};
IndexTables& index_tables() {
  static IndexTables t;
  return t;
}

void BM_IndexLookup(benchmark::State& st) {
  IndexTables& t = index_tables();
  bool sharded = st.range(0) != 0;
  // Thread k looks up 16 keys of its own (its peers), as a worker does per run.
  uint32_t base = static_cast<uint32_t>(st.thread_index()) * 1000;
  uint32_t i = 0;
  for (auto _ : st) {
    uint32_t key = (base + (i++ & 15)) * 2654435761u;
    std::shared_ptr<int> v;
    if (sharded) {
      v = t.sharded.find(key).value_or(nullptr);
    } else {
      std::shared_lock lock(t.mu);
      auto it = t.one.find(key);
      if (it != t.one.end()) v = it->second;
    }
    benchmark::DoNotOptimize(v);
  }
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_IndexLookup)->Arg(0)->Arg(1)->Threads(1)->Threads(2)->UseRealTime();

void BM_ReplayCheck(benchmark::State& st) {
  ReplayWindow w;
  uint64_t c = 0;
  for (auto _ : st) benchmark::DoNotOptimize(w.check_and_update(c++));
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ReplayCheck);

void BM_FrameBuild(benchmark::State& st) {
  xdp::Path path;
  path.src_ip = *IpAddr::parse(st.range(0) ? "2001:db8::1" : "192.0.2.1");
  path.src_port = 51820;
  Endpoint to{*IpAddr::parse(st.range(0) ? "2001:db8::2" : "192.0.2.2"), 51820};
  std::vector<uint8_t> frame(2048);
  for (auto _ : st) benchmark::DoNotOptimize(xdp::build_headers(frame.data(), path, to, 1452));
  st.SetItemsProcessed(st.iterations());
  st.SetLabel(st.range(0) ? "ipv6 (UDP checksum)" : "ipv4");
}
BENCHMARK(BM_FrameBuild)->Arg(0)->Arg(1);

// The TUN read side's split of one 64 KB TCP super-packet (TSO) into 1408-byte packets: header
// fix-ups and a full TCP checksum per segment (items = segments).
void BM_TsoSplit(benchmark::State& st) {
  constexpr size_t kHdr = 40, kMss = 1368;
  std::vector<uint8_t> pkt(kHdr + 47 * kMss);
  std::mt19937 rng(1);
  for (auto& b : pkt) b = static_cast<uint8_t>(rng());
  pkt[0] = 0x45;
  pkt[2] = static_cast<uint8_t>(pkt.size() >> 8);
  pkt[3] = static_cast<uint8_t>(pkt.size());
  pkt[6] = 0x40;  // DF, no fragment
  pkt[7] = 0;
  pkt[9] = io::offload::kProtoTcp;
  pkt[32] = 0x50;  // TCP data offset: 20 bytes
  io::offload::VirtioNetHdr h{};
  h.flags = io::offload::kFlagNeedsCsum;
  h.gso_type = io::offload::kGsoTcpV4;
  h.hdr_len = kHdr;
  h.gso_size = kMss;
  h.csum_start = 20;
  h.csum_offset = 16;
  auto g = io::offload::parse_gso(h, pkt);
  if (!g) {
    st.SkipWithError("parse_gso refused the test packet");
    return;
  }
  std::vector<uint8_t> out(2048);
  for (auto _ : st)
    for (size_t i = 0; i < g->segments; ++i)
      benchmark::DoNotOptimize(io::offload::write_segment(*g, pkt, i, out.data(), out.size()));
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * g->segments));
}
BENCHMARK(BM_TsoSplit);

}  // namespace

// libsodium picks its SIMD implementations in sodium_init (the daemon calls it at start);
// without it every libsodium number here would be its portable reference code.
int main(int argc, char** argv) {
  if (!crypto::init()) return 1;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
