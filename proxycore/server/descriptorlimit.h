// The process's open-file limit: raised at start (as nginx and the Go runtime do) and used to size
// what the proxy may hold open, so that running out of descriptors costs a 503, never the process.
#pragma once

#include <QtGlobal>

namespace keyrelay {

struct DescriptorBudget
{
    int maxConnections = 0; ///< client connections served at once; more are answered 503
    int maxUpstreamConnections = 0; ///< upstream connections open at once; more requests queue for one
};

namespace DescriptorLimit {
/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit in force afterwards.
qint64 raiseSoftLimit();
/// The soft RLIMIT_NOFILE in force now.
qint64 softLimit();
/// What fits in @p limit descriptors: @p wantedConnections client connections at most, as many upstream
/// connections (one each over HTTP/1.1; HTTP/2 shares them), and what Qt itself needs.
DescriptorBudget budget(qint64 limit, int wantedConnections);
} // namespace DescriptorLimit

} // namespace keyrelay
