#include "e2e/framework/app.h"

namespace kmesh::e2e {

App OverFamily(const App& app, net::Family family) {
  if (family == net::Family::kIPv4) {
    if (FamilyOf(app.ip) != net::Family::kIPv4) {
      throw Error("app " + app.name + " has no IPv4 address (" + app.ip + ")");
    }
    return app;
  }
  if (FamilyOf(app.ip) == net::Family::kIPv6) return app;  // an IPv6-only cluster
  if (app.ip6.empty()) {
    throw Error("app " + app.name + " has no IPv6 address: the Env is not dual stack (pod IP " + app.ip +
                ")");
  }
  App out = app;
  out.ip = app.ip6;
  return out;
}

const char* FamilyName(net::Family family) { return family == net::Family::kIPv6 ? "IPv6" : "IPv4"; }

net::Family FamilyOf(const std::string& ip) { return net::IpAddr::Parse(ip)->family(); }

}  // namespace kmesh::e2e
