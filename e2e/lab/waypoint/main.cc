// waypoint: the lab's L7 enforcement point (see waypoint.h). Runs inside a lab namespace:
//   waypoint --listen 10.244.1.9:15008 --upstream 10.244.1.7:8000 --policies p.yaml --log requests.jsonl
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "e2e/lab/waypoint/waypoint.h"

int main(int argc, char** argv) {
  try {
    kmesh::waypoint::Waypoint w(kmesh::waypoint::ParseFlags(argc, argv));
    w.InstallSignalHandlers();
    if (!w.Run()) _exit(0);  // requests still in flight past their bound: do not destroy under them
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "waypoint: %s\n", e.what());
    return 2;
  }
}
