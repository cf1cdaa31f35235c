#include "launch/network_firewall.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/crypto.h"
#include "common/subprocess.h"

namespace ty::launch {
namespace {

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(StoreEndpointTest, ParsesUrlsAndTellsTheHostFromElsewhere) {
  struct Case {
    std::string url;
    bool parsed;
    std::string ip;
    int port;
    bool on_host;
  };
  const std::vector<std::string> local = {"192.0.2.10"};
  const Case cases[] = {
      {"http://127.0.0.1:4568", true, "127.0.0.1", 4568, true},
      {"http://localhost:9000/", true, "127.0.0.1", 9000, true},
      {"https://127.0.0.2", true, "127.0.0.2", 443, true},
      {"http://192.0.2.10:80/bucket", true, "192.0.2.10", 80, true},
      {"http://198.51.100.7:9000", true, "198.51.100.7", 9000, false},
      {"http://minio.example:9000", false, "", 0, false},  // a name: not pinned
      {"ftp://127.0.0.1:21", false, "", 0, false},
      {"http://127.0.0.1:0", false, "", 0, false},
      {"http://127.0.0.1:99999", false, "", 0, false},
      {"http://user@127.0.0.1:1", false, "", 0, false},
      {"127.0.0.1:4568", false, "", 0, false},
  };
  for (const auto& c : cases) {
    auto e = ParseStoreEndpoint(c.url, local);
    ASSERT_EQ(e.has_value(), c.parsed) << c.url;
    if (!e) continue;
    EXPECT_EQ(e->ip, c.ip) << c.url;
    EXPECT_EQ(e->port, c.port) << c.url;
    EXPECT_EQ(e->on_host, c.on_host) << c.url;
  }
}

TEST(StoreEndpointTest, JobsSeeAStoreOnTheHostAtTheirGateway) {
  auto local = ParseStoreEndpoint("http://127.0.0.1:4568/", {});
  ASSERT_TRUE(local);
  EXPECT_EQ(StoreUrlForJob("http://127.0.0.1:4568/", *local, "10.7.8.1"), "http://10.7.8.1:4568/");
  EXPECT_EQ(StoreUrlForJob("http://127.0.0.1:4568", *local, "10.7.8.1"), "http://10.7.8.1:4568");
  auto remote = ParseStoreEndpoint("http://198.51.100.7:9000", {});
  ASSERT_TRUE(remote);
  EXPECT_EQ(StoreUrlForJob("http://198.51.100.7:9000", *remote, "10.7.8.1"),
            "http://198.51.100.7:9000");
}

TEST(FirewallScriptTest, TableDropsEverythingFromBridgesToTheHost) {
  const std::string s = FirewallTableScript(FirewallTableName("0a1b2c3d"), std::nullopt);
  EXPECT_EQ(FirewallTableName("0a1b2c3d"), "trainyard_0a1b2c3d");
  EXPECT_TRUE(Has(s, "add table inet trainyard_0a1b2c3d\n"));
  // Chains are emptied before they are filled: running it again (a restart) does not double
  // the rules, and sets (the live jobs) are only added, never flushed.
  EXPECT_TRUE(Has(s, "flush chain inet trainyard_0a1b2c3d input\n"));
  EXPECT_FALSE(Has(s, "flush set"));
  EXPECT_TRUE(Has(s, "add rule inet trainyard_0a1b2c3d input iifname @bridges drop\n"));
  EXPECT_TRUE(Has(s, "forward iifname . oifname @peers accept\n"));
  EXPECT_TRUE(Has(s, "forward oifname @bridges drop\n"));
  EXPECT_TRUE(Has(s, "forward iifname @nat accept\n"));
  EXPECT_TRUE(Has(s, "forward iifname @bridges drop\n"));
  EXPECT_TRUE(Has(s, "postrouting iifname @nat oifname != @bridges masquerade\n"));
  // Peers before the drops into bridges; the drop into bridges before NAT's accept, so a NAT
  // job never reaches another job's network.
  EXPECT_LT(s.find("@peers accept"), s.find("oifname @bridges drop"));
  EXPECT_LT(s.find("oifname @bridges drop"), s.find("iifname @nat accept"));
  // A NAT'd job never reaches the cloud metadata service (the host's credentials).
  EXPECT_LT(s.find("iifname @bridges ip daddr 169.254.0.0/16 drop"), s.find("iifname @nat accept"));
  EXPECT_FALSE(Has(s, "dnat"));
}

TEST(FirewallScriptTest, StoreOnTheHostIsReachedByDnatAndNothingElse) {
  auto store = ParseStoreEndpoint("http://127.0.0.1:4568", {});
  const std::string s = FirewallTableScript("t", store);
  EXPECT_TRUE(Has(s,
                  "prerouting iifname @store fib daddr type local tcp dport 4568 dnat ip to "
                  "127.0.0.1:4568\n"));
  EXPECT_TRUE(
      Has(s, "input iifname @store ct status dnat ip daddr 127.0.0.1 tcp dport 4568 accept\n"));
  EXPECT_LT(s.find("ct status dnat"), s.find("input iifname @bridges drop"));
}

TEST(FirewallScriptTest, RemoteStoreIsForwardedForStoreJobsOnly) {
  auto store = ParseStoreEndpoint("http://198.51.100.7:9000", {});
  const std::string s = FirewallTableScript("t", store);
  EXPECT_FALSE(Has(s, "dnat"));
  EXPECT_TRUE(Has(s, "forward iifname @store ip daddr 198.51.100.7 tcp dport 9000 accept\n"));
  EXPECT_LT(s.find("iifname @store ip daddr"), s.find("forward iifname @bridges drop"));
  EXPECT_TRUE(Has(s,
                  "postrouting iifname @store oifname != @bridges ip daddr 198.51.100.7 tcp "
                  "dport 9000 masquerade\n"));
}

TEST(FirewallScriptTest, JobElementsSayExactlyWhatTheJobReaches) {
  struct Case {
    bool outside, store;
  };
  for (const Case c :
       {Case{true, false}, Case{false, false}, Case{true, true}, Case{false, true}}) {
    const std::string s = JobElementsScript("t", {"tyb-0a1b2c3d", c.outside, c.store});
    EXPECT_TRUE(Has(s, "add element inet t bridges { \"tyb-0a1b2c3d\" }\n"));
    EXPECT_TRUE(Has(s, "add element inet t peers { \"tyb-0a1b2c3d\" . \"tyb-0a1b2c3d\" }\n"));
    EXPECT_FALSE(Has(s, "delete element inet t bridges"));
    EXPECT_FALSE(Has(s, "delete element inet t peers"));
    // Absent sets are made absent whatever was there before (a bridge name used again).
    EXPECT_EQ(Has(s, "delete element inet t nat { \"tyb-0a1b2c3d\" }\n"), !c.outside);
    EXPECT_EQ(Has(s, "delete element inet t store { \"tyb-0a1b2c3d\" }\n"), !c.store);
  }
  const std::string removed = RemoveJobScript("t", "tyb-0a1b2c3d");
  for (const char* set : {"bridges", "peers", "nat", "store"}) {
    EXPECT_TRUE(Has(removed, std::string("delete element inet t ") + set)) << set;
  }
}

// ---- against the kernel (root and nft only) ----

std::string NftList(const std::string& table) {
  SpawnOptions o;
  o.argv = {"nft", "list", "table", "inet", table};
  o.env = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};
  auto p = Subprocess::Spawn(o);
  if (!p.ok()) return "";
  std::string out;
  char buf[4096];
  while ((*p)->stdout_fd() >= 0) {
    pollfd f{(*p)->stdout_fd(), POLLIN, 0};
    ::poll(&f, 1, 5000);
    ssize_t n = ::read((*p)->stdout_fd(), buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      (*p)->CloseStdout();
    }
  }
  auto code = (*p)->Wait();
  return code.ok() && *code == 0 ? out : "";
}

TEST(NetworkFirewallTest, InstallAddRemoveUninstall) {
  const std::string why = ProbeFirewall();
  if (!why.empty()) GTEST_SKIP() << "no nftables here: " << why;
  const std::string id = "t" + RandomAlnum(7);
  std::string lower;
  for (char ch : id) lower += static_cast<char>(std::tolower(ch));
  NetworkFirewall fw(lower, ParseStoreEndpoint("http://127.0.0.1:4568", {}));
  ASSERT_TRUE(fw.Install().ok());
  ASSERT_TRUE(fw.Install().ok());  // again, as a restarted server does: rules not doubled
  std::string listed = NftList(fw.table());
  ASSERT_NE(listed.find("@peers accept"), std::string::npos) << listed;
  EXPECT_EQ(listed.find("@peers accept"), listed.rfind("@peers accept")) << listed;

  // A bridge name that is not a real link is fine for sets: route_localnet is not needed
  // without store access.
  ASSERT_TRUE(fw.AddJob({"tyb-zz" + lower.substr(0, 6), true, false}).ok());
  listed = NftList(fw.table());
  EXPECT_TRUE(Has(listed, "\"tyb-zz" + lower.substr(0, 6) + "\""));
  ASSERT_TRUE(fw.AddJob({"tyb-zz" + lower.substr(0, 6), false, false}).ok());  // now isolated
  ASSERT_TRUE(fw.RemoveJob("tyb-zz" + lower.substr(0, 6)).ok());
  ASSERT_TRUE(fw.RemoveJob("tyb-zz" + lower.substr(0, 6)).ok());  // idempotent
  EXPECT_FALSE(Has(NftList(fw.table()), "tyb-zz"));
  ASSERT_TRUE(fw.Uninstall().ok());
  EXPECT_EQ(NftList(fw.table()), "");
  ASSERT_TRUE(fw.Uninstall().ok());
}

}  // namespace
}  // namespace ty::launch
