#include "nodelayguard.h"

#include <QTimer>

#ifdef Q_OS_LINUX
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#endif

namespace keyrelay {

NoDelayGuard::NoDelayGuard(QObject *parent) : QObject(parent) { }

void NoDelayGuard::scheduleScan()
{
    if (m_scanPending)
        return;
    m_scanPending = true;
    QTimer::singleShot(0, this, [this] {
        m_scanPending = false;
        applyToAllSockets();
    });
}

int NoDelayGuard::applyToAllSockets()
{
    int changed = 0;
#ifdef Q_OS_LINUX
    DIR *directory = ::opendir("/proc/self/fd");
    if (!directory)
        return 0;
    const int directoryFd = ::dirfd(directory);
    while (const dirent *entry = ::readdir(directory)) {
        char *end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == directoryFd)
            continue;
        struct stat info
        {
        };
        if (::fstat(int(fd), &info) != 0 || !S_ISSOCK(info.st_mode))
            continue;
        int type = 0;
        socklen_t length = sizeof(type);
        if (::getsockopt(int(fd), SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM)
            continue;
        sockaddr_storage address {};
        length = sizeof(address);
        if (::getsockname(int(fd), reinterpret_cast<sockaddr *>(&address), &length) != 0
            || (address.ss_family != AF_INET && address.ss_family != AF_INET6)) {
            continue;
        }
        int noDelay = 0;
        length = sizeof(noDelay);
        if (::getsockopt(int(fd), IPPROTO_TCP, TCP_NODELAY, &noDelay, &length) != 0 || noDelay)
            continue;
        noDelay = 1;
        if (::setsockopt(int(fd), IPPROTO_TCP, TCP_NODELAY, &noDelay, sizeof(noDelay)) == 0)
            ++changed;
    }
    ::closedir(directory);
#endif
    return changed;
}

} // namespace keyrelay
