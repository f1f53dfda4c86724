// XskQueue's lent TX frames on a veth pair in a fresh network namespace (root): a packet written
// into a lent frame leaves as it lies, headers in front; frames not sent come back; completed
// frames return whole although they were submitted from an offset.
#include "xsktun/xdp/xsk_queue.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
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

TEST(XskQueueLend, LentFramesLeaveWithoutACopyAndComeBack) {
  io::test_util::in_netns([] {
    ASSERT_EQ(std::system("ip link add xa type veth peer name xb && ip link set xa up && ip link set xb up"),
              0);
    int pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    ASSERT_GE(pkt, 0) << std::strerror(errno);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(if_nametoindex("xb"));
    ASSERT_EQ(bind(pkt, reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);

    XskOptions o;
    o.ifname = "xa";
    o.zerocopy = XskOptions::ZeroCopy::kOff;
    std::string err;
    auto q = XskQueue::create(o, &err);
    if (!q) GTEST_SKIP() << "no AF_XDP socket on veth: " << err;
    // Everything free can be lent; all of it comes back.
    std::vector<io::PacketBuf> all(o.frames);
    size_t free_frames = q->lend(all, kHeadroom);
    EXPECT_EQ(free_frames, o.frames / 2);
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
