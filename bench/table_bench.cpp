// Scale microbenchmarks (build/xsktun-microbench --benchmark_filter='Table|Scale'): allowed-IPs
// lookups and inserts at 1 to 1M prefixes, memory per prefix, and a configuration change of
// 10,000 peers applied to a device that already holds 0 or 1,000,000 prefixes (it must cost the
// same: a change costs what it changes). Memory is malloc's in-use bytes (mallinfo2) before and
// after, per prefix or per peer, reported as counters.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "xsktun/device/device.h"
#include "xsktun/io/fakes.h"
#include "xsktun/routing/allowed_ips.h"

using namespace xsktun;

namespace {

size_t heap_in_use() {
  auto m = mallinfo2();
  return m.uordblks + m.hblkhd;  // small chunks + mmap()ed ones (big vectors)
}

Prefix v4(uint32_t a, uint8_t cidr) {
  Prefix p;
  p.addr.family = AF_INET;
  uint8_t b[4] = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16), static_cast<uint8_t>(a >> 8),
                  static_cast<uint8_t>(a)};
  std::memcpy(p.addr.bytes.data(), b, 4);
  p.cidr = cidr;
  return p;
}

// n prefixes as a VPN hub has them: mostly /32 hosts, some /24 and /16 networks; n/10 peers.
std::vector<std::pair<Prefix, uint32_t>> hub_prefixes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::pair<Prefix, uint32_t>> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t r = rng() % 10;
    uint8_t cidr = r < 8 ? 32 : r < 9 ? 24 : 16;
    out.emplace_back(v4(rng(), cidr), static_cast<uint32_t>(i / 10 + 1));
  }
  return out;
}

// range(1) = 0: packets of 1,024 active flows (destinations in stored prefixes, as a gateway's
// traffic is: the nodes on their paths stay in cache); 1: every probe a random stored prefix or
// random address (each lookup walks cold memory: the worst case).
void BM_TableLookup(benchmark::State& st) {
  routing::AllowedIps t;
  auto prefixes = hub_prefixes(static_cast<size_t>(st.range(0)), 1);
  for (auto& [p, id] : prefixes) t.insert(p, id);
  bool cold = st.range(1) != 0;
  std::mt19937 rng(2);
  std::vector<std::array<uint8_t, 4>> probes(cold ? 1 << 20 : 1024);
  for (size_t i = 0; i < probes.size(); ++i) {
    const Prefix& p = prefixes[rng() % prefixes.size()].first;
    uint32_t a = rng();
    std::memcpy(probes[i].data(), !cold || i % 2 ? p.addr.bytes.data() : reinterpret_cast<uint8_t*>(&a), 4);
  }
  size_t i = 0, mask = probes.size() - 1;
  for (auto _ : st) benchmark::DoNotOptimize(t.lookup(AF_INET, probes[i++ & mask].data()));
  st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_TableLookup)->ArgsProduct({{1, 1000, 10000, 100000, 1000000}, {0, 1}});

void BM_TableInsert(benchmark::State& st) {
  auto prefixes = hub_prefixes(static_cast<size_t>(st.range(0)), 3);
  double bytes_per_prefix = 0;
  for (auto _ : st) {
    size_t before = heap_in_use();
    auto t = std::make_unique<routing::AllowedIps>();
    for (auto& [p, id] : prefixes) t->insert(p, id);
    bytes_per_prefix = double(heap_in_use() - before) / double(t->size());
    benchmark::DoNotOptimize(t.get());
    st.PauseTiming();
    t.reset();
    st.ResumeTiming();
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
  st.counters["bytes_per_prefix"] = bytes_per_prefix;
}
BENCHMARK(BM_TableInsert)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

struct ClockNow : device::Clock {
  proto::Nanos now() const override { return 1000 * proto::kSecond; }
  timespec wall() const override { return {1'700'000'000, 0}; }
};

control::PeerChange peer_change(uint32_t n, int prefixes) {
  control::PeerChange p;
  for (int i = 0; i < 4; ++i) p.public_key[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  p.public_key[31] = 0x40;
  p.replace_allowed_ips = true;
  for (int j = 0; j < prefixes; ++j)
    p.allowed_ips.push_back(v4(0x0a000000u + n * 16 + static_cast<uint32_t>(j), 32));
  return p;
}

// One `wg addconf` of 10,000 peers x 10 /32s into a device already holding range(0) prefixes
// (as 10-prefix peers): the time per change must not grow with the table.
void BM_ScaleAddPeers(benchmark::State& st) {
  io::FakeNetwork net;
  ClockNow clock;
  io::FakeTun tun;
  auto udp = net.attach(*IpAddr::parse("192.0.2.1"), 51820);
  device::Device dev(tun, *udp, clock);
  dev.set_limits({.peers = 1 << 20, .allowed_ips_v4 = 1 << 22, .allowed_ips_v6 = 1 << 22});  // 1.1M here
  std::string err;
  uint32_t next = 1;
  size_t before = heap_in_use();
  for (int64_t have = 0; have < st.range(0); have += 100000) {
    control::ConfigChange c;
    for (int i = 0; i < 10000; ++i) c.peers.push_back(peer_change(next++, 10));
    if (dev.apply(c, &err) != 0) st.SkipWithError(err.c_str());
  }
  (void)before;
  double per_peer = 0;
  for (auto _ : st) {
    st.PauseTiming();
    control::ConfigChange add, remove;
    uint32_t first = next;
    for (int i = 0; i < 10000; ++i) add.peers.push_back(peer_change(next++, 10));
    size_t heap0 = heap_in_use();
    st.ResumeTiming();
    if (dev.apply(add, &err) != 0) {
      st.SkipWithError(err.c_str());
      break;
    }
    st.PauseTiming();
    per_peer = double(heap_in_use() - heap0) / 10000.0;
    for (uint32_t n = first; n < next; ++n) {
      remove.peers.push_back(peer_change(n, 0));
      remove.peers.back().remove = true;
    }
    dev.apply(remove, &err);  // back to range(0) prefixes for the next iteration
    st.ResumeTiming();
  }
  st.SetItemsProcessed(st.iterations() * 10000);
  st.counters["bytes_per_peer_with_10_prefixes"] = per_peer;
}
BENCHMARK(BM_ScaleAddPeers)->Arg(0)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
