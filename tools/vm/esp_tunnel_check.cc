// esp_tunnel_check: builds an rfc4106(gcm(aes)) ESP tunnel between two fresh namespaces, sends TCP
// through it and checks that the states counted the packets. Exit 0 and a short report when the kernel
// can do it; exit 1 and the reason when not. Meant to be run through tools/vm/run where the host kernel
// lacks ESP or GCM:  tools/vm/run -- bazel-bin/tools/vm/esp_tunnel_check
//
//   --without-policy   leave the xfrm policies out (a fault: the traffic bypasses ESP, the check fails)
//   --round-trips N    TCP messages each way (default 5)
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "base/error.h"
#include "tools/vm/esp_tunnel.h"

int main(int argc, char** argv) {
  kmesh::vm::EspTunnelOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--without-policy") {
      options.install_policies = false;
    } else if (a == "--round-trips" && i + 1 < argc) {
      char* end = nullptr;
      long n = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || n < 1 || n > 100000) {
        std::cerr << "esp_tunnel_check: --round-trips takes a number from 1 to 100000, got '" << argv[i] << "'\n";
        return 2;
      }
      options.round_trips = static_cast<int>(n);
    } else {
      std::cerr << "esp_tunnel_check: unknown argument '" << a
                << "' (expected --without-policy or --round-trips N)\n";
      return 2;
    }
  }
  try {
    std::cout << kmesh::vm::RunEspTunnelCheck(options).ToText();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "esp_tunnel_check: " << e.what() << "\n";
    return 1;
  }
}
