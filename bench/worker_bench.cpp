// The worker pipeline in one process (issue "Scale out"): N workers, each with its own fake
// TUN queue and fake TX ring, push batches through one shared Device: real routing (the
// published allowed-IPs snapshot), real sealing (the keypair's counters reserved once per
// run), real framing (Ethernet/IP/UDP headers written in front of the payload, the payload
// copied into a ring slot as into a UMEM frame). What the workers share is what the daemon's
// workers share: the device's peer table lock (read), the peer's lock once per run of packets
// and the keypair's send counter once per run.
//
//   build/xsktun-microbench --benchmark_filter=WorkerPipeline
//
// Arguments: inner packet size, peers (1: every worker sends to the same peer, the worst case
// for sharing; 2: a peer per worker). Items are packets; compare threads:1 with threads:2.
#include <benchmark/benchmark.h>

#include <array>
#include <memory>
#include <vector>

#include "device_harness.h"
#include "xsktun/xdp/frame.h"

using namespace xsktun;

namespace {

constexpr size_t kBatch = 64;

// A worker's TUN queue: every read hands out a batch of the worker's flows, copied into the
// caller's buffers as the kernel's read copies a packet.
class QueueTun final : public io::TunIo {
 public:
  QueueTun(const char* dst, size_t len)
      : pkt_(testing::ipv4_packet("10.0.0.1", dst, std::string(len - 20, 'x'))) {}
  int read_batch(std::span<io::PacketBuf> bufs) override {
    for (auto& b : bufs) {
      std::memcpy(b.data, pkt_.data(), pkt_.size());
      b.len = pkt_.size();
    }
    return static_cast<int>(bufs.size());
  }
  int write_batch(std::span<io::PacketBuf> bufs) override { return static_cast<int>(bufs.size()); }
  size_t mtu() const override { return 1420; }
  void wake() override {}

 private:
  std::vector<uint8_t> pkt_;
};

// A worker's TX ring: headers built and the sealed message copied into the next slot.
class RingUdp final : public io::UdpIo {
 public:
  RingUdp() : slots_(kBatch * kSlot) {
    path_.src_ip = *IpAddr::parse("192.168.1.1");
    path_.src_port = 51820;
  }
  int recv_batch(std::span<io::PacketBuf>) override { return 0; }
  int send_batch(std::span<io::PacketBuf> bufs) override {
    size_t i = 0;
    for (auto& b : bufs) {
      uint8_t* frame = slots_.data() + (i++ % kBatch) * kSlot;
      size_t hl = xdp::header_len(path_, b.endpoint.addr.family);
      std::memcpy(frame + hl, b.data, b.len);
      benchmark::DoNotOptimize(xdp::build_headers(frame, path_, b.endpoint, b.len));
    }
    return static_cast<int>(bufs.size());
  }
  uint16_t port() const override { return 51820; }
  int rebind(uint16_t) override { return 0; }
  void set_fwmark(uint32_t) override {}
  void wake() override {}

 private:
  static constexpr size_t kSlot = 2048;
  std::vector<uint8_t> slots_;
  xdp::Path path_;
};

// Device a with two peers whose sessions are established (through the in-memory network).
struct Pipeline {
  testing::FakeClock clock;
  io::FakeNetwork net;
  testing::Node a{net, "192.168.1.1", 51820, clock};
  testing::Node b1{net, "192.168.1.2", 51821, clock};
  testing::Node b2{net, "192.168.1.3", 51822, clock};
  std::array<device::Counters*, 2> lanes{&a.dev->add_lane_counters(), &a.dev->add_lane_counters()};

  Pipeline() {
    net.set_capture(false);
    testing::add_peer(a, b1, {"10.0.1.0/24"});
    testing::add_peer(a, b2, {"10.0.2.0/24"});
    testing::add_peer(b1, a, {"10.0.0.0/24"});
    testing::add_peer(b2, a, {"10.0.0.0/24"});
    a.tun.inject(testing::ipv4_packet("10.0.0.1", "10.0.1.1", "hello"));
    a.tun.inject(testing::ipv4_packet("10.0.0.1", "10.0.2.1", "hello"));
    testing::pump({&a, &b1, &b2});
  }
};

Pipeline& pipeline() {
  static Pipeline p;
  return p;
}

void BM_WorkerPipeline(benchmark::State& st) {
  Pipeline& p = pipeline();
  size_t len = static_cast<size_t>(st.range(0));
  bool own_peer = st.range(1) == 2;
  int w = st.thread_index();
  QueueTun tun(own_peer && w == 1 ? "10.0.2.1" : "10.0.1.1", len);
  RingUdp ring;
  device::Lane lane{tun, ring, *p.lanes[static_cast<size_t>(w)]};
  // The Runner's buffers: headroom for the data header, room for padding and tag.
  constexpr size_t kStride = 2048;
  std::vector<uint8_t> storage(kBatch * kStride);
  std::vector<io::PacketBuf> bufs(kBatch);
  uint64_t before = lane.counters.get(device::Counter::tx_packets);
  for (auto _ : st) {
    for (size_t i = 0; i < kBatch; ++i)
      bufs[i] = io::PacketBuf{
          storage.data() + i * kStride + proto::kDataHeaderLen, 0, kStride - proto::kDataHeaderLen, {}};
    int n = tun.read_batch(bufs);
    p.a.dev->process_tun(std::span(bufs.data(), static_cast<size_t>(n)), lane);
  }
  uint64_t sent = lane.counters.get(device::Counter::tx_packets) - before;
  if (sent != st.iterations() * kBatch) st.SkipWithError("packets were not sealed and sent");
  st.SetItemsProcessed(static_cast<int64_t>(sent));
  st.SetBytesProcessed(static_cast<int64_t>(sent * len));
}
BENCHMARK(BM_WorkerPipeline)
    ->ArgsProduct({{64, 1408}, {1, 2}})
    ->ArgNames({"len", "peers"})
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
