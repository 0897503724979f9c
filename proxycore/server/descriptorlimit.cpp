#include "descriptorlimit.h"

#include <sys/resource.h>

namespace keyrelay {

namespace {
constexpr qint64 Reserved = 64; ///< Qt, the listeners, log files, the GUI, the key store...
constexpr qint64 PerManager = 8; ///< 6 upstream connections + the thread's wakeup descriptors
constexpr qint64 RefusalMargin = 16; ///< to accept, answer 503 and close at the cap
} // namespace

qint64 DescriptorLimit::softLimit()
{
    rlimit limit {};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return 1024 * 1024;
    return qint64(limit.rlim_cur);
}

qint64 DescriptorLimit::raiseSoftLimit()
{
    rlimit limit {};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) != 0 && limit.rlim_max > 1024 * 1024) {
            raised.rlim_cur = 1024 * 1024; // some kernels refuse more than nr_open
            setrlimit(RLIMIT_NOFILE, &raised);
        }
    }
    return softLimit();
}

DescriptorBudget DescriptorLimit::budget(qint64 limit, int wantedConnections, int wantedManagers)
{
    DescriptorBudget budget;
    const qint64 usable = qMax<qint64>(limit - Reserved - RefusalMargin, 2);
    // A quarter of what is usable may go to the managers, the rest to client connections.
    budget.maxUpstreamManagers = int(qBound<qint64>(1, usable / 4 / PerManager, qint64(wantedManagers)));
    const qint64 forClients = usable - budget.maxUpstreamManagers * PerManager;
    budget.maxConnections = int(qBound<qint64>(1, forClients, qint64(wantedConnections)));
    return budget;
}

} // namespace keyrelay
