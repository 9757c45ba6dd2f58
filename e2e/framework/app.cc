#include "e2e/framework/app.h"

namespace kmesh::e2e {

App OverFamily(const App& app, net::Family family) {
  if (app.ip.family() == family) return app;  // on an IPv6-only cluster too
  if (family == net::Family::kIPv4 || !app.ip6) {
    throw Error("app " + app.name + " has no " + FamilyName(family) + " address" +
                (family == net::Family::kIPv6 ? ": the Env is not dual stack" : "") + " (pod IP " +
                app.ip.ToString() + ")");
  }
  App out = app;
  out.ip = *app.ip6;
  return out;
}

const char* FamilyName(net::Family family) { return family == net::Family::kIPv6 ? "IPv6" : "IPv4"; }

}  // namespace kmesh::e2e
