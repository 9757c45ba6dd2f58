// Runs through tools/vm (kmesh_vm_test): on the host when its kernel has ESP and GCM, else in the VM.
// Proves the kernel it runs on carries an rfc4106(gcm(aes)) ESP tunnel, and that the check notices
// traffic that bypasses ESP.
#include <catch2/catch.hpp>

#include <fstream>

#include "e2e/framework/case_output.h"
#include "tools/vm/esp_tunnel.h"

using kmesh::vm::EspTunnelOptions;
using kmesh::vm::RunEspTunnelCheck;

TEST_CASE("an rfc4106(gcm(aes)) ESP tunnel between two namespaces carries TCP and its states count it") {
  EspTunnelOptions options;
  options.round_trips = 8;
  const auto report = RunEspTunnelCheck(options);
  std::ofstream(kmesh::e2e::CaseOutputDir() + "/esp_tunnel.txt") << report.ToText();
  INFO(report.ToText());

  CHECK(report.aead == "rfc4106(gcm(aes))");
  CHECK(report.bytes_echoed > 8 * 200u);
  REQUIRE(report.sas.size() == 4);
  for (const auto& sa : report.sas) {
    INFO(sa.side << " " << sa.direction << " " << sa.state.Id());
    CHECK(sa.state.aead_name == "rfc4106(gcm(aes))");
    CHECK(sa.state.icv_bits == 128);
    CHECK(sa.state.aead_key.size() == 36);
    CHECK(sa.state.cur_packets >= 8);
    CHECK(sa.state.cur_bytes > 8 * 200u);
  }
}

TEST_CASE("without xfrm policies the traffic bypasses ESP and the check says so") {
  EspTunnelOptions options;
  options.install_policies = false;
  options.round_trips = 3;
  REQUIRE_THROWS_WITH(RunEspTunnelCheck(options),
                      Catch::Contains("bypassed ESP") && Catch::Contains("counted 0 packets"));
}
