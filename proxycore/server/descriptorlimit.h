// The process's open-file limit: raised at start (as nginx and the Go runtime do) and used to size
// what the proxy may hold open, so that running out of descriptors costs a 503, never the process.
#pragma once

#include <QtGlobal>

namespace keyrelay {

struct DescriptorBudget
{
    int maxConnections = 0; ///< client connections served at once; more are answered 503
    int maxUpstreamManagers = 0; ///< network managers (each owns a thread and up to 6 connections)
};

namespace DescriptorLimit {
/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the soft limit in force afterwards.
qint64 raiseSoftLimit();
/// The soft RLIMIT_NOFILE in force now.
qint64 softLimit();
/// What fits in @p limit descriptors: @p wantedConnections at most, and enough left for the
/// upstream connections, the managers' threads and Qt itself.
DescriptorBudget budget(qint64 limit, int wantedConnections, int wantedManagers);
} // namespace DescriptorLimit

} // namespace keyrelay
