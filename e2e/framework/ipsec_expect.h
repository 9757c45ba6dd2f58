// IPsec expectations, written once for every Env: the nodes' xfrm layout against Kmesh's (converged to an
// SPI), a probe seen inside ESP on both underlays with a sanity capture in the server pod, xfrm_stat
// error counters, Kmesh's tc marking. Each check records its evidence in the Case and, when it finds a
// problem, a failure paragraph (expected / client saw / kernel held / disagree); it returns whether it
// passed, for the suite to CHECK. Captures and xfrm go through the Env's node evidence, so the same code
// runs on a lab node, a kind node or through kmesh-probe.
#pragma once

#include <string>
#include <vector>

#include "capture/capture.h"
#include "e2e/framework/case.h"
#include "e2e/framework/env.h"
#include "ipsec/ipsec_layout.h"
#include "ipsec/ipsec_secret.h"

namespace kmesh::e2e {

// Both nodes' KmeshNodeInfo and xfrm, and the layout checker's report on them.
struct Layout {
  ipsec::LayoutReport report;
  std::vector<ipsec::NodeEvidence> nodes;
};

// One read of both nodes. Throws unless the Env has exactly two nodes.
Layout ReadLayout(Env& env, const ipsec::SecretHistory& secrets, const ipsec::RetainedSpis& retained);
// Waits (bounded, XFRM_CONVERGED) until both nodes report `spi` and the layout checker finds nothing;
// records the layout in the case ("layouts"), and a failure when it did not converge.
Layout WaitLayout(Env& env, Case& c, uint32_t spi, const std::string& label,
                  const ipsec::SecretHistory& secrets, const ipsec::RetainedSpis& retained);

// The key of every SA Kmesh may hold in this run (each direction, each SPI of `secrets`), derived from the
// secrets and the nodes' KmeshNodeInfo: with them a capture opens each ESP packet and finds the probe's own
// connection in the tunnel.
std::vector<capture::EspKey> EspKeys(Env& env, const ipsec::SecretHistory& secrets);

// One request from the client with a payload marker, with an assert capture on each node's underlay (what
// it sends) and a sanity capture in the server pod (where the request is always in clear).
struct EncryptedProbe {
  ProbeOutcome outcome;
  std::vector<capture::CaptureSummary> underlay;
  capture::CaptureSummary sanity;
};
EncryptedProbe ProbeEncrypted(Env& env, Case& c, const App& client, const App& server,
                              const ipsec::SecretHistory& secrets, const std::string& label);

// An encrypted probe passes when: ok, ESP with the receiver's SPI carrying the probe on both underlays, no
// plaintext, and the sanity capture saw the request in clear.
bool ExpectEncrypted(Env& env, Case& c, const EncryptedProbe& p, const App& client, const App& server,
                     const std::string& label);

// No xfrm_stat error counter rose on any node between two layouts (tolerance 0).
bool ExpectNoXfrmErrors(Case& c, const Layout& before, const Layout& after, const std::string& label);

// Kmesh's own tc programs, loaded from the Kmesh tree and attached where Kmesh attaches them, on every node;
// km_nodeinfo holding exactly the peers' pod CIDRs. A node whose marking the Env cannot read is noted.
bool ExpectKmeshMarking(Env& env, Case& c, const std::string& label);

}  // namespace kmesh::e2e
