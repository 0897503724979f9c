#include "descriptorlimit.h"

#include <sys/resource.h>

namespace keyrelay {

namespace {
constexpr qint64 Reserved = 64; ///< Qt, the listeners, log files, the GUI, the key store...
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

DescriptorBudget DescriptorLimit::budget(qint64 limit, int wantedConnections)
{
    DescriptorBudget budget;
    const qint64 usable = qMax<qint64>(limit - Reserved - RefusalMargin, 2);
    // Every client connection may have one upstream connection of its own (HTTP/1.1): half each.
    budget.maxConnections = int(qBound<qint64>(1, usable / 2, qint64(wantedConnections)));
    budget.maxUpstreamConnections = int(qMax<qint64>(1, usable - budget.maxConnections));
    return budget;
}

} // namespace keyrelay
