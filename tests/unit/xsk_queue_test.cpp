// XskQueue on a veth pair in a fresh network namespace (root): a packet written into a lent
// frame leaves as it lies, headers in front; frames not sent come back; completed frames return
// whole although they were submitted from an offset. Every RX frame is on the fill ring, so a
// burst as long as the RX frames waits for the worker instead of being dropped.
#include "xsktun/xdp/xsk_queue.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "netns_util.h"

namespace xsktun::xdp {
namespace {

constexpr size_t kHeadroom = 16;  // the data header (proto::kDataHeaderLen)

Path test_path() {
  Path p;
  p.src_mac = {2, 0, 0, 0, 0, 1};
  p.dst_mac = {2, 0, 0, 0, 0, 2};
  p.src_ip = *IpAddr::parse("192.0.2.1");
  p.src_port = 51820;
  return p;
}

// A raw AF_PACKET socket bound to `ifname` (every frame seen there, and what it sends leaves
// there); -1 on failure.
int packet_socket(const char* ifname) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return -1;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The veth pair xa (for the AF_XDP sockets) / xb, both up; returns a packet socket on xb, which
// sees what xa sends and sends to xa (-1 on failure).
int veth_with_capture() {
  if (std::system("ip link add xa type veth peer name xb && ip link set xa up && ip link set xb up") != 0)
    return -1;
  return packet_socket("xb");
}

XskOptions copy_mode_on_xa() {
  XskOptions o;
  o.ifname = "xa";
  o.zerocopy = XskOptions::ZeroCopy::kOff;
  return o;
}

// Frames seen on `ifname` (AF_PACKET), each as bytes.
std::vector<std::vector<uint8_t>> capture(int fd, size_t want) {
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> buf(4096);
  for (int tries = 0; tries < 200 && got.size() < want; ++tries) {
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      usleep(5000);
      continue;
    }
    std::vector<uint8_t> f(buf.begin(), buf.begin() + n);
    if (f.size() > 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == IPPROTO_UDP) got.push_back(f);
  }
  return got;
}

// A five-instruction XDP program: every frame to the xsks map slot of its RX queue.
int redirect_all_prog(int xsks_map) {
  const bpf_insn insns[] = {
      {BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(xdp_md, rx_queue_index), 0},  // r2 = queue
      {BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, xsks_map},          // r1 = map
      {0, 0, 0, 0, 0},
      {BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, XDP_PASS},  // r3 = what to do without a socket
      {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  return bpf_prog_load(BPF_PROG_TYPE_XDP, "redirect_all", "GPL", insns, sizeof insns / sizeof insns[0],
                       nullptr);
}

TEST(XskQueueRx, ABurstAsLongAsTheRxFramesWaitsForTheWorker) {
  io::test_util::in_netns([] {
    int pkt = veth_with_capture();
    ASSERT_GE(pkt, 0) << std::strerror(errno);
    int map = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "xsks", 4, 4, 1, nullptr);
    ASSERT_GE(map, 0) << std::strerror(errno);
    int prog = redirect_all_prog(map);
    ASSERT_GE(prog, 0) << std::strerror(errno);
    ASSERT_EQ(bpf_xdp_attach(static_cast<int>(if_nametoindex("xa")), prog, XDP_FLAGS_DRV_MODE, nullptr), 0);
    XskOptions o = copy_mode_on_xa();
    o.xsks_map_fd = map;
    std::string err;
    auto q = XskQueue::create(o, &err);
    if (!q) GTEST_SKIP() << "no AF_XDP socket on veth: " << err;

    // More frames than the old 2048-frame fill ring held, fewer than the RX frames; nobody
    // takes any until the burst is over (a worker descheduled meanwhile).
    const uint32_t burst = o.rx_frames - o.rx_frames / 8;
    ASSERT_GT(burst, 2048u);

    std::vector<uint8_t> frame(64, 0);
    frame[0] = 0x02;  // locally administered unicast; the program takes the frame regardless
    frame[12] = 0x88, frame[13] = 0xb5;  // local experimental EtherType: nothing else answers
    for (uint32_t i = 0; i < burst; ++i) {
      std::memcpy(frame.data() + 14, &i, sizeof i);
      ASSERT_EQ(send(pkt, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
    }
    xdp_statistics st{};
    ASSERT_TRUE(q->statistics(&st));
    EXPECT_EQ(st.rx_dropped, 0u) << "fill ring ran empty during the burst";
    EXPECT_EQ(st.rx_ring_full, 0u);
    // The frames are not WireGuard messages, so recv hands out none of them; it counts them as
    // unparsed and gives their frames back, which is all this test needs: they all arrived.
    std::vector<io::PacketBuf> bufs(64);
    device::Counters counters;
    q->set_counters(&counters);
    for (int i = 0; i < 1000 && counters.get(device::Counter::drop_xsk_unparsed) < burst; ++i)
      q->recv(bufs, 0);
    EXPECT_EQ(counters.get(device::Counter::drop_xsk_unparsed), burst);
    close(pkt);
    bpf_xdp_detach(static_cast<int>(if_nametoindex("xa")), XDP_FLAGS_DRV_MODE, nullptr);
    close(prog);
    close(map);
  });
}

// A transmit-only sibling on the same NIC queue: its frames leave on the wire, and come back
// to it (not to the first socket) although the first socket reaped their completions from the
// completion ring the two share.
TEST(XskQueueSibling, TransmitsAndGetsItsFramesBackWhoeverReapsThem) {
  io::test_util::in_netns([] {
    int pkt = veth_with_capture();
    ASSERT_GE(pkt, 0) << std::strerror(errno);
    XskOptions o = copy_mode_on_xa();
    o.siblings = 1;
    std::string err;
    auto first = XskQueue::create(o, &err);
    if (!first) GTEST_SKIP() << "no AF_XDP socket on veth: " << err;
    auto sib = XskQueue::create_sibling(*first, &err);
    ASSERT_TRUE(sib) << err;
    EXPECT_FALSE(XskQueue::create_sibling(*first, &err))
        << "only as many siblings as the UMEM has TX frames for";
    EXPECT_FALSE(sib->receives());
    std::vector<io::PacketBuf> rx(8);
    EXPECT_EQ(sib->recv(rx, 0), 0);

    std::vector<io::PacketBuf> all(o.frames());
    EXPECT_EQ(sib->lend(all, kHeadroom), o.tx_frames);
    sib->reclaim_lent();
    std::vector<io::PacketBuf> bufs(5);
    ASSERT_EQ(sib->lend(bufs, kHeadroom), 5u);
    Path path = test_path();
    std::vector<io::PacketBuf> out;
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint8_t* msg = bufs[i].data - kHeadroom;
      std::memset(msg, static_cast<int>(0x50 + i), 100);
      out.push_back(io::PacketBuf{msg, 100, 100, *Endpoint::parse("192.0.2.2:51821")});
    }
    std::vector<const Path*> paths(out.size(), &path);
    ASSERT_EQ(sib->send(out, paths), 5);
    sib->reclaim_lent();
    auto frames = capture(pkt, 5);
    ASSERT_EQ(frames.size(), 5u);
    for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(frames[i][42], 0x50 + i) << "frame " << i;
    close(pkt);
    // Both send at once from their own threads, as two workers do: each reaps the shared
    // completion ring when it needs frames, finding the other's completions too. In the end
    // every frame is back with its own socket.
    auto blast = [&](XskQueue& q, uint8_t mark) {
      std::vector<io::PacketBuf> b(32), o2;
      for (int round = 0; round < 300; ++round) {
        size_t n = q.lend(b, kHeadroom);
        o2.clear();
        for (size_t i = 0; i < n; ++i) {
          std::memset(b[i].data - kHeadroom, mark, 64);
          o2.push_back(io::PacketBuf{b[i].data - kHeadroom, 64, 64, *Endpoint::parse("192.0.2.2:51821")});
        }
        std::vector<const Path*> p2(o2.size(), &path);
        q.send(o2, p2);
        q.reclaim_lent();
      }
    };
    std::thread t1(blast, std::ref(*first), uint8_t{0x61});
    std::thread t2(blast, std::ref(*sib), uint8_t{0x62});
    t1.join();
    t2.join();
    bool all_back = false;
    for (int i = 0; i < 100 && !all_back; ++i) {  // the last kicks' completions may lag a moment
      size_t a1 = first->lend(all, kHeadroom);
      first->reclaim_lent();
      size_t a2 = sib->lend(all, kHeadroom);
      sib->reclaim_lent();
      all_back = a1 == o.tx_frames && a2 == o.tx_frames;
      if (!all_back) usleep(10000);
    }
    EXPECT_TRUE(all_back) << "a TX frame did not come back to its own socket";
  });
}

TEST(XskQueueLend, LentFramesLeaveWithoutACopyAndComeBack) {
  io::test_util::in_netns([] {
    int pkt = veth_with_capture();
    ASSERT_GE(pkt, 0) << std::strerror(errno);

    XskOptions o = copy_mode_on_xa();
    std::string err;
    auto q = XskQueue::create(o, &err);
    if (!q) GTEST_SKIP() << "no AF_XDP socket on veth: " << err;
    // Everything free can be lent; all of it comes back.
    std::vector<io::PacketBuf> all(o.frames());
    size_t free_frames = q->lend(all, kHeadroom);
    EXPECT_EQ(free_frames, o.tx_frames);
    q->reclaim_lent();

    std::vector<io::PacketBuf> bufs(3);
    ASSERT_EQ(q->lend(bufs, kHeadroom), 3u);
    for (auto& b : bufs) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, 0u) << "inner packet 64-byte aligned";
      EXPECT_GE(b.cap, 1420u + 32u);
    }
    // Two lent frames carry "messages" written where they lie (what the device seals in place),
    // a third payload comes from the caller's own memory and is copied.
    std::vector<uint8_t> own(100, 0x77);
    Path path = test_path();
    std::vector<io::PacketBuf> out;
    for (int i = 0; i < 2; ++i) {
      uint8_t* msg = bufs[static_cast<size_t>(i)].data - kHeadroom;
      std::memset(msg, 0x40 + i, 100);
      out.push_back(io::PacketBuf{msg, 100, 100, *Endpoint::parse("192.0.2.2:51821")});
    }
    out.push_back(io::PacketBuf{own.data(), own.size(), own.size(), *Endpoint::parse("192.0.2.2:51821")});
    std::vector<const Path*> paths(out.size(), &path);
    ASSERT_EQ(q->send(out, paths), 3);
    // The headers went in front of the lent payload, in the frame itself.
    EXPECT_EQ(*(out[0].data - 8 + 2), 51821 >> 8) << "UDP destination port right before the message";
    q->reclaim_lent();  // bufs[2] was not sent

    auto frames = capture(pkt, 3);
    ASSERT_EQ(frames.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const auto& f = frames[i];
      ASSERT_EQ(f.size(), 14u + 20 + 8 + 100);
      uint8_t want = i < 2 ? static_cast<uint8_t>(0x40 + i) : 0x77;
      for (size_t k = 42; k < f.size(); ++k) ASSERT_EQ(f[k], want) << "frame " << i << " byte " << k;
    }
    // Completed frames (submitted 14 + 20 + 8 bytes before their payload, i.e. from an offset
    // into the frame) are whole again: everything can be lent once more.
    EXPECT_EQ(q->lend(all, kHeadroom), free_frames);
    q->reclaim_lent();
    close(pkt);
  });
}

}  // namespace
}  // namespace xsktun::xdp
